"""Layer 2C, the Reasoning Plane: the Dagster-free decision core.

model        the plain data decided over (fleet, quotas, budgets, telemetry, requests)
inputs       strict loaders of the fleet, ResourceQuota, budget, catalog, request files
config       their pydantic models (and the policy file's), and the JSON Schemas for editors
policy       the placement policy, its version and its file
rules        each hard rule once, over all candidates, with its reasons; the status
cost         the cost and latency model, over all candidates
index        the candidates of a snapshot as arrays; a request's evaluations, built on use
placement    one request: candidates -> rules -> cost -> choice -> decision
batch        all requests of a tick, jointly feasible, by priority tier
hysteresis   recurring workloads do not flap
explain      EXPLAIN-style tables and the decision log payload
(the one-candidate-at-a-time specification is the test oracle, tests/oracle/)

Around the core (PostgreSQL and the wire, still no Dagster):
store        plane.* tables: decisions, ledger, claims, requests, telemetry; all their SQL,
             their migration steps and grants
launch       the plane/* run-tag contract: a decision's run tags and config, built and checked
tick         one placement tick in one transaction: snapshot, decide, sign, record, anchor
signing      Ed25519 keys; binding: what a decision binds a run to, and its checks
agent        the GPU node's NVML telemetry agent; telemetry_gateway: its per-node identity
simulation/  the simulator: generators, scenario, baselines, clock, hindsight, metrics
"""
