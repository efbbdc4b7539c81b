"""deploy/helm/values.yaml against our description of the Dagster chart's values, offline.

The description is tests/integration/dagster_chart_values.py: a compact JSON Schema, written for
this project, of the dagster/dagster 1.13.x values our file sets (see its docstring for what it
covers and what it leaves to the real chart: `helm lint`/`helm template` with the chart is the
authoritative check on a machine with helm).

What this checks:

* the values validate against it with `jsonschema` (Draft 2020-12), every object we write into
  closed, so a misspelt key or a wrong type fails naming its path;
* the Kubernetes objects inside the values (env, envSecrets, volumes, volumeMounts, probes,
  security contexts, resources) validate against kubernetes-validate's bundled
  v1.37.0-local-strict/_definitions.json, served to the schema's `$ref`s by a `referencing`
  Registry: nothing is fetched, and a `$ref` to any other document fails the test;
* the description stays exactly the keys the values use: a key described but not set fails.

Problems read `deploy/helm/values.yaml: <path>: <problem>`.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from tests.integration.dagster_chart_values import KUBERNETES_DEFINITIONS, VALUES_SCHEMA

REPO = Path(__file__).resolve().parents[2]
VALUES = REPO / "deploy" / "helm" / "values.yaml"
VALUES_NAME = "deploy/helm/values.yaml"
K8S_DEFINITIONS = (
    Path(kubernetes_validate.__file__).parent
    / "kubernetes-json-schema"
    / "v1.37.0-local-strict"
    / "_definitions.json"
)
DESCRIPTION = (
    "the dagster/dagster 1.13.x values described in tests/integration/dagster_chart_values.py"
)


def _load_values() -> dict[str, Any]:
    return yaml.safe_load(VALUES.read_text())


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for child in node.values():
            yield from _refs(child)
    elif isinstance(node, list):
        for child in node:
            yield from _refs(child)


def _registry() -> Registry:
    """The schema's Kubernetes `$ref`s, served by the bundled 1.37 strict definitions."""
    foreign = {ref for ref in _refs(VALUES_SCHEMA) if not ref.startswith(KUBERNETES_DEFINITIONS)}
    assert not foreign, f"dagster_chart_values.py: $ref: documents not available offline: {foreign}"
    definitions = json.loads(K8S_DEFINITIONS.read_text())
    assert definitions["$id"] == KUBERNETES_DEFINITIONS, definitions["$id"]
    resource = Resource.from_contents(definitions, default_specification=DRAFT202012)
    return Registry().with_resource(KUBERNETES_DEFINITIONS, resource)


def _ours(node: Any) -> Iterator[int]:
    """Ids of the schema objects of our description (the rest come from Kubernetes)."""
    if isinstance(node, dict):
        yield id(node)
        for child in node.values():
            yield from _ours(child)
    elif isinstance(node, list):
        for child in node:
            yield from _ours(child)


def _path(parts: Any) -> str:
    text = ""
    for part in parts:
        text += (
            f"[{part}]"
            if isinstance(part, int) or part == "*"
            else (f".{part}" if text else str(part))
        )
    return text or "<top>"


