"""Reading the project's YAML configuration files, with errors that name the file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from data_plane.errors import InputFileError


def read_yaml(path: Path | str) -> Any:
    """The parsed YAML document of ``path``; missing, non-UTF-8 or malformed files raise
    `InputFileError` naming the file."""
    path = Path(path)
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputFileError(path, "", "file not found") from None
    except IsADirectoryError:
        raise InputFileError(path, "", "is a directory, not a file") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise InputFileError(path, "", f"not valid YAML: {exc}") from None
    except RecursionError:
        raise InputFileError(path, "", "not valid YAML: nested too deeply") from None
