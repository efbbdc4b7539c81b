"""The values of the Dagster Helm chart (dagster/dagster, 1.13.x) that deploy/helm/values.yaml sets.

A compact JSON Schema (Draft 2020-12) written for this project: it describes only the keys our
values file uses, with the types the chart gives them, so that a misspelt key or a value of the
wrong type fails offline with its path. It is not the chart's schema and does not try to be: a
key we do not set is not described here (and so is refused until it is added, on purpose), and
the chart's own defaults are not repeated. The authoritative check is the real chart, on a
machine with helm:

    helm pull dagster/dagster --version 1.13.27 --untar --untardir /tmp/chart
    helm lint /tmp/chart/dagster -f deploy/helm/values.yaml
    helm template dagster /tmp/chart/dagster -n reasoning-plane -f deploy/helm/values.yaml

How it is written:

* every object we write keys into is closed (`additionalProperties: false`), including those
  the chart itself leaves open (the top level, `dagster-user-deployments` and each code location
  in it), where Helm would silently ignore a misspelt key;
* maps the chart declares free-form stay open: `postgresql.postgresqlParams` (libpq parameters)
  and the custom run launcher's `config` (PlacementRunLauncher's own config, checked against
  deploy/dagster.yaml by tests/integration/test_deploy_manifests.py);
* Kubernetes objects (env vars, Secret env sources, volumes, volume mounts, probes, security
  contexts, resource requirements) are `$ref`s into kubernetes-validate's bundled
  v1.37.0-local-strict/_definitions.json (its `$id` is `KUBERNETES_DEFINITIONS`), resolved
  offline by the test; those definitions refuse unknown fields;
* `required` only where no chart default can answer: inside lists (Helm replaces a list whole,
  so a code location must carry its name, image and port) and the chart's rule that a run
  launcher or run coordinator of a type carries that type's config. Maps are deep-merged over
  the chart's defaults, so a key left out of one is the chart's default, not an error.
"""

from __future__ import annotations

from typing import Any

KUBERNETES_DEFINITIONS = "https://kubernetes.io/api/_definitions.json"

Schema = dict[str, Any]

STRING: Schema = {"type": "string"}
INTEGER: Schema = {"type": "integer"}
BOOLEAN: Schema = {"type": "boolean"}
OPEN_MAP: Schema = {"type": "object"}


def kubernetes(kind: str) -> Schema:
    """A core/v1 object, strict, from the bundled Kubernetes 1.37 definitions."""
    return {"$ref": f"{KUBERNETES_DEFINITIONS}#/$defs/io.k8s.api.core.v1.{kind}"}


def closed(required: tuple[str, ...] = (), **properties: Schema) -> Schema:
    schema: Schema = {"type": "object", "additionalProperties": False, "properties": properties}
    if required:
        schema["required"] = list(required)
    return schema


def one_of_types(*schemas: Schema) -> Schema:
    return {"anyOf": list(schemas)}


def list_of(item: Schema) -> Schema:
    return {"type": "array", "items": item}


def or_null(schema: Schema) -> Schema:
    return one_of_types(schema, {"type": "null"})


def type_needs_its_config(types: dict[str, str]) -> list[Schema]:
    """The chart's rule: `type: X` needs `config.<x's key>`."""
    return [
        {
            "if": {"properties": {"type": {"const": kind}}, "required": ["type"]},
            "then": {"properties": {"config": {"required": [key]}}},
        }
        for kind, key in types.items()
    ]


def image(required: tuple[str, ...] = ()) -> Schema:
    return closed(
        required,
        repository=STRING,
        # the chart accepts a number (tag: 1.0 in YAML); we quote ours
        tag=one_of_types(STRING, INTEGER, {"type": "null"}),
        pullPolicy={"type": "string", "enum": ["Always", "IfNotPresent", "Never"]},
    )


def pod_settings(nullable: bool) -> dict[str, Schema]:
    """What each of the three pods (webserver, daemon, code location) gets from us."""
    wrap = or_null if nullable else (lambda schema: schema)
    return {
        # a list of EnvVar, or the chart's shorthand: a map of name to value
        "env": wrap(
            one_of_types(
                list_of(kubernetes("EnvVar")),
                {"type": "object", "additionalProperties": STRING},
            )
        ),
        "envSecrets": wrap(list_of(kubernetes("SecretEnvSource"))),
        "volumes": or_null(list_of(kubernetes("Volume"))),
        "volumeMounts": or_null(list_of(kubernetes("VolumeMount"))),
        "podSecurityContext": wrap(kubernetes("PodSecurityContext")),
        "securityContext": wrap(kubernetes("SecurityContext")),
        "resources": wrap(kubernetes("ResourceRequirements")),
    }


RUN_LAUNCHER_TYPES = {
    "CeleryK8sRunLauncher": "celeryK8sRunLauncher",
    "K8sRunLauncher": "k8sRunLauncher",
    "CustomRunLauncher": "customRunLauncher",
}
RUN_COORDINATOR_TYPES = {
    "QueuedRunCoordinator": "queuedRunCoordinator",
    "CustomRunCoordinator": "customRunCoordinator",
}