def values_problems(values: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft202012Validator(VALUES_SCHEMA, registry=_registry())
    ours = set(_ours(VALUES_SCHEMA))
    problems = []
    for error in validator.iter_errors(values):
        # for an anyOf, the error of the branch meant (not "is not valid under any of ...")
        shown = jsonschema.exceptions.best_match([error])
        at = tuple(shown.absolute_path)
        if shown.validator == "additionalProperties" and isinstance(shown.instance, dict):
            where = DESCRIPTION if id(shown.schema) in ours else "the Kubernetes 1.37 object"
            defined = shown.schema.get("properties", {})
            problems += [
                f"{VALUES_NAME}: {_path((*at, key))}: not a key of {where}"
                for key in shown.instance
                if key not in defined
            ]
        else:
            problems.append(f"{VALUES_NAME}: {_path(at)}: {shown.message}")
    return problems


def unused_keys(schema: dict[str, Any], value: Any, at: tuple = ()) -> set[str]:
    """Keys the description names that the values do not set (it describes only what we use).

    In a list, a key counts as set when any item sets it (paths show the item as `[*]`).
    """
    found: set[str] = set()
    for branch in schema.get("anyOf", [schema]):
        if "properties" in branch and isinstance(value, dict):
            for key, sub in branch["properties"].items():
                if key in value:
                    found |= unused_keys(sub, value[key], (*at, key))
                else:
                    found.add(_path((*at, key)))
        elif "items" in branch and isinstance(value, list) and value:
            found |= set.intersection(
                *(unused_keys(branch["items"], item, (*at, "*")) for item in value)
            )
    return found


# -- tests -----------------------------------------------------------------------------------


def test_values_validate_against_the_description() -> None:
    problems = values_problems(_load_values())
    assert problems == [], "\n".join(problems)


def test_every_kubernetes_reference_resolves_offline() -> None:
    resolver = _registry().resolver()
    refs = set(_refs(VALUES_SCHEMA))
    assert len(refs) >= 7, refs
    for ref in refs:
        assert resolver.lookup(ref).contents.get("properties"), ref


def test_the_description_names_only_keys_the_values_set() -> None:
    assert unused_keys(VALUES_SCHEMA, _load_values()) == set()


def test_a_described_key_the_values_do_not_set_is_reported() -> None:
    schema = copy.deepcopy(VALUES_SCHEMA)
    schema["properties"]["ingress"] = {"type": "object"}
    location = schema["properties"]["dagster-user-deployments"]["properties"]["deployments"]
    location["items"]["properties"]["replicaCount"] = {"type": "integer"}
    assert unused_keys(schema, _load_values()) == {
        "ingress",
        "dagster-user-deployments.deployments[*].replicaCount",
    }


def test_the_description_is_ours_not_a_copy_of_the_chart_schema() -> None:
    # the chart's schema is generated from pydantic models: titles and `$defs` on every object
    assert "$defs" not in VALUES_SCHEMA
    # (the chart's values.schema.json is well over 100 kB)
    assert len(json.dumps(VALUES_SCHEMA)) < 12_000


def _with(values: dict[str, Any], path: tuple, value: Any) -> dict[str, Any]:
    changed = copy.deepcopy(values)
    node: Any = changed
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    return changed


def _renamed(values: dict[str, Any], path: tuple, new_key: str) -> dict[str, Any]:
    changed = copy.deepcopy(values)
    node: Any = changed
    for part in path[:-1]:
        node = node[part]
    node[new_key] = node.pop(path[-1])
    return changed


CODE_LOCATION = ("dagster-user-deployments", "deployments", 0)
QUEUED = ("dagsterDaemon", "runCoordinator", "config", "queuedRunCoordinator")
S3_LOGS = ("computeLogManager", "config", "s3ComputeLogManager")


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        # misspelt keys: Helm would ignore each (the daemon started without its database Secret)
        (
            lambda v: _renamed(v, ("dagsterDaemon", "envSecrets"), "envSecret"),
            "dagsterDaemon.envSecret: not a key of the dagster/dagster 1.13.x values",
        ),
        (
            lambda v: _renamed(v, (*CODE_LOCATION, "envSecrets"), "envSecret"),
            "dagster-user-deployments.deployments[0].envSecret: not a key",
        ),
        (lambda v: _with(v, ("dagsterDeamon",), {"enabled": True}), "dagsterDeamon: not a key"),
        (
            lambda v: _renamed(v, ("dagster-user-deployments", "enableSubchart"), "enableSubChart"),
            "dagster-user-deployments.enableSubChart: not a key",
        ),
        (
            lambda v: _renamed(v, ("postgresql", "postgresqlParams"), "postgresqlParameters"),
            "postgresql.postgresqlParameters: not a key",
        ),
        (
            lambda v: _renamed(v, ("dagsterDaemon", "runMonitoring", "enabled"), "enable"),
            "dagsterDaemon.runMonitoring.enable: not a key",
        ),
        # a misspelt field inside a Kubernetes object: the strict 1.37 definitions
        (
            lambda v: _renamed(v, (*CODE_LOCATION, "volumeMounts", 0, "readOnly"), "readonly"),
            "dagster-user-deployments.deployments[0].volumeMounts[0].readonly: "
            "not a key of the Kubernetes 1.37 object",
        ),
        (
            lambda v: _renamed(v, ("dagsterWebserver", "volumes", 0, "secret"), "secrets"),
            "dagsterWebserver.volumes[0].secrets: not a key of the Kubernetes 1.37 object",
        ),
        (
            lambda v: _renamed(v, ("dagsterDaemon", "env", 0, "value"), "valeu"),
            "dagsterDaemon.env[0].valeu: not a key of the Kubernetes 1.37 object",
        ),
        (
            lambda v: _renamed(v, ("dagsterDaemon", "resources", "limits"), "limit"),
            "dagsterDaemon.resources.limit: not a key of the Kubernetes 1.37 object",
        ),
        (
            lambda v: _with(v, ("dagsterWebserver", "podSecurityContext", "runAsNonRoot"), "yes"),
            "dagsterWebserver.podSecurityContext.runAsNonRoot: 'yes' is not of type",
        ),
        (
            lambda v: _with(
                v, (*CODE_LOCATION, "securityContext", "allowPrivilegeEscalation"), "false"
            ),
            "dagster-user-deployments.deployments[0].securityContext.allowPrivilegeEscalation: "
            "'false' is not of type",
        ),
        # wrong types
        (
            lambda v: _with(v, ("dagsterWebserver", "replicaCount"), "one"),
            "dagsterWebserver.replicaCount: 'one' is not of type 'integer'",
        ),
        (
            lambda v: _with(v, (*CODE_LOCATION, "port"), "3030"),
            "dagster-user-deployments.deployments[0].port: '3030' is not of type 'integer'",
        ),
        (
            lambda v: _with(
                v,
                (*QUEUED, "maxConcurrentRuns"),
                "48",
            ),
            "dagsterDaemon.runCoordinator.config.queuedRunCoordinator.maxConcurrentRuns: '48'",
        ),
        (
            lambda v: _with(v, ("telemetry", "enabled"), "false"),
            "telemetry.enabled: 'false' is not of type 'boolean'",
        ),
        (
            lambda v: _with(v, ("dagsterDaemon", "image", "pullPolicy"), "IfNotPresnt"),
            "dagsterDaemon.image.pullPolicy: 'IfNotPresnt' is not one of",
        ),
        (
            lambda v: _with(v, ("runLauncher", "type"), "PlacementRunLauncher"),
            "runLauncher.type: 'PlacementRunLauncher' is not one of",
        ),
        # compute logs: the chart prints `region` as is, so {env: ...} would reach the instance
        # as the text "map[env:...]"
        (
            lambda v: _with(v, (*S3_LOGS, "region"), {"env": "PLANE_COMPUTE_LOGS_REGION"}),
            "computeLogManager.config.s3ComputeLogManager.region: {'env': "
            "'PLANE_COMPUTE_LOGS_REGION'} is not of type 'string'",
        ),
        (
            lambda v: _renamed(v, (*S3_LOGS, "uploadInterval"), "upload_interval"),
            "computeLogManager.config.s3ComputeLogManager.upload_interval: not a key",
        ),
        (
            lambda v: _renamed(v, ("pythonLogs", "dagsterHandlerConfig"), "dagster_handler_config"),
            "pythonLogs.dagster_handler_config: not a key",
        ),
        (
            lambda v: _with(v, ("pythonLogs", "pythonLogLevel"), "VERBOSE"),
            "pythonLogs.pythonLogLevel: 'VERBOSE' is not one of",
        ),
        # a code location without its port (Helm replaces the list: no default fills it)
        (
            lambda v: _with(
                v,
                CODE_LOCATION,
                {k: i for k, i in v["dagster-user-deployments"]["deployments"][0].items()}
                | {"port": None},
            ),
            "dagster-user-deployments.deployments[0].port: None is not of type 'integer'",
        ),
        (
            lambda v: _with(
                v,
                CODE_LOCATION,
                {
                    k: i
                    for k, i in v["dagster-user-deployments"]["deployments"][0].items()
                    if k != "port"
                },
            ),
            "dagster-user-deployments.deployments[0]: 'port' is a required property",
        ),
    ],
)
def test_a_broken_value_is_refused_with_its_path(mutate: Any, expected: str) -> None:
    problems = values_problems(mutate(_load_values()))
    assert any(problem.startswith(f"{VALUES_NAME}: {expected}") for problem in problems), problems


def test_a_custom_run_launcher_without_its_config_is_refused() -> None:
    values = _load_values()
    values["runLauncher"]["config"] = {}
    problems = values_problems(values)
    assert f"{VALUES_NAME}: runLauncher.config: 'customRunLauncher' is a required property" in (
        problems
    ), problems


def test_a_compute_log_manager_without_its_config_is_refused() -> None:
    values = _load_values()
    values["computeLogManager"]["config"] = {}
    problems = values_problems(values)
    assert (
        f"{VALUES_NAME}: computeLogManager.config: 's3ComputeLogManager' is a required property"
        in problems
    ), problems


def test_a_run_launcher_type_whose_config_is_not_described_is_refused() -> None:
    values = _load_values()
    values["runLauncher"]["type"] = "K8sRunLauncher"
    problems = values_problems(values)
    assert f"{VALUES_NAME}: runLauncher.config: 'k8sRunLauncher' is a required property" in (
        problems
    ), problems
