"""Strict loaders for the reasoning plane's input files: fleet, quotas, budgets, requests,
governance catalog records and GPU telemetry.

Every loader refuses what it does not understand (unknown keys, wrong types, out-of-range or
non-finite numbers, duplicate keys or names) and raises only `InputFileError`, whose message names
the file and the field (``clusters[1] (us-east-a100).pools[0].total``) and says what is wrong.

Files are read through one helper: at most 10 MB, UTF-8 (a leading BOM is allowed), YAML or JSON
chosen by suffix. YAML is read with the safe loader plus a check that refuses a key given twice in
one mapping; JSON refuses duplicate keys and ``NaN``/``Infinity``. Timestamps must carry a time
zone and are returned in UTC.
"""

from __future__ import annotations

import json
import math
import re
import reprlib
import string
import unicodedata
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, NoReturn

import yaml

from data_plane.catalog import CatalogRecord, CatalogRecordError
from data_plane.errors import InputFileError
from reasoning_plane.model import (
    CPU,
    Budget,
    Cluster,
    Fleet,
    GpuPool,
    TeamQuota,
    TelemetrySample,
    Toleration,
    WorkloadRequest,
)

MAX_FILE_BYTES = 10 * 1024 * 1024

GPU_QUOTA_KEY = "requests.nvidia.com/gpu"
BUDGET_PERIODS = ("monthly", "weekly", "daily")
TOLERATION_OPERATORS = ("Exists", "Equal")
TOLERATION_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")

# Caps: values beyond these are typing mistakes, not workloads.
MAX_GPU_COUNT = 4096
MAX_DURATION_S = 30 * 24 * 3600.0  # 30 days
MAX_DATA_GB = 10_000_000.0  # 10 PB
MAX_GPUS_IN_POOL = 1_000_000
MAX_GPU_QUOTA_DIGITS = 9
_MAX_PRICE = 1_000_000.0
_MAX_LATENCY_MS = 86_400_000.0  # a day
_MAX_MEMORY_GB = 100_000.0
_MAX_SPEED = 1_000.0
_MAX_USD = 1e12

_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_ZONE = re.compile(r"[A-Z][A-Z0-9_]{0,31}")
_GPU_TYPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
_REGION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}")
_WORKLOAD = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:/-]{0,254}")
_LABEL_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?")
_DIGITS = re.compile(r"[0-9]+")
_IMAGE = re.compile(r"[^\s]{1,512}")

_REPR = reprlib.Repr()
_REPR.maxlevel = 2
_REPR.maxstring = 60
_REPR.maxother = 60
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = _REPR.maxfrozenset = 4


def _show(value: Any) -> str:
    """A short, bounded repr of a value for an error message (safe on huge or cyclic data)."""
    return _REPR.repr(value)


def _named(where: str, raw: Any, name_key: str = "name") -> str:
    """``where (name)`` when the entry has a short readable name, else ``where``."""
    if isinstance(raw, Mapping):
        name = raw.get(name_key)
        if isinstance(name, str) and 0 < len(name) <= 128 and name.isprintable():
            return f"{where} ({name})"
    return where


def _where(base: str, index: int, raw: Any, name_key: str) -> str:
    """``items[3] (name)`` when the entry has a readable name, else ``items[3]``."""
    return _named(f"{base}[{index}]", raw, name_key)


# --------------------------------------------------------------------------------------------
# Reading files
# --------------------------------------------------------------------------------------------


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
                    f"found duplicate key {_show(key)}",
                    key_node.start_mark,
                )
        return super().construct_mapping(node, deep=deep)


class _JsonDuplicateKey(ValueError):
    pass


def _json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _JsonDuplicateKey(f"duplicate key {_show(key)}")
        out[key] = value
    return out


def _json_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a number JSON allows")


def _json_loads(text: str) -> Any:
    return json.loads(text, object_pairs_hook=_json_object, parse_constant=_json_constant)


def _read_text(path: Path, suffixes: tuple[str, ...]) -> str:
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
    else:
        detail = f"a value cannot be read ({type(exc).__name__}: {str(exc)[:100]})"
    return InputFileError(path, "(syntax)", f"not valid YAML: {detail}")


def _json_error(path: Path, exc: Exception) -> InputFileError:
    if isinstance(exc, json.JSONDecodeError):
        return InputFileError(
            path, f"line {exc.lineno}, column {exc.colno}", f"not valid JSON: {exc.msg}"
        )
    return InputFileError(path, "(syntax)", f"not valid JSON: {str(exc)[:200]}")


# Errors the parsers raise for bad input that are not their own error classes: out-of-range dates
# in YAML timestamps, integers with too many digits, nesting deeper than the interpreter allows.
_PARSE_ERRORS = (ValueError, TypeError, OverflowError, RecursionError)


