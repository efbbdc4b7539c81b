"""Structured logs for the plane's own processes (``plane`` CLI, ``plane agent``, ``plane serve``,
``plane metrics``) and Dagster's Python logs.

``PLANE_LOG_FORMAT=json`` makes every record one JSON object per line on standard error (time,
level, logger, message, and the exception when there is one), which log collectors (Fluent Bit,
Vector, Loki's promtail) parse without rules; ``text`` (the default) is a readable line.
``PLANE_LOG_LEVEL`` sets the level (default: INFO for the plane's own loggers, ``WARNING`` for
libraries, so httpx's line per request stays out unless asked for). Dagster's own loggers use
the same formatter through ``python_logs.dagster_handler_config`` in ``dagster.yaml``
(`JsonFormatter` by its import path, see deploy/observability/dagster-json-logs.yaml).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime

FORMAT_ENV = "PLANE_LOG_FORMAT"
LEVEL_ENV = "PLANE_LOG_LEVEL"
FORMATS = ("text", "json")
# the project's packages and the ``plane.*`` loggers of its long-running commands
OWN_LOGGERS = (
    "plane",
    "assets",
    "data_plane",
    "observability",
    "plane_cli",
    "reasoning_plane",
    "resources",
    "sensors",
    "serving",
)
# attributes every LogRecord has: anything else was passed in ``extra=`` and is kept as a field
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ``time`` (UTC, ISO 8601), ``level``, ``logger``,
    ``message``, ``exception`` (when raised), and the record's ``extra`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def log_format(environ: dict[str, str] | None = None) -> str:
    """The format ``PLANE_LOG_FORMAT`` asks for; anything else is refused, named."""
    value = (environ if environ is not None else os.environ).get(FORMAT_ENV, "text").strip()
    value = value.lower() or "text"
    if value not in FORMATS:
        raise ValueError(f"{FORMAT_ENV}: {value!r}: not one of {', '.join(FORMATS)}")
    return value


def configure(environ: dict[str, str] | None = None, stream=None) -> logging.Handler:
    """Set the root logger's one handler (standard error) to the configured format and level,
    replacing a handler an earlier call set; returns it."""
    env = environ if environ is not None else os.environ
    fmt = log_format(env)
    asked = env.get(LEVEL_ENV, "").strip().upper()
    level = asked or "WARNING"
    if not isinstance(logging.getLevelName(level), int):
        raise ValueError(f"{LEVEL_ENV}: {level!r}: not a logging level (DEBUG, INFO, ...)")
    # The plane's own loggers say what it did (a node agent's loads and unloads, a source it
    # could not read) at INFO unless a level is asked for; libraries stay at WARNING.
    for name in OWN_LOGGERS:
        logging.getLogger(name).setLevel(asked or "INFO")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.set_name("plane")
    handler.setFormatter(
        JsonFormatter()
        if fmt == "json"
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == "plane"]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    return handler


def uvicorn_log_config(environ: dict[str, str] | None = None) -> dict | None:
    """uvicorn's ``log_config`` for the configured format: with json, its loggers (server and
    access log) write through `JsonFormatter`; None (uvicorn's own) with text."""
    if log_format(environ) != "json":
        return None
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": f"{__name__}.JsonFormatter"}},
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stderr",
            }
        },
        "loggers": {
            name: {"handlers": ["default"], "level": "INFO", "propagate": False}
            for name in ("uvicorn", "uvicorn.error", "uvicorn.access")
        },
    }


def reporter(name: str, level: int = logging.WARNING) -> Callable[[str], None]:
    """How a long-running process (``plane agent``) says what happened: a record of logger
    ``name`` with ``PLANE_LOG_FORMAT=json``, else a printed line, as before."""
    if log_format() == "json":
        logger = logging.getLogger(name)
        return lambda message: logger.log(level, message)
    return lambda message: print(message, flush=True)
