"""Structured logs: the plane's formatter, its switch (PLANE_LOG_FORMAT), and Dagster's own logs
through it with the python_logs block shipped in deploy/observability."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster._config import validate_config
from dagster._core.instance.config import dagster_instance_config_schema

from observability.logs import configure, log_format, reporter

FRAGMENT = (
    Path(__file__).resolve().parents[2] / "deploy" / "observability" / "dagster-json-logs.yaml"
)


def test_json_lines_carry_time_level_logger_message_extra_and_exception() -> None:
    stream = io.StringIO()
    handler = configure({"PLANE_LOG_FORMAT": "json", "PLANE_LOG_LEVEL": "INFO"}, stream=stream)
    try:
        logging.getLogger("plane.test").info("placed %s", "w1", extra={"decision_id": "d1"})
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            logging.getLogger("plane.test").exception("tick failed")
    finally:
        logging.getLogger().removeHandler(handler)
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["message"] == "placed w1" and first["decision_id"] == "d1"
    assert first["level"] == "INFO" and first["logger"] == "plane.test" and "T" in first["time"]
    assert second["level"] == "ERROR" and "RuntimeError: boom" in second["exception"]


def test_the_switch_is_text_by_default_and_refuses_what_it_does_not_know() -> None:
    assert log_format({}) == "text" and log_format({"PLANE_LOG_FORMAT": "JSON"}) == "json"
    with pytest.raises(ValueError, match="PLANE_LOG_FORMAT: 'xml': not one of text, json"):
        log_format({"PLANE_LOG_FORMAT": "xml"})
    with pytest.raises(ValueError, match="PLANE_LOG_LEVEL: 'LOUD'"):
        configure({"PLANE_LOG_LEVEL": "loud"})


def test_the_agents_messages_are_json_records_when_asked(monkeypatch, capsys) -> None:
    stream = io.StringIO()
    monkeypatch.setenv("PLANE_LOG_FORMAT", "json")
    handler = configure(stream=stream)
    try:
        reporter("plane.agent")("plane agent: local: no GPU telemetry: no driver")
    finally:
        logging.getLogger().removeHandler(handler)
    (line,) = stream.getvalue().splitlines()
    assert json.loads(line)["logger"] == "plane.agent"
    monkeypatch.setenv("PLANE_LOG_FORMAT", "text")
    reporter("plane.agent")("as before")
    assert capsys.readouterr().out == "as before\n"


def test_dagsters_logs_go_through_the_json_formatter(capfd) -> None:
    fragment = yaml.safe_load(FRAGMENT.read_text())
    checked = validate_config(dagster_instance_config_schema(), fragment)
    assert checked.success, checked.errors

    @dg.op
    def say(context) -> None:
        context.log.info("hello from a placed run")

    @dg.job
    def speaking() -> None:
        say()

    with dg.instance_for_test(overrides=fragment) as instance:
        assert speaking.execute_in_process(instance=instance).success
    lines = [json.loads(x) for x in capfd.readouterr().err.splitlines() if x.startswith("{")]
    said = [x for x in lines if "hello from a placed run" in x["message"]]
    assert said and said[0]["level"] == "INFO" and said[0]["logger"] == "dagster"