def _read_documents(path: Path, *, multi: bool = False) -> list[Any]:
    """Parsed documents of a YAML (``.yaml``/``.yml``) or JSON (``.json``) file.

    Only a YAML file read with ``multi`` may hold several ``---`` documents; empty documents are
    dropped. A file with no document at all is refused.
    """
    text = _read_text(path, (".yaml", ".yml", ".json"))
    if path.suffix.lower() == ".json":
        try:
            return [_json_loads(text)]
        except (json.JSONDecodeError, *_PARSE_ERRORS) as exc:
            raise _json_error(path, exc) from None
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


# --------------------------------------------------------------------------------------------
# Checking values
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Check:
    """Value checks that raise `InputFileError` naming this file and the given field."""

    path: Path

    def fail(self, field: str, problem: str) -> NoReturn:
        raise InputFileError(self.path, field, problem)

    def mapping(
        self,
        value: Any,
        field: str,
        *,
        allowed: set[str] | None = None,
        required: tuple[str, ...] = (),
    ) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            self.fail(field, f"must be a mapping, got {_kind(value)}")
        for key in value:
            if not isinstance(key, str):
                self.fail(field, f"keys must be text, got {_show(key)}")
        if allowed is not None:
            unknown = sorted(set(value) - allowed)
            if unknown:
                self.fail(_join(field, unknown[0]), f"unknown key; allowed: {sorted(allowed)}")
        for key in required:
            if key not in value:
                self.fail(_join(field, key), "required")
        return value

    def top(self, doc: Any, key: str) -> list[Any]:
        """The list under the one top-level key of a ``{key: [...]}`` file."""
        if not isinstance(doc, Mapping) or set(doc) != {key}:
            keys = _show(sorted(map(str, doc))) if isinstance(doc, Mapping) else _kind(doc)
            self.fail("(top level)", f"must be a mapping with the single key {key!r}, got {keys}")
        return self.list(doc[key], key)

    def list(self, value: Any, field: str, *, non_empty: bool = False) -> list[Any]:
        if not isinstance(value, list):
            self.fail(field, f"must be a list, got {_kind(value)}")
        if non_empty and not value:
            self.fail(field, "must not be empty")
        return value

    def number(
        self,
        value: Any,
        field: str,
        *,
        minimum: float = 0.0,
        positive: bool = False,
        maximum: float = _MAX_USD,
    ) -> float:
        if isinstance(value, bool):
            self.fail(field, f"must be a number, got the boolean {_show(value)}")
        if not isinstance(value, int | float):
            self.fail(field, f"must be a number, got {_kind(value)} {_show(value)}")
        if isinstance(value, float) and not math.isfinite(value):
            self.fail(field, f"must be a finite number, got {_show(value)}")
        if positive and value <= minimum:
            self.fail(field, f"must be greater than {minimum:g}, got {_show(value)}")
        if value < minimum:
            self.fail(field, f"must be at least {minimum:g}, got {_show(value)}")
        if value > maximum:
            self.fail(field, f"is implausibly large: at most {maximum:g}, got {_show(value)}")
        return float(value)

    def optional_number(self, value: Any, field: str, **limits: Any) -> float | None:
        return None if value is None else self.number(value, field, **limits)

    def integer(self, value: Any, field: str, *, minimum: int = 0, maximum: int) -> int:
        if isinstance(value, bool):
            self.fail(field, f"must be a whole number, got the boolean {_show(value)}")
        if isinstance(value, float):
            self.fail(field, f"must be a whole number, got {_show(value)}")
        if not isinstance(value, int):
            self.fail(field, f"must be a whole number, got {_kind(value)} {_show(value)}")
        if value < minimum:
            self.fail(field, f"must be at least {minimum}, got {value}")
        if value > maximum:
            self.fail(field, f"is implausibly large: at most {maximum}, got {_show(value)}")
        return value

    def boolean(self, value: Any, field: str) -> bool:
        if not isinstance(value, bool):
            self.fail(field, f"must be true or false, got {_show(value)}")
        return value

    def text(self, value: Any, field: str, *, max_len: int = 256) -> str:
        """Non-empty single-line text without control characters."""
        if not isinstance(value, str) or not value.strip():
            self.fail(field, f"must be non-empty text, got {_kind(value)} {_show(value)}")
        if len(value) > max_len:
            self.fail(field, f"is longer than {max_len} characters")
        if any(unicodedata.category(c) in ("Cc", "Cs") for c in value):
            self.fail(field, "must be a single line without control characters")
        return value.strip()

    def name(self, value: Any, field: str, pattern: re.Pattern[str], what: str) -> str:
        if not isinstance(value, str):
            self.fail(field, f"must be {what}, got {_kind(value)} {_show(value)}")
        if not pattern.fullmatch(value):
            self.fail(field, f"must be {what}, got {_show(value)}")
        return value

    def cluster_name(self, value: Any, field: str) -> str:
        return self.name(
            value, field, _DNS_LABEL, "a DNS-1123 label (a-z, 0-9, '-', at most 63 characters)"
        )

    def namespace(self, value: Any, field: str) -> str:
        return self.name(
            value,
            field,
            _DNS_LABEL,
            "a Kubernetes namespace name (a-z, 0-9, '-', at most 63 characters)",
        )

    def subdomain(self, value: Any, field: str) -> str:
        if isinstance(value, str) and len(value) > 253:
            self.fail(field, "must be a DNS-1123 subdomain of at most 253 characters")
        return self.name(value, field, _DNS_SUBDOMAIN, "a DNS-1123 subdomain (a-z, 0-9, '-', '.')")

    def zone(self, value: Any, field: str) -> str:
        zone = self.name(value, field, _ZONE, "an upper-case zone name such as EU or US")
        if zone == "UNKNOWN":
            self.fail(field, "UNKNOWN is not a zone a cluster can be in")
        return zone

    def timestamp(self, value: Any, field: str) -> datetime:
        """An ISO-8601 timestamp with a time zone, returned in UTC."""
        if isinstance(value, datetime):
            moment = value
        elif isinstance(value, date):
            self.fail(field, f"must be a timestamp with time and time zone, got the date {value}")
        elif isinstance(value, str):
            try:
                moment = datetime.fromisoformat(value.strip())
            except ValueError:
                self.fail(
                    field,
                    f"must be an ISO-8601 timestamp such as 2026-11-25T12:00:00Z, "
                    f"got {_show(value)}",
                )
        else:
            self.fail(field, f"must be an ISO-8601 timestamp, got {_kind(value)} {_show(value)}")
        if moment.tzinfo is None or moment.utcoffset() is None:
            self.fail(field, f"must carry a time zone (e.g. 'Z' or '+01:00'), got {moment}")
        try:
            return moment.astimezone(UTC)
        except (OverflowError, ValueError):
            self.fail(field, f"is out of range: {moment}")

    def label_key(self, value: Any, field: str) -> str:
        """A Kubernetes label key: ``[prefix/]name`` (prefix a DNS subdomain)."""
        if not isinstance(value, str):
            self.fail(field, f"label keys must be text, got {_show(value)}")
        prefix, slash, name = value.rpartition("/")
        if slash and (not prefix or len(prefix) > 253 or not _DNS_SUBDOMAIN.fullmatch(prefix)):
            self.fail(field, f"label key prefix must be a DNS subdomain, got {_show(value)}")
        if not _LABEL_NAME.fullmatch(name):
            self.fail(
                field,
                "label key name must be 1-63 characters (letters, digits, '-', '_', '.'), "
                f"starting and ending with a letter or digit, got {_show(value)}",
            )
        return value

    def label_value(self, value: Any, field: str) -> str:
        if not isinstance(value, str):
            self.fail(field, f"label values must be text (quote it), got {_show(value)}")
        if value and not _LABEL_NAME.fullmatch(value):
            self.fail(
                field,
                "label values must be empty or 1-63 characters (letters, digits, '-', '_', '.'), "
                f"starting and ending with a letter or digit, got {_show(value)}",
            )
        return value

    def labels(self, value: Any, field: str) -> dict[str, str]:
        if value is None:
            return {}
        raw = self.mapping(value, field)
        return {
            self.label_key(k, f"{field}.{k}"): self.label_value(v, f"{field}.{k}")
            for k, v in raw.items()
        }


