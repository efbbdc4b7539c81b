"""Typed configuration of the reasoning plane: one pydantic model per input file.

* `reasoning_plane.config.plane`: the fleet, quotas (Kubernetes ResourceQuota), budgets,
  workload requests and GPU telemetry files;
* `reasoning_plane.config.policy`: the placement policy file, its fields derived from
  `reasoning_plane.policy.PlacementPolicy`;
* `reasoning_plane.config.schemas`: the JSON Schemas of every configuration file of the project
  (these and the data plane's), written into ``docs/schemas/`` for editors.

The models only validate: each builds the plain frozen dataclasses of `reasoning_plane.model`
that the decision core works on. The loaders are `reasoning_plane.inputs` and
`reasoning_plane.policy.load_policy`; the shared field types and error translation are
`data_plane.config`.
"""