# Only the config of the types we use is described: another type fails here until described.
RUN_LAUNCHER: Schema = {
    **closed(
        type={"type": "string", "enum": list(RUN_LAUNCHER_TYPES)},
        config=closed(
            customRunLauncher=or_null(
                closed(
                    ("module", "class", "config"),
                    module=STRING,
                    **{"class": STRING},
                    config=OPEN_MAP,
                )
            ),
        ),
    ),
    "allOf": type_needs_its_config(RUN_LAUNCHER_TYPES),
}

TAG_CONCURRENCY_LIMIT = closed(
    ("key", "limit"),
    key=STRING,
    value=one_of_types(
        STRING,
        closed(("applyLimitPerUniqueValue",), applyLimitPerUniqueValue=BOOLEAN),
        {"type": "null"},
    ),
    limit=INTEGER,
)

RUN_COORDINATOR: Schema = {
    **closed(
        enabled=BOOLEAN,
        type={"type": "string", "enum": list(RUN_COORDINATOR_TYPES)},
        config=closed(
            queuedRunCoordinator=or_null(
                closed(
                    # a number, or {env: NAME} read at run time
                    maxConcurrentRuns=one_of_types(
                        INTEGER, closed(("env",), env=STRING), {"type": "null"}
                    ),
                    tagConcurrencyLimits=or_null(list_of(TAG_CONCURRENCY_LIMIT)),
                )
            ),
        ),
    ),
    "allOf": type_needs_its_config(RUN_COORDINATOR_TYPES),
}

# Dagster's StringSource: a string, or {env: NAME} read by the process at run time.
STRING_SOURCE = one_of_types(STRING, closed(("env",), env=STRING))

COMPUTE_LOG_MANAGER_TYPES = {"S3ComputeLogManager": "s3ComputeLogManager"}

COMPUTE_LOG_MANAGER: Schema = {
    **closed(
        ("type", "config"),
        type={"type": "string", "enum": list(COMPUTE_LOG_MANAGER_TYPES)},
        config=closed(
            s3ComputeLogManager=closed(
                ("bucket",),
                bucket=STRING_SOURCE,
                prefix=STRING_SOURCE,
                # a string only: the chart's template prints `region` as is, where it passes
                # bucket, prefix and localDir through its stringSource helper; {env: X} would
                # reach the instance as the text "map[env:X]"
                region=STRING,
                localDir=STRING_SOURCE,
                uploadInterval=INTEGER,
            ),
        ),
    ),
    "allOf": type_needs_its_config(COMPUTE_LOG_MANAGER_TYPES),
}

PYTHON_LOGS = closed(
    pythonLogLevel={
        "type": "string",
        "enum": ["CRITICAL", "FATAL", "ERROR", "WARN", "WARNING", "INFO", "DEBUG", "NOTSET"],
    },
    # Python's logging.config dictConfig: free-form for the chart (Dagster checks it)
    dagsterHandlerConfig=OPEN_MAP,
)

WEBSERVER = closed(
    replicaCount=INTEGER,
    image=image(),
    service=closed(type=STRING, port=INTEGER),
    readinessProbe=kubernetes("Probe"),
    **pod_settings(nullable=False),
)

DAEMON = closed(
    enabled=BOOLEAN,
    image=image(),
    runCoordinator=RUN_COORDINATOR,
    # the chart declares these two free-form; the keys are those its instance template reads
    # (run_monitoring.start_timeout_seconds is an int in Dagster's instance config)
    runMonitoring=closed(enabled=BOOLEAN, startTimeoutSeconds=INTEGER),
    runRetries=closed(enabled=BOOLEAN),
    **pod_settings(nullable=False),
)

CODE_LOCATION = closed(
    ("name", "image", "port"),
    name=STRING,
    image=image(("repository", "pullPolicy")),
    dagsterApiGrpcArgs=or_null(list_of(STRING)),
    port=INTEGER,
    includeConfigInLaunchedRuns=or_null(closed(("enabled",), enabled=BOOLEAN)),
    **pod_settings(nullable=True),
)

VALUES_SCHEMA: Schema = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "dagster/dagster 1.13.x values used by deploy/helm/values.yaml",
    **closed(
        **{
            "global": closed(postgresqlSecretName=STRING, dagsterHome=STRING),
            "generatePostgresqlPasswordSecret": BOOLEAN,
            "serviceAccount": closed(create=BOOLEAN, name=STRING),
            "telemetry": closed(enabled=BOOLEAN),
            "postgresql": closed(
                enabled=BOOLEAN,
                postgresqlHost=STRING,
                postgresqlUsername=STRING,
                postgresqlPassword=STRING,
                postgresqlDatabase=STRING,
                postgresqlParams=OPEN_MAP,
                service=closed(port=INTEGER),
            ),
            "dagsterWebserver": WEBSERVER,
            "dagster-user-deployments": closed(
                enabled=BOOLEAN,
                enableSubchart=BOOLEAN,
                deployments=list_of(CODE_LOCATION),
            ),
            "runLauncher": RUN_LAUNCHER,
            "dagsterDaemon": DAEMON,
            "computeLogManager": COMPUTE_LOG_MANAGER,
            "pythonLogs": PYTHON_LOGS,
        }
    ),
}