def _kind(value: Any) -> str:
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


def _join(field: str, key: str) -> str:
    return f"{field}.{key}" if field and field != "(top level)" else key


def _unique(
    check: _Check, items: list[Any], key: Callable[[Any], str], field: Callable[[int], str]
) -> None:
    seen: set[str] = set()
    for i, item in enumerate(items):
        value = key(item)
        if value in seen:
            check.fail(field(i), f"duplicate {value!r}")
        seen.add(value)


# --------------------------------------------------------------------------------------------
# Fleet
# --------------------------------------------------------------------------------------------

_CLUSTER_KEYS = {
    "name",
    "zone",
    "region",
    "location",
    "certifications",
    "egress_per_gb",
    "latency_ms",
    "kube_context",
    "namespace_template",
    "service_account",
    "image",
    "node_labels",
    "cpu_price_per_hour",
    "cpu_slots",
    "accepts_unknown_residency",
    "local",
    "pools",
}
_CLUSTER_REQUIRED = ("name", "zone", "region", "egress_per_gb", "latency_ms", "pools")
_POOL_KEYS = {
    "gpu_type",
    "memory_gb",
    "total",
    "price_per_hour",
    "speed",
    "inference_latency_ms",
    "node_labels",
    "tolerations",
}
_POOL_REQUIRED = ("gpu_type", "memory_gb", "total", "price_per_hour")
_TOLERATION_KEYS = {"key", "operator", "value", "effect"}


