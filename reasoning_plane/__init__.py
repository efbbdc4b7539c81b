"""Layer 2C, the Reasoning Plane: the Dagster-free decision core.

model        the plain data decided over (fleet, quotas, budgets, telemetry, requests)
inputs       strict loaders of the fleet, ResourceQuota, budget, catalog, request files
policy       the placement policy and its version
constraints  hard rules, each rejecting a candidate with a named reason
cost         cost and latency model of a candidate
placement    one request: candidates -> rules -> cost -> choice -> decision
batch        all requests of a tick, jointly feasible, by priority tier
hysteresis   recurring workloads do not flap
explain      EXPLAIN-style tables and the decision log payload
index        the hot path: every candidate of a request evaluated at once over arrays
reference    the straightforward path, one candidate at a time: what `index` must equal
memo         per-object caches of what is derived from immutable snapshots and policies
"""
