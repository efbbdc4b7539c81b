"""Cost lens: seeded workload traces and fleets, replayed through placement policies over time.

A trace is a list of ``TimedRequest(arrival_s, request)``. ``simulate`` advances a clock in ticks
of 30 s, as the placement sensor does: each tick it releases the GPUs of jobs that finished,
builds a fresh snapshot from its own state (telemetry observed *now*: free GPUs and utilisation of
every pool; the ledger: GPUs held, reserved and spent per team), asks a policy to place the
pending requests, and starts the placed ones, which hold their GPUs for ``duration / pool speed``.
Requests a policy defers are retried every tick until ``deadline_s`` (6 h) after their arrival,
then expire; the same for every policy.

Policies:

* ``naive``: the fastest pool (highest ``speed``) with enough free GPUs and memory, ignoring
  governance, SLOs, quotas, budgets and telemetry age; it is what "route to the fastest available
  GPU" does.
* ``greedy``: requests one by one in arrival order, each on its cheapest candidate passing every
  hard rule of ``placement.evaluate`` (no joint optimisation, no hysteresis).
* ``plane``: exactly what the sensors run: ``batch.place_batch`` on the requests pending in the
  tick, with the default ``PlacementPolicy``.
* ``hindsight``: what the requests ``plane`` placed could have cost with the whole trace known in
  advance: one integer program (scipy HiGHS ``milp``) over the whole trace. Each such request is
  assigned one option: a (cluster, pool) allowed by the static rules (residency, compliance,
  memory, pool size, quota and budget size, and the SLO on an idle pool) and a start time (its
  arrival, its arrival plus each of ``HINDSIGHT_DELAYS_S``, or the time ``plane`` started it).
  Capacity and quotas are enforced as GPU-seconds per 5-minute slot per pool and per team,
  budgets as total spend per team (the full limit for every priority); the objective is the
  total cost. ``plane``'s own schedule is one feasible point of this program, so its LP
  relaxation's optimum (``SimResult.lower_bound_usd``) is a proven lower bound on ``plane``'s
  cost. The integer schedule is found by fixing what the LP decides and solving the MILP over
  the rest within ``HINDSIGHT_TIME_LIMIT_S`` (its status is in ``notes``); it is never above
  ``plane``: where the solver stops at its time limit with no schedule or a dearer one, plane's
  own schedule (a feasible point of the program) is kept and ``notes`` says so. The program
  relaxes time (slot averages) and congestion (SLO on an idle pool), so hindsight's schedule
  itself may briefly overbook a pool or a quota or miss an SLO; its metrics say how often: it is
  a bound, not a policy. Above ``HINDSIGHT_MAX_VARIABLES`` options the program is solved in
  consecutive time windows (occupancy and spend carried over, no bound), and ``notes`` says so;
  a window that cannot place all its requests maximises placements first, then minimises cost.

Metrics (``SimResult``), all computed the same way from the placements every policy made:

* placed / deferred (deferred at least once) / expired (still deferred at its deadline) /
  rejected (refused for good: no compliant candidate, or a hard rule that waiting cannot fix);
* total cost (GPU + egress per the cost model, ``placement.cost_of``) and cost per 1,000
  requests: total cost / (placed workload requests x ``requests_per_workload``) x 1,000. For
  the generated and the seed-scenario traces one workload request is one request
  (``requests_per_workload = 1``): the figure is the cost of 1,000 placed workloads. For the
  Azure-derived trace one workload request is one LLM inference request;
* residency violations: an input classified as strict by the policy (PII, CONFIDENTIAL, UNKNOWN)
  processed outside its residency zone; compliance violations: PII on a cluster lacking a
  ``pii_certifications`` certification, or ``gdpr_compliant`` data on a cluster without GDPR;
  both counted per placement by the governance rules of ``rules.py`` applied after the fact;
* SLO misses: the cost model's latency on the chosen pool at its start, with the pool's
  utilisation then (GPUs held by jobs started earlier, plus background), above the SLO;
* quota violations: placements after which the team holds more GPUs than its quota (a team
  without a quota has quota 0); budget overruns: placements after which the team's spend
  exceeds its budget (the budget covers the simulated period); capacity overbooked: placements
  after which a pool holds more GPUs than it has;
* utilisation per pool: GPU-seconds held (trace jobs and background) within the trace horizon /
  (pool GPUs x horizon);
* decide_s: wall time spent inside the policy (for hindsight: building and solving the program).

A tick in which nothing changed (no arrival, no finished job, no expiry, nothing placed by the
previous tick) would decide exactly as the previous one, so the clock jumps over it; this is the
same for every policy.

Prices of ``generate_fleet``: the clusters of ``examples/public_prices/fleet.yaml``, public
on-demand list prices of AWS, GCP and Azure in US and EU regions (USD per GPU-hour = instance
price / GPUs), each figure with its source and date in that file's comments, and egress from AWS's
inter-region and internet transfer rates. What the stored price pages did not show (AWS P4d/P5 in
an EU region after the June 2025 cut, Azure in the EU) is left out, not guessed. Speeds (throughput
against an A100, the requests' reference GPU) are rough public benchmark ratios: H100 2.0, H100
NVL 1.9, A100 1.0, L4 0.40.

The seed scenario (``seed_like_scenario``, ``load_scenario``) is read from
``examples/seed_scenario/`` with the loaders of ``reasoning_plane.inputs``: its fleet, quotas,
budgets and catalog as written, its requests recurring over the day, the GPUs its telemetry
reports busy held by other work. Nothing in it is tuned to reproduce a figure.
"""

from reasoning_plane.simulation.azure_trace import (
    AZURE_TRACE,
    TraceMapping,
    azure_scenario,
    read_trace,
    trace_requests,
)
from reasoning_plane.simulation.baselines import greedy_choice, naive_choice
from reasoning_plane.simulation.clock import DEADLINE_S, TICK_S
from reasoning_plane.simulation.generators import (
    PUBLIC_PRICES,
    TEAMS,
    dataset_sizes,
    generate_catalog,
    generate_fleet,
    generate_trace,
    generated_scenario,
)
from reasoning_plane.simulation.hindsight import SLOT_S
from reasoning_plane.simulation.metrics import Placement, SimResult, _audit, summary
from reasoning_plane.simulation.run import POLICIES, compare, simulate, simulate_scenario
from reasoning_plane.simulation.scenario import (
    EPOCH,
    SEED_SCENARIO,
    Scenario,
    TimedRequest,
    _static_snapshot,
    load_scenario,
    recurring_trace,
    seed_fleet,
    seed_like_scenario,
    seed_like_trace,
)

__all__ = [
    "AZURE_TRACE",
    "DEADLINE_S",
    "EPOCH",
    "POLICIES",
    "PUBLIC_PRICES",
    "SEED_SCENARIO",
    "SLOT_S",
    "TEAMS",
    "TICK_S",
    "Placement",
    "Scenario",
    "SimResult",
    "TimedRequest",
    "TraceMapping",
    "_audit",
    "_static_snapshot",
    "azure_scenario",
    "compare",
    "dataset_sizes",
    "generate_catalog",
    "generate_fleet",
    "generate_trace",
    "generated_scenario",
    "greedy_choice",
    "load_scenario",
    "naive_choice",
    "read_trace",
    "recurring_trace",
    "seed_fleet",
    "seed_like_scenario",
    "seed_like_trace",
    "simulate",
    "simulate_scenario",
    "summary",
    "trace_requests",
]
