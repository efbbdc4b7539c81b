"""The one reader of the project's configuration and input files (YAML and JSON).

Every loader (the reasoning plane's fleet, quotas, budgets, requests, telemetry, catalog records
and placement policy; the data plane's source catalog, governance policy, principals and vector
stores) reads its file here, so every file gets the same rules and the same errors:

* at most `MAX_FILE_BYTES`, UTF-8 (a leading BOM is allowed), not blank;
* YAML (``.yaml``/``.yml``) through the safe loader, refusing a key given twice in one mapping
  and any tag beyond YAML's safe ones (``!!python/...``);
* JSON (``.json``) refusing duplicate keys and ``NaN``/``Infinity``.

Every problem is an `InputFileError` naming the file and where (``line 3, column 5``).
"""

from __future__ import annotations

import json
import reprlib
from pathlib import Path
from typing import Any, NoReturn

import yaml

from data_plane.errors import InputFileError

MAX_FILE_BYTES = 10 * 1024 * 1024

_REPR = reprlib.Repr()
_REPR.maxlevel = 2
_REPR.maxstring = 60
_REPR.maxother = 60
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = _REPR.maxfrozenset = 4


def show(value: Any) -> str:
    """A short, bounded repr of a value for an error message (safe on huge or cyclic data)."""
    return _REPR.repr(value)


class _StrictLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """The safe YAML loader, refusing a key that appears twice in one mapping."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        if not isinstance(node, yaml.MappingNode):
            raise yaml.constructor.ConstructorError(
                None, None, f"expected a mapping, but found {node.id}", node.start_mark
            )
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *base` merges: later explicit keys override on purpose
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:
                continue  # unhashable key: the safe loader refuses it below
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"found duplicate key {show(key)}",
                    key_node.start_mark,
                )
        return super().construct_mapping(node, deep=deep)


class _JsonDuplicateKey(ValueError):
    pass


def _json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _JsonDuplicateKey(f"duplicate key {show(key)}")
        out[key] = value
    return out


def _json_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a number JSON allows")


def json_loads(text: str) -> Any:
    """``json.loads`` refusing duplicate keys and ``NaN``/``Infinity``."""
    return json.loads(text, object_pairs_hook=_json_object, parse_constant=_json_constant)


def read_text(path: Path, suffixes: tuple[str, ...]) -> str:
    """The file's text: a known suffix, at most MAX_FILE_BYTES, UTF-8, not blank."""
    if path.suffix.lower() not in suffixes:
        raise InputFileError(
            path, "(file)", f"unsupported file type {path.suffix!r}; expected one of {suffixes}"
        )
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise InputFileError(path, "(file)", "file not found") from None
    except OSError as exc:
        raise InputFileError(path, "(file)", f"cannot be read: {exc.strerror or exc}") from None
    if len(data) > MAX_FILE_BYTES:
        raise InputFileError(
            path, "(file)", f"larger than the {MAX_FILE_BYTES // (1024 * 1024)} MB limit"
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputFileError(
            path, f"byte {exc.start}", "not UTF-8 text (save the file as UTF-8)"
        ) from None
    if not text.strip():
        raise InputFileError(path, "(file)", "the file is empty")
    return text


def _yaml_error(path: Path, exc: Exception) -> InputFileError:
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        field = f"line {mark.line + 1}, column {mark.column + 1}"
        problem = " ".join(p for p in (exc.context, exc.problem) if p)
        return InputFileError(path, field, f"not valid YAML: {problem}")
    if isinstance(exc, yaml.YAMLError | ValueError):
        detail = (str(exc).splitlines() or [""])[0][:200]
    elif isinstance(exc, RecursionError):
        detail = "nested too deeply"
    else:
        detail = f"a value cannot be read ({type(exc).__name__}: {str(exc)[:100]})"
    return InputFileError(path, "(syntax)", f"not valid YAML: {detail}")


def json_error(path: Path, exc: Exception) -> InputFileError:
    """The `InputFileError` for JSON that `json_loads` refused."""
    if isinstance(exc, json.JSONDecodeError):
        return InputFileError(
            path, f"line {exc.lineno}, column {exc.colno}", f"not valid JSON: {exc.msg}"
        )
    return InputFileError(path, "(syntax)", f"not valid JSON: {str(exc)[:200]}")


# Errors the parsers raise for bad input that are not their own error classes: out-of-range dates
# in YAML timestamps, integers with too many digits, nesting deeper than the interpreter allows.
PARSE_ERRORS = (ValueError, TypeError, OverflowError, RecursionError)


def read_documents(path: Path | str, *, multi: bool = False) -> list[Any]:
    """Parsed documents of a YAML (``.yaml``/``.yml``) or JSON (``.json``) file.

    Only a YAML file read with ``multi`` may hold several ``---`` documents; empty documents are
    dropped. A file with no document at all is refused.
    """
    path = Path(path)
    text = read_text(path, (".yaml", ".yml", ".json"))
    if path.suffix.lower() == ".json":
        try:
            return [json_loads(text)]
        except (json.JSONDecodeError, *PARSE_ERRORS) as exc:
            raise json_error(path, exc) from None
    try:
        if multi:
            docs = [d for d in yaml.load_all(text, Loader=_StrictLoader) if d is not None]
        else:
            docs = [yaml.load(text, Loader=_StrictLoader)]
    except Exception as exc:
        # Besides YAMLError, PyYAML raises ValueError, KeyError, IndexError or AttributeError
        # for some malformed scalars (`!!bool x`, `!!timestamp x`, `2026-13-45`): all of them
        # mean the text is not valid YAML. Parsing has no other side effects to hide.
        raise _yaml_error(path, exc) from None
    if not docs or docs == [None]:
        raise InputFileError(path, "(file)", "the file holds no document (only comments?)")
    return docs


def read_document(path: Path | str, *, allow_empty: bool = False) -> Any:
    """The one document of a YAML or JSON file (see `read_documents`); with ``allow_empty`` a
    blank file or one holding only comments reads as ``None`` instead of being refused."""
    path = Path(path)
    if allow_empty:
        try:
            return read_documents(path)[0]
        except InputFileError as exc:
            if exc.field == "(file)" and exc.problem.startswith(
                ("the file is empty", "the file holds no")
            ):
                return None
            raise
    return read_documents(path)[0]