def _toleration(check: _Check, raw: Any, where: str) -> Toleration:
    raw = check.mapping(raw, where, allowed=_TOLERATION_KEYS, required=("key",))
    key = check.label_key(raw["key"], f"{where}.key")
    operator = raw.get("operator", "Exists")
    if operator not in TOLERATION_OPERATORS:
        check.fail(
            f"{where}.operator",
            f"must be one of {list(TOLERATION_OPERATORS)}, got {_show(operator)}",
        )
    value = raw.get("value")
    if operator == "Equal":
        if value is None:
            check.fail(f"{where}.value", "required when operator is Equal")
        value = check.label_value(value, f"{where}.value")
    elif value is not None:
        check.fail(f"{where}.value", "must be absent when operator is Exists")
    effect = raw.get("effect")
    if effect is not None and effect not in TOLERATION_EFFECTS:
        check.fail(
            f"{where}.effect", f"must be one of {list(TOLERATION_EFFECTS)}, got {_show(effect)}"
        )
    return Toleration(key=key, operator=operator, value=value, effect=effect)


def _pool(check: _Check, raw: Any, where: str) -> GpuPool:
    raw = check.mapping(raw, where, allowed=_POOL_KEYS, required=_POOL_REQUIRED)
    tolerations = raw.get("tolerations")
    if tolerations is None:
        tolerations = []
    tolerations = check.list(tolerations, f"{where}.tolerations")
    return GpuPool(
        gpu_type=check.name(
            raw["gpu_type"],
            f"{where}.gpu_type",
            _GPU_TYPE,
            "a GPU type name (letters, digits, '.', '_', '-', at most 63 characters)",
        ),
        memory_gb=check.number(
            raw["memory_gb"], f"{where}.memory_gb", positive=True, maximum=_MAX_MEMORY_GB
        ),
        total=check.integer(raw["total"], f"{where}.total", maximum=MAX_GPUS_IN_POOL),
        price_per_hour=check.number(
            raw["price_per_hour"], f"{where}.price_per_hour", maximum=_MAX_PRICE
        ),
        speed=check.number(
            raw.get("speed", 1.0), f"{where}.speed", positive=True, maximum=_MAX_SPEED
        ),
        inference_latency_ms=check.number(
            raw.get("inference_latency_ms", 20.0),
            f"{where}.inference_latency_ms",
            maximum=_MAX_LATENCY_MS,
        ),
        node_labels=check.labels(raw.get("node_labels"), f"{where}.node_labels"),
        tolerations=tuple(
            _toleration(check, t, f"{where}.tolerations[{i}]") for i, t in enumerate(tolerations)
        ),
    )


def _namespace_template(check: _Check, value: Any, field: str) -> str:
    template = check.text(value, field, max_len=63)
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as exc:
        check.fail(field, f"not a valid template: {exc}")
    fields = [(name, spec, conv) for _, name, spec, conv in parts if name is not None]
    for name, spec, conv in fields:
        if name != "team" or spec or conv:
            check.fail(field, f"may only contain the placeholder {{team}}, got {{{name}}}")
    rendered = template.format(team="team") if fields else template
    if not _DNS_LABEL.fullmatch(rendered):
        check.fail(
            field,
            "must be a namespace name, or one once {team} is filled in "
            f"(a-z, 0-9, '-'), got {_show(template)}",
        )
    return template


