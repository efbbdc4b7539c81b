"""Errors for bad input files: each names the file and the field, and says what is wrong."""

from __future__ import annotations

from pathlib import Path


class InputFileError(ValueError):
    """A configuration or data file that cannot be used as it is.

    The message reads ``<file>: <field>: <problem>`` so that a person can go straight to the line.
    """

    def __init__(self, path: Path | str, field: str, problem: str) -> None:
        self.path = str(path)
        self.field = field
        self.problem = problem
        where = f"{self.path}: {field}" if field else self.path
        super().__init__(f"{where}: {problem}")
