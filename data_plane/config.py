"""Typed configuration: the pydantic base model, the field types and the error translation that
every configuration file of the project shares.

A file's model (``extra="forbid"``) validates the parsed document (`data_plane.files`); each
loader then builds its plain frozen dataclasses from the model. Every refusal becomes one
`InputFileError` ``<file>: <field path>: <problem>``, the field path written as the file's
author sees it (``clusters[1] (us-east-a100).pools[0].total``).

Scalar fields use the types made here (`number`, `integer`, `text`, `name`, `one_of`, `Zone`,
`Timestamp`, ...): each checks its value strictly (no ``"16"`` for 16, no ``true`` for 1, no
``NaN``) with the project's wording, and describes itself in the JSON Schema that
``python -m reasoning_plane.config.schemas`` writes into ``docs/schemas/`` for editors.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any, ClassVar, NoReturn, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    PlainValidator,
    ValidationError,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import ErrorDetails, PydanticCustomError

from data_plane.classification import UNKNOWN, ZONE_PATTERN, ZONE_RE
from data_plane.errors import InputFileError
from data_plane.files import show

MAX_USD = 1e12

M = TypeVar("M", bound=BaseModel)
Loc = tuple[str | int, ...]


def fail(problem: str, at: Loc = ()) -> NoReturn:
    """Refuse the value being validated; ``at`` names a field below it (for model checks)."""
    raise PydanticCustomError("config", problem, {"at": at} if at else None)


def under(at: Loc, check: Callable[[Any], Any], value: Any) -> Any:
    """``check(value)``, its refusal naming the field ``at`` below the one being validated."""
    try:
        return check(value)
    except PydanticCustomError as exc:
        inner = (exc.context or {}).get("at", ())
        raise PydanticCustomError("config", exc.message_template, {"at": (*at, *inner)}) from None


def kind(value: Any) -> str:
    """``text``, ``a number``, ``a list`` ...: what a value is, in an error message."""
    if value is None:
        return "null"
    return {
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "text",
        list: "a list",
        dict: "a mapping",
    }.get(type(value), type(value).__name__)


class ConfigModel(BaseModel):
    """Base of every file's model: unknown keys refused, values not coerced, immutable.

    ``single_key``: the model of a whole ``{key: [...]}`` file, whose top level is described
    with that key when it is wrong."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    single_key: ClassVar[str | None] = None
    open_keys: ClassVar[bool] = False  # other keys are allowed (and ignored)
    labels: ClassVar[Mapping[str, str]] = {}  # list key -> the key naming its entries

    @classmethod
    def shorthand(cls, value: Any) -> Any:
        """The mapping a short form of this entry stands for (a subclass's; default: as is)."""
        return value

    @model_validator(mode="before")
    @classmethod
    def _keys(cls, value: Any) -> Any:
        value = cls.shorthand(value)
        fields = sorted(f.alias or name for name, f in cls.model_fields.items())
        if cls.single_key is not None and (
            not isinstance(value, Mapping) or set(value) != {cls.single_key}
        ):
            got = show(sorted(map(str, value))) if isinstance(value, Mapping) else kind(value)
            fail(f"must be a mapping with the single key {cls.single_key!r}, got {got}")
        if not isinstance(value, Mapping):
            fail(f"must be a mapping, got {kind(value)}")
        for key in value:
            if not isinstance(key, str):
                fail(f"keys must be text, got {show(key)}")
        unknown = sorted(set(value) - set(fields))
        if unknown and not cls.open_keys:
            fail(f"unknown key; allowed: {fields}", (unknown[0],))
        return dict(value)


# --------------------------------------------------------------------------------------------
# Field types: a strict check with the project's wording, and its JSON Schema
# --------------------------------------------------------------------------------------------


def checked(python: Any, check: Callable[[Any], Any], schema: dict[str, Any]) -> Any:
    """``Annotated[python, ...]`` validated by ``check`` and described by ``schema``."""
    return Annotated[python, PlainValidator(check), WithJsonSchema(schema)]


