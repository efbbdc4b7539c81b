"""The alert rules in deploy/observability: valid for Prometheus (`promtool check rules`), firing
on the series they watch (`promtool test rules`), watching only series the plane exports, and
the same in the plain rules file and the operator's PrometheusRule; the exporter's manifests
valid for Kubernetes and wired to what they scrape.

promtool is Debian's (`scripts/install_prometheus.sh`); in CI (CI=true) its absence fails."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from plane_cli.main import build_parser

REPO = Path(__file__).resolve().parents[2]
OBS = REPO / "deploy" / "observability"
RULES = OBS / "plane-alerts.rules.yaml"


def _promtool() -> str:
    found = shutil.which("promtool")
    if found:
        return found
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail("promtool is missing: scripts/install_prometheus.sh installs it in CI")
    pytest.skip("promtool is missing (bash scripts/install_prometheus.sh installs it)")


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=OBS, capture_output=True, text=True, timeout=120)


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def test_promtool_checks_the_rules_and_their_unit_tests_pass() -> None:
    promtool = _promtool()
    checked = _run(promtool, "check", "rules", RULES.name)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 9 rules found" in checked.stdout
    tested = _run(promtool, "test", "rules", "plane-alerts.test.yaml")
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_promtool_refuses_a_broken_rule(tmp_path: Path) -> None:
    """The check is not vacuous: a rule with a bad expression is refused, named."""
    promtool = _promtool()
    broken = yaml.safe_load(RULES.read_text())
    broken["groups"][0]["rules"][0]["expr"] = "plane_database_up =="
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(broken))
    checked = _run(promtool, "check", "rules", str(path))
    assert checked.returncode != 0 and "PlaneMetricsDatabaseDown" in checked.stdout + checked.stderr


def test_the_alerts_cover_what_operators_must_hear_about() -> None:
    alerts = {r["alert"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]}
    assert {
        "PlaneTelemetryStale",
        "PlaneDeferredTooLong",
        "PlaneBudgetNearlySpent",
        "PlaneTickFailing",
        "PlaneTickSlow",
        "PlaneGatewayErrors",
        "PlaneGatewayShedding",
    } <= alerts


def test_every_series_an_alert_reads_is_one_the_plane_exports() -> None:
    source = "".join(p.read_text() for p in (REPO / "observability").glob("*.py"))
    exprs = [r["expr"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]
    names = {n for e in exprs for n in re.findall(r"\bplane_[a-z_]+", e)}
    assert names
    for name in names:
        base = re.sub(r"_(total|bucket|count|sum)$", "", name)
        assert f'"{base}"' in source, f"{name}: no such series in observability/"


# The PrometheusRule shape (monitoring.coreos.com/v1, the operator's CRD, reduced to what the
# operator requires and what a rule may hold): unknown fields refused.
_DURATION = {
    "type": "string",
    "pattern": r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?"
    r"(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$",
}
_STRINGS = {"type": "object", "additionalProperties": {"type": "string"}}
PROMETHEUS_RULE = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "PrometheusRule"},
        "metadata": {
            "type": "object",
            "required": ["name", "namespace"],
            "properties": {
                "name": {"type": "string"},
                "namespace": {"type": "string"},
                "labels": _STRINGS,
                "annotations": _STRINGS,
            },
            "additionalProperties": False,
        },
        "spec": {
            "type": "object",
            "required": ["groups"],
            "additionalProperties": False,
            "properties": {
                "groups": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["name"],
                        "additionalProperties": False,
                        "properties": {
                            "name": {"type": "string", "minLength": 1},
                            "interval": _DURATION,
                            "rules": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "required": ["expr"],
                                    "additionalProperties": False,
                                    "oneOf": [{"required": ["alert"]}, {"required": ["record"]}],
                                    "properties": {
                                        "alert": {"type": "string"},
                                        "record": {"type": "string"},
                                        "expr": {"type": ["string", "integer"]},
                                        "for": _DURATION,
                                        "keep_firing_for": _DURATION,
                                        "labels": _STRINGS,
                                        "annotations": _STRINGS,
                                    },
                                },
                            },
                        },
                    },
                }
            },
        },
    },
}


def test_the_prometheus_rule_is_the_rules_file_in_the_operators_shape(tmp_path: Path) -> None:
    (rule,) = _docs(OBS / "prometheusrule.yaml")
    jsonschema.validate(rule, PROMETHEUS_RULE)
    assert rule["spec"]["groups"] == yaml.safe_load(RULES.read_text())["groups"]
    bad = {**rule, "spec": {"groups": [{"name": "x", "rules": [{"alert": "A", "exp": "1"}]}]}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, PROMETHEUS_RULE)
    promtool = _promtool()  # what the operator hands Prometheus is valid for it
    path = tmp_path / "from-operator.yaml"
    path.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    checked = _run(promtool, "check", "rules", str(path))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_exporters_manifests_validate_and_scrape_what_exists() -> None:
    docs = _docs(OBS / "metrics-exporter.yaml")
    by_kind: dict[str, list[dict]] = {}
    for doc in docs:
        by_kind.setdefault(doc["kind"], []).append(doc)
    for doc in by_kind["Deployment"] + by_kind["Service"]:
        kubernetes_validate.validate(doc, desired_version="1.37", strict=True)
    (deployment,) = by_kind["Deployment"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    args = build_parser().parse_args(container["command"][1:])  # `plane metrics ...` parses
    assert args.command == "metrics" and args.port == 9464 and args.host == "0.0.0.0"
    env = {e["name"] for e in container["env"]}
    assert {"PLANE_DATABASE_URL", "PLANE_QUOTAS_FILE", "PLANE_BUDGETS_FILE"} <= env
    services = {
        s["metadata"]["name"]: s
        for s in by_kind["Service"] + _docs(REPO / "deploy" / "k8s" / "gateway.yaml")
        if s["kind"] == "Service"
    }
    for monitor in by_kind["ServiceMonitor"]:
        wanted = monitor["spec"]["selector"]["matchLabels"]
        matched = [
            s for s in services.values() if wanted.items() <= s["metadata"]["labels"].items()
        ]
        assert len(matched) == 1, monitor["metadata"]["name"]
        ports = {p["name"] for p in matched[0]["spec"]["ports"]}
        assert {e["port"] for e in monitor["spec"]["endpoints"]} <= ports
    assert shlex.join(container["command"]).startswith("plane metrics")
