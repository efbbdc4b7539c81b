"""Sensors and schedules: the Dagster wiring of the data plane and the reasoning plane."""