def check_number(
    value: Any, *, minimum: float = 0.0, positive: bool = False, maximum: float = MAX_USD
) -> float:
    if isinstance(value, bool):
        fail(f"must be a number, got the boolean {show(value)}")
    if not isinstance(value, int | float):
        fail(f"must be a number, got {kind(value)} {show(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        fail(f"must be a finite number, got {show(value)}")
    if positive and value <= minimum:
        fail(f"must be greater than {minimum:g}, got {show(value)}")
    if value < minimum:
        fail(f"must be at least {minimum:g}, got {show(value)}")
    if value > maximum:
        fail(f"is implausibly large: at most {maximum:g}, got {show(value)}")
    return float(value)


def number(*, minimum: float = 0.0, positive: bool = False, maximum: float = MAX_USD) -> Any:
    """A finite number (an int is accepted, a boolean is not) in ``[minimum, maximum]``, or
    above ``minimum`` when ``positive``."""
    low = "exclusiveMinimum" if positive else "minimum"
    return checked(
        float,
        lambda v: check_number(v, minimum=minimum, positive=positive, maximum=maximum),
        {"type": "number", low: minimum, "maximum": maximum},
    )


def check_integer(value: Any, *, minimum: int = 0, maximum: int) -> int:
    if isinstance(value, bool):
        fail(f"must be a whole number, got the boolean {show(value)}")
    if isinstance(value, float):
        fail(f"must be a whole number, got {show(value)}")
    if not isinstance(value, int):
        fail(f"must be a whole number, got {kind(value)} {show(value)}")
    if value < minimum:
        fail(f"must be at least {minimum}, got {value}")
    if value > maximum:
        fail(f"is implausibly large: at most {maximum}, got {show(value)}")
    return value


def integer(*, minimum: int = 0, maximum: int) -> Any:
    """A whole number (not a boolean, not 2.0) in ``[minimum, maximum]``."""
    return checked(
        int,
        lambda v: check_integer(v, minimum=minimum, maximum=maximum),
        {"type": "integer", "minimum": minimum, "maximum": maximum},
    )


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        fail(f"must be true or false, got {show(value)}")
    return value


Bool = checked(bool, _boolean, {"type": "boolean"})


def check_text(value: Any, *, max_len: int = 256) -> str:
    """Non-empty single-line text without control characters, stripped."""
    if not isinstance(value, str) or not value.strip():
        fail(f"must be non-empty text, got {kind(value)} {show(value)}")
    if len(value) > max_len:
        fail(f"is longer than {max_len} characters")
    if any(unicodedata.category(c) in ("Cc", "Cs") for c in value):
        fail("must be a single line without control characters")
    return value.strip()


def text(*, max_len: int = 256) -> Any:
    return checked(
        str,
        lambda v: check_text(v, max_len=max_len),
        {"type": "string", "minLength": 1, "maxLength": max_len},
    )


def check_prose(value: Any) -> str:
    """Non-empty text (several lines allowed), stripped."""
    if not isinstance(value, str) or not value.strip():
        fail(f"must be non-empty text, got {kind(value)} {show(value)}")
    return value.strip()


Prose = checked(str, check_prose, {"type": "string", "minLength": 1})


def check_name(value: Any, pattern: re.Pattern[str], what: str) -> str:
    if not isinstance(value, str):
        fail(f"must be {what}, got {kind(value)} {show(value)}")
    if not pattern.fullmatch(value):
        fail(f"must be {what}, got {show(value)}")
    return value


def name(pattern: str, what: str) -> Any:
    """Text matching ``pattern`` (whole), described as ``what`` when it does not."""
    compiled = re.compile(pattern)
    return checked(
        str,
        lambda v: check_name(v, compiled, what),
        {"type": "string", "pattern": f"^(?:{pattern})$"},
    )


def one_of(values: tuple[str, ...]) -> Any:
    """One of ``values`` exactly."""

    def check(value: Any) -> str:
        if not isinstance(value, str) or value not in values:
            fail(f"must be one of {list(values)}, got {show(value)}")
        return value

    return checked(str, check, {"type": "string", "enum": list(values)})


def _zone(value: str) -> str:
    if value == UNKNOWN:
        fail(f"{UNKNOWN} is not a zone: name a known zone")
    return value


ZONE_WHAT = "an upper-case zone name such as EU or US"


def check_zone(value: Any) -> str:
    return _zone(check_name(value, ZONE_RE, ZONE_WHAT))


Zone = checked(
    str,
    check_zone,
    {"type": "string", "pattern": f"^(?:{ZONE_PATTERN})$", "not": {"const": UNKNOWN}},
)


DNS_LABEL = r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?"
# A team is a Kubernetes namespace: quotas, budgets, requests, sources and principals name it.
Namespace = name(DNS_LABEL, "a Kubernetes namespace name (a-z, 0-9, '-', at most 63 characters)")


def _timestamp(value: Any) -> datetime:
    """An ISO-8601 timestamp with a time zone, returned in UTC."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        fail(f"must be a timestamp with time and time zone, got the date {value}")
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            fail(f"must be an ISO-8601 timestamp such as 2026-11-25T12:00:00Z, got {show(value)}")
    else:
        fail(f"must be an ISO-8601 timestamp, got {kind(value)} {show(value)}")
    if moment.tzinfo is None or moment.utcoffset() is None:
        fail(f"must carry a time zone (e.g. 'Z' or '+01:00'), got {moment}")
    try:
        return moment.astimezone(UTC)
    except (OverflowError, ValueError):
        fail(f"is out of range: {moment}")


Timestamp = checked(datetime, _timestamp, {"type": "string", "format": "date-time"})


def check_share(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        fail(f"must be a number between 0 and 1, got {show(value)}")
    return float(value)


Share = checked(float, check_share, {"type": "number", "minimum": 0, "maximum": 1})


# --------------------------------------------------------------------------------------------
# Validating a document: pydantic's errors as `<file>: <field>: <problem>`
# --------------------------------------------------------------------------------------------


def _problem(error: ErrorDetails) -> str:
    kind_of, value = error["type"], error.get("input")
    ctx = error.get("ctx") or {}
    if kind_of == "missing":
        return "required"
    if kind_of in ("model_type", "dict_type", "model_attributes_type", "mapping_type"):
        return f"must be a mapping, got {kind(value)}"
    if kind_of in ("list_type", "tuple_type", "set_type", "frozen_set_type"):
        return f"must be a list, got {kind(value)}"
    if kind_of == "too_short" and ctx.get("min_length") == 1:
        return "must not be empty"
    if kind_of == "too_short":
        return f"must hold at least {ctx.get('min_length')} items"
    if kind_of == "too_long":
        return f"must hold at most {ctx.get('max_length')} items"
    if kind_of in ("invalid_key", "string_type") and error["loc"][-1:] == ("[key]",):
        return f"keys must be text, got {show(value)}"
    if kind_of == "invalid_key":
        return f"keys must be text, got {show(error['loc'][-1])}"
    if kind_of == "recursion_loop":
        return "nested too deeply"
    return error["msg"]


def _loc(error: ErrorDetails) -> Loc:
    loc = tuple(error["loc"])
    if loc[-1:] == ("[key]",):
        loc = loc[:-2] if error["type"] == "string_type" else loc[:-1]
    elif error["type"] == "invalid_key":
        loc = loc[:-1]
    return loc + tuple((error.get("ctx") or {}).get("at", ()))


_RANK = {"config": 2, "missing": 1}


def _order(error: ErrorDetails) -> tuple[tuple[int, ...], int]:
    """Document order, with a mapping's unknown and missing keys before its values' problems
    (as a reader checks the keys of an entry first)."""
    indices = tuple(p for p in _loc(error) if isinstance(p, int))
    unknown_key = error["type"] == "config" and str(error["msg"]).startswith("unknown key")
    return indices, 0 if unknown_key else _RANK.get(error["type"], 2)


_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _readable(value: Any) -> str | None:
    if isinstance(value, str) and 0 < len(value) <= 128 and value.isprintable():
        return value
    return None


def field_path(loc: Loc, doc: Any, labels: Mapping[str, str], prefix: str = "") -> str:
    """``clusters[1] (us-east-a100).pools[0].total`` for loc ``("clusters", 1, "pools", 0,
    "total")``: a list entry is followed by its name (``labels``: list key -> name key)."""
    out = prefix
    node: Any = doc
    parent_key: str | int | None = None
    for part in loc:
        child = None
        if isinstance(node, Mapping):
            child = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            child = node[part]
        if isinstance(part, int) and isinstance(node, list):
            out += f"[{part}]"
            label_key = labels.get(str(parent_key)) if parent_key is not None else None
            label = (
                _readable(child.get(label_key))
                if label_key and isinstance(child, Mapping)
                else None
            )
            if label:
                out += f" ({label})"
        elif isinstance(part, str) and not _PLAIN_KEY.fullmatch(part):
            out += f'["{part}"]'  # a key such as requests.nvidia.com/gpu
        else:
            out = f"{out}.{part}" if out else str(part)
        node, parent_key = child, part
    return out or "(top level)"


def validate(
    model: type[M],
    doc: Any,
    path: Path | str,
    *,
    prefix: str = "",
    context: Mapping[str, Any] | None = None,
) -> M:
    """``doc`` validated as ``model``; the first problem (in document order) raised as
    `InputFileError` naming ``path`` and the field (``prefix`` before it). ``context`` reaches
    the validators that need more than the document (a file's folder)."""
    try:
        return model.model_validate(doc, context=context)
    except ValidationError as exc:
        errors = sorted(exc.errors(include_url=False), key=_order)
        first = errors[0]
        where = field_path(_loc(first), doc, model.labels, prefix)
        raise InputFileError(path, where, _problem(first)) from None
    except RecursionError:
        raise InputFileError(path, prefix or "(top level)", "nested too deeply") from None


def _close_patterned_maps(node: Any) -> None:
    """A mapping whose keys are checked (``latency_ms``: zone -> ms) allows no other keys: pydantic
    writes its key check as ``patternProperties`` only, which lets any other key through."""
    if isinstance(node, dict):
        if "patternProperties" in node and "additionalProperties" not in node:
            node["additionalProperties"] = False
        for child in node.values():
            _close_patterned_maps(child)
    elif isinstance(node, list):
        for child in node:
            _close_patterned_maps(child)


def json_schema(model: type[BaseModel], title: str, description: str) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a file's model, for editors."""
    schema = model.model_json_schema(mode="validation")
    _close_patterned_maps(schema)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        **schema,
        "title": title,
        "description": description,
    }
