"""Dagster resources: PostgreSQL (embedded or external), the lakehouse, the governance catalog."""
