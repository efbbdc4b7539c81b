"""Layer 2C, the Reasoning Plane: the Dagster-free decision core.

model        the plain data decided over (fleet, quotas, budgets, telemetry, requests)
inputs       strict loaders of the fleet, ResourceQuota, budget, catalog, request files
config       their pydantic models (and the policy file's), and the JSON Schemas for editors
policy       the placement policy, its version and its file
constraints  hard rules, each rejecting a candidate with a named reason
cost         cost and latency model of a candidate
placement    one request: candidates -> rules -> cost -> choice -> decision
batch        all requests of a tick, jointly feasible, by priority tier
hysteresis   recurring workloads do not flap
explain      EXPLAIN-style tables and the decision log payload
index        the hot path: every candidate of a request evaluated at once over arrays
reference    the straightforward path, one candidate at a time: what `index` must equal
memo         per-object caches of what is derived from immutable snapshots and policies

Around the core (PostgreSQL and the wire, still no Dagster):
store        plane.* tables: decisions, ledger, claims, requests, telemetry, and their grants
tick         one placement tick in one transaction: snapshot, decide, sign, record, anchor
signing      Ed25519 keys; binding: what a decision binds a run to, and its checks
agent        the GPU node's NVML telemetry agent; telemetry_gateway: its per-node identity
"""