def _cluster(check: _Check, raw: Any, where: str) -> Cluster:
    raw = check.mapping(raw, where, allowed=_CLUSTER_KEYS, required=_CLUSTER_REQUIRED)
    name = check.cluster_name(raw["name"], f"{where}.name")

    certifications = raw.get("certifications")
    certs = check.list([] if certifications is None else certifications, f"{where}.certifications")
    for i, cert in enumerate(certs):
        check.name(
            cert, f"{where}.certifications[{i}]", _ZONE, "an upper-case name such as GDPR or SOC2"
        )

    latency = check.mapping(raw["latency_ms"], f"{where}.latency_ms")
    latency_ms = {
        check.zone(zone, f"{where}.latency_ms.{zone}"): check.number(
            ms, f"{where}.latency_ms.{zone}", maximum=_MAX_LATENCY_MS
        )
        for zone, ms in latency.items()
    }

    pools_raw = check.list(raw["pools"], f"{where}.pools")
    pools = tuple(_pool(check, p, f"{where}.pools[{i}]") for i, p in enumerate(pools_raw))
    _unique(check, list(pools), lambda p: p.gpu_type, lambda i: f"{where}.pools[{i}].gpu_type")
    for i, pool in enumerate(pools):
        if pool.gpu_type.lower() == CPU:
            check.fail(
                f"{where}.pools[{i}].gpu_type",
                f"{pool.gpu_type!r} is reserved for the CPU candidates of a cluster (cpu_slots)",
            )

    kube_context = raw.get("kube_context")
    if kube_context is not None:
        kube_context = check.text(kube_context, f"{where}.kube_context", max_len=253)
    image = raw.get("image")
    if image is not None:
        image = check.name(image, f"{where}.image", _IMAGE, "a container image reference")
    location = raw.get("location")

    return Cluster(
        name=name,
        zone=check.zone(raw["zone"], f"{where}.zone"),
        region=check.name(
            raw["region"], f"{where}.region", _REGION, "a region name such as eu-central-1"
        ),
        location="" if location is None else check.text(location, f"{where}.location"),
        certifications=frozenset(certs),
        pools=pools,
        egress_per_gb=check.number(
            raw["egress_per_gb"], f"{where}.egress_per_gb", maximum=_MAX_PRICE
        ),
        latency_ms=latency_ms,
        kube_context=kube_context,
        namespace_template=_namespace_template(
            check, raw.get("namespace_template", "{team}"), f"{where}.namespace_template"
        ),
        service_account=check.subdomain(
            raw.get("service_account", "dagster-run"), f"{where}.service_account"
        ),
        image=image,
        node_labels=check.labels(raw.get("node_labels"), f"{where}.node_labels"),
        cpu_price_per_hour=check.number(
            raw.get("cpu_price_per_hour", 0.0), f"{where}.cpu_price_per_hour", maximum=_MAX_PRICE
        ),
        cpu_slots=check.integer(
            raw.get("cpu_slots", 0), f"{where}.cpu_slots", maximum=MAX_GPUS_IN_POOL
        ),
        accepts_unknown_residency=check.boolean(
            raw.get("accepts_unknown_residency", False), f"{where}.accepts_unknown_residency"
        ),
        local=check.boolean(raw.get("local", False), f"{where}.local"),
    )


def load_fleet(path: Path | str) -> Fleet:
    """The GPU fleet: clusters, their zones, prices, latencies and GPU pools."""
    path = Path(path)
    check = _Check(path)
    entries = check.top(_read_documents(path)[0], "clusters")
    if not entries:
        check.fail("clusters", "must list at least one cluster")
    clusters = tuple(
        _cluster(check, raw, _where("clusters", i, raw, "name")) for i, raw in enumerate(entries)
    )
    _unique(
        check,
        list(clusters),
        lambda c: c.name,
        lambda i: f"{_where('clusters', i, entries[i], 'name')}.name",
    )
    local = [i for i, c in enumerate(clusters) if c.local]
    if len(local) > 1:
        check.fail(
            f"{_where('clusters', local[1], entries[local[1]], 'name')}.local",
            "only one cluster can be the local machine",
        )
    return Fleet(clusters=clusters)


# --------------------------------------------------------------------------------------------
# Quotas (Kubernetes ResourceQuota manifests)
# --------------------------------------------------------------------------------------------

_QUOTA_KEYS = {"apiVersion", "kind", "metadata", "spec", "status"}
_QUOTA_SPEC_KEYS = {"hard", "scopes", "scopeSelector"}


def _gpu_quota(check: _Check, value: Any, field: str) -> int:
    """``spec.hard["requests.nvidia.com/gpu"]``: a whole number of GPUs (int or digit string)."""
    whole = "GPU quotas must be whole GPUs"
    if isinstance(value, bool):
        check.fail(field, f'{whole}, such as "16"; got the boolean {_show(value)}')
    if isinstance(value, int):
        if value < 0:
            check.fail(field, f"{whole}; a quota cannot be negative, got {value}")
        if value >= 10**MAX_GPU_QUOTA_DIGITS:
            check.fail(field, f"is implausibly large: {_show(value)}")
        return value
    if isinstance(value, float):
        check.fail(field, f'{whole}, such as "16"; got {_show(value)}')
    if not isinstance(value, str):
        check.fail(field, f'{whole}, such as "16"; got {_kind(value)} {_show(value)}')
    quantity = value
    if _DIGITS.fullmatch(quantity):
        if len(quantity) > MAX_GPU_QUOTA_DIGITS:
            check.fail(field, f"is implausibly large: {_show(value)}")
        return int(quantity)
    if quantity.startswith("-"):
        check.fail(field, f"{whole}; a quota cannot be negative, got {_show(value)}")
    if re.fullmatch(r"[0-9.]+m", quantity):
        hint = "'m' means thousandths"
    elif re.fullmatch(r"[0-9.]+(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)", quantity):
        hint = "a unit suffix is not a GPU count"
    elif re.fullmatch(r"[0-9]*\.[0-9]*|[0-9.]+[eE][-+]?[0-9]+", quantity):
        hint = "fractions are not allowed"
    else:
        hint = "write only the number of GPUs"
    check.fail(field, f'{whole}, such as "16"; got {_show(value)} ({hint})')


