"""Dagster code location of Reasoning Plane: `defs` is the single `Definitions` object."""

from stack_defs.definitions import defs

__all__ = ["defs"]