def _manifests(check: _Check, docs: list[Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """(where, manifest) of every manifest: documents, and the items of ``kind: List``."""
    for index, doc in enumerate(docs):
        where = f"documents[{index}]"
        doc = check.mapping(doc, where, required=("kind",))
        if doc["kind"] != "List":
            yield where, doc
            continue
        unknown = sorted(set(doc) - {"apiVersion", "kind", "items", "metadata"})
        if unknown:
            check.fail(f"{where}.{unknown[0]}", "unknown key in a kind: List")
        items = check.list(doc.get("items"), f"{where}.items")
        for i, item in enumerate(items):
            item_where = f"{where}.items[{i}]"
            item = check.mapping(item, item_where, required=("kind",))
            if item["kind"] == "List":
                check.fail(f"{item_where}.kind", "a List inside a List is not supported")
            yield item_where, item


def load_quotas(path: Path | str) -> dict[str, TeamQuota]:
    """GPU quota per team (namespace) from Kubernetes ResourceQuota manifests.

    The file holds manifests as operators write them (``---``-separated, or a ``kind: List``).
    Other kinds are skipped, as are other resources in ``spec.hard``. Where a namespace has several
    ResourceQuotas limiting GPUs, Kubernetes enforces all of them, so the smallest counts.
    """
    path = Path(path)
    check = _Check(path)
    quotas: dict[str, TeamQuota] = {}
    seen: dict[tuple[str, str], str] = {}
    for where, doc in _manifests(check, _read_documents(path, multi=True)):
        kind = doc["kind"]
        if not isinstance(kind, str):
            check.fail(f"{where}.kind", f"must be text, got {_show(kind)}")
        if kind != "ResourceQuota":
            continue
        where = _named(where, doc.get("metadata"))
        check.mapping(doc, where, allowed=_QUOTA_KEYS, required=("apiVersion", "metadata"))
        if doc["apiVersion"] != "v1":
            check.fail(
                f"{where}.apiVersion",
                f"a ResourceQuota must be apiVersion v1, got {_show(doc['apiVersion'])}",
            )
        meta = check.mapping(doc["metadata"], f"{where}.metadata", required=("name", "namespace"))
        name = check.subdomain(meta["name"], f"{where}.metadata.name")
        team = check.namespace(meta["namespace"], f"{where}.metadata.namespace")
        if (team, name) in seen:
            check.fail(
                f"{where}.metadata.name",
                f"ResourceQuota {team}/{name} appears twice (also at {seen[team, name]})",
            )
        seen[team, name] = where
        spec = doc.get("spec")
        if spec is None:
            continue
        spec = check.mapping(spec, f"{where}.spec", allowed=_QUOTA_SPEC_KEYS)
        hard = spec.get("hard")
        if hard is None:
            continue
        hard = check.mapping(hard, f"{where}.spec.hard")
        if GPU_QUOTA_KEY not in hard:
            continue
        gpus = _gpu_quota(check, hard[GPU_QUOTA_KEY], f'{where}.spec.hard["{GPU_QUOTA_KEY}"]')
        if team not in quotas or gpus < quotas[team].gpus:
            quotas[team] = TeamQuota(team=team, gpus=gpus, source=f"{path}#{name}")
    return quotas


# --------------------------------------------------------------------------------------------
# Budgets
# --------------------------------------------------------------------------------------------

_BUDGET_KEYS = {"team", "limit_usd", "period"}


def load_budgets(path: Path | str) -> dict[str, Budget]:
    """Spending limit per team and period."""
    path = Path(path)
    check = _Check(path)
    budgets: dict[str, Budget] = {}
    for i, raw in enumerate(check.top(_read_documents(path)[0], "budgets")):
        where = _where("budgets", i, raw, "team")
        raw = check.mapping(raw, where, allowed=_BUDGET_KEYS, required=("team", "limit_usd"))
        team = check.namespace(raw["team"], f"{where}.team")
        if team in budgets:
            check.fail(f"{where}.team", f"duplicate team {team!r}")
        period = raw.get("period", "monthly")
        if period not in BUDGET_PERIODS:
            check.fail(
                f"{where}.period", f"must be one of {list(BUDGET_PERIODS)}, got {_show(period)}"
            )
        budgets[team] = Budget(
            team=team,
            limit_usd=check.number(raw["limit_usd"], f"{where}.limit_usd", maximum=_MAX_USD),
            period=period,
        )
    return budgets


# --------------------------------------------------------------------------------------------
# Workload requests
# --------------------------------------------------------------------------------------------

_REQUEST_KEYS = {
    "request_id",
    "workload",
    "team",
    "datasets",
    "gpu_count",
    "gpu_memory_gb",
    "estimated_duration_s",
    "data_gb",
    "latency_slo_ms",
    "priority",
    "gpu_optional",
    "cpu_duration_s",
    "recurring",
    "current_cluster",
    "last_moved_at",
}
_REQUEST_REQUIRED = (
    "request_id",
    "workload",
    "team",
    "datasets",
    "gpu_count",
    "estimated_duration_s",
)


def _request(check: _Check, raw: Any, where: str) -> WorkloadRequest:
    raw = check.mapping(raw, where, allowed=_REQUEST_KEYS, required=_REQUEST_REQUIRED)
    request_id = check.name(
        raw["request_id"],
        f"{where}.request_id",
        _REQUEST_ID,
        "an id of letters, digits and . _ : / - (at most 128 characters)",
    )
    datasets_raw = check.list(raw["datasets"], f"{where}.datasets", non_empty=True)
    datasets: list[str] = []
    for i, dataset in enumerate(datasets_raw):
        name = check.text(dataset, f"{where}.datasets[{i}]")
        if name in datasets:
            check.fail(f"{where}.datasets[{i}]", f"{name!r} is listed twice")
        datasets.append(name)

    gpu_count = raw["gpu_count"]
    if isinstance(gpu_count, int) and not isinstance(gpu_count, bool) and gpu_count < 0:
        check.fail(
            f"{where}.gpu_count", f"must not be negative (0 means CPU work), got {gpu_count}"
        )
    gpu_count = check.integer(gpu_count, f"{where}.gpu_count", maximum=MAX_GPU_COUNT)
    if gpu_count > 0 and "gpu_memory_gb" not in raw:
        check.fail(f"{where}.gpu_memory_gb", "required when gpu_count is above 0")

    current = raw.get("current_cluster")
    last_moved = raw.get("last_moved_at")
    return WorkloadRequest(
        request_id=request_id,
        workload=check.name(
            raw["workload"],
            f"{where}.workload",
            _WORKLOAD,
            "a workload name such as embeddings/support_tickets",
        ),
        team=check.namespace(raw["team"], f"{where}.team"),
        datasets=tuple(datasets),
        gpu_count=gpu_count,
        gpu_memory_gb=check.number(
            raw.get("gpu_memory_gb", 0.0), f"{where}.gpu_memory_gb", maximum=_MAX_MEMORY_GB
        ),
        estimated_duration_s=check.number(
            raw["estimated_duration_s"],
            f"{where}.estimated_duration_s",
            positive=True,
            maximum=MAX_DURATION_S,
        ),
        data_gb=check.number(raw.get("data_gb", 0.0), f"{where}.data_gb", maximum=MAX_DATA_GB),
        latency_slo_ms=check.optional_number(
            raw.get("latency_slo_ms"),
            f"{where}.latency_slo_ms",
            positive=True,
            maximum=_MAX_LATENCY_MS,
        ),
        priority=check.integer(raw.get("priority", 100), f"{where}.priority", maximum=1000),
        gpu_optional=check.boolean(raw.get("gpu_optional", False), f"{where}.gpu_optional"),
        cpu_duration_s=check.optional_number(
            raw.get("cpu_duration_s"),
            f"{where}.cpu_duration_s",
            positive=True,
            maximum=MAX_DURATION_S,
        ),
        recurring=check.boolean(raw.get("recurring", False), f"{where}.recurring"),
        current_cluster=(
            None if current is None else check.cluster_name(current, f"{where}.current_cluster")
        ),
        last_moved_at=(
            None if last_moved is None else check.timestamp(last_moved, f"{where}.last_moved_at")
        ),
    )


def load_requests(path: Path | str) -> list[WorkloadRequest]:
    """Workload requests to place, in file order."""
    path = Path(path)
    check = _Check(path)
    entries = check.top(_read_documents(path)[0], "requests")
    requests = [
        _request(check, raw, _where("requests", i, raw, "request_id"))
        for i, raw in enumerate(entries)
    ]
    _unique(
        check,
        requests,
        lambda r: r.request_id,
        lambda i: f"{_where('requests', i, entries[i], 'request_id')}.request_id",
    )
    return requests


# --------------------------------------------------------------------------------------------
# Governance catalog records
# --------------------------------------------------------------------------------------------


def load_catalog_records(path: Path | str) -> dict[str, CatalogRecord]:
    """Catalog records in the operator JSON shape, by dataset_id.

    ``.json``: a list of records or ``{"records": [...]}``; ``.jsonl``: one record per line (blank
    lines are skipped).
    """
    path = Path(path)
    check = _Check(path)
    text = _read_text(path, (".json", ".jsonl"))
    entries: list[tuple[str, Any]] = []
    if path.suffix.lower() == ".jsonl":
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                value = _json_loads(line)
            except (json.JSONDecodeError, *_PARSE_ERRORS) as exc:
                problem = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)[:200]
                check.fail(f"line {number}", f"not valid JSON: {problem}")
            entries.append((f"records[{len(entries)}] (line {number})", value))
    else:
        try:
            doc = _json_loads(text)
        except (json.JSONDecodeError, *_PARSE_ERRORS) as exc:
            raise _json_error(path, exc) from None
        if isinstance(doc, Mapping):
            doc = check.top(doc, "records")
        elif not isinstance(doc, list):
            check.fail(
                "(top level)",
                f"must be a list of records or {{'records': [...]}}, got {_kind(doc)}",
            )
        entries = [(f"records[{i}]", raw) for i, raw in enumerate(doc)]

    records: dict[str, CatalogRecord] = {}
    for where, raw in entries:
        try:
            record = CatalogRecord.from_dict(raw, where=where)
        except CatalogRecordError as exc:
            field, _, problem = str(exc).rpartition(": ")
            check.fail(field or where, problem)
        except RecursionError:
            check.fail(where, "nested too deeply")
        if record.dataset_id in records:
            check.fail(f"{where}.dataset_id", f"duplicate dataset_id {record.dataset_id!r}")
        records[record.dataset_id] = record
    return records


# --------------------------------------------------------------------------------------------
# Telemetry
# --------------------------------------------------------------------------------------------

_SAMPLE_KEYS = {
    "cluster",
    "gpu_type",
    "free_gpus",
    "utilisation",
    "observed_at",
    "free_memory_gb",
    "free_memory_per_gpu_gb",
}
_SAMPLE_REQUIRED = ("cluster", "gpu_type", "free_gpus", "utilisation", "observed_at")


def load_telemetry(path: Path | str) -> dict[tuple[str, str], TelemetrySample]:
    """The newest telemetry sample per (cluster, gpu_type).

    ``free_memory_per_gpu_gb`` (optional): the free memory of each GPU of the pool. With it a
    GPU counts as free for a request only if its free memory meets the request's; without it
    (most telemetry files) every one of ``free_gpus`` counts, whatever the request's memory
    (`constraints.free_gpus_for`)."""
    path = Path(path)
    check = _Check(path)
    samples: dict[tuple[str, str], TelemetrySample] = {}
    for i, raw in enumerate(check.top(_read_documents(path)[0], "samples")):
        where = f"samples[{i}]"
        raw = check.mapping(raw, where, allowed=_SAMPLE_KEYS, required=_SAMPLE_REQUIRED)
        sample = TelemetrySample(
            cluster=check.cluster_name(raw["cluster"], f"{where}.cluster"),
            gpu_type=check.name(raw["gpu_type"], f"{where}.gpu_type", _GPU_TYPE, "a GPU type name"),
            free_gpus=check.integer(
                raw["free_gpus"], f"{where}.free_gpus", maximum=MAX_GPUS_IN_POOL
            ),
            utilisation=check.number(raw["utilisation"], f"{where}.utilisation", maximum=1.0),
            observed_at=check.timestamp(raw["observed_at"], f"{where}.observed_at"),
            free_memory_gb=check.optional_number(
                raw.get("free_memory_gb"), f"{where}.free_memory_gb", maximum=_MAX_MEMORY_GB
            ),
            free_memory_per_gpu_gb=_per_gpu_memory(
                check, raw.get("free_memory_per_gpu_gb"), f"{where}.free_memory_per_gpu_gb"
            ),
        )
        key = (sample.cluster, sample.gpu_type)
        if key not in samples or sample.observed_at >= samples[key].observed_at:
            samples[key] = sample
    return samples


def _per_gpu_memory(check: _Check, value: Any, where: str) -> tuple[float, ...] | None:
    if value is None:
        return None
    items = check.list(value, where)
    if len(items) > MAX_GPUS_IN_POOL:
        check.fail(where, f"is implausibly long: at most {MAX_GPUS_IN_POOL:,} GPUs")
    return tuple(
        check.number(m, f"{where}[{i}]", maximum=_MAX_MEMORY_GB) for i, m in enumerate(items)
    )
