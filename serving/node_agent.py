"""The serving node agent: one long-lived process per serving node (``plane node-agent --node
NAME``) that holds the node's runtime adapters for its lifetime and reconciles, Kubernetes-style.

The ``serving/residency_plan`` asset writes what every node should hold
(``plane.residency_desired``); the agent polls its node's rows, applies them through its
adapters with `serving.residency.apply_plan` (the one way actions are applied: unloads and sleeps
before loads, nothing loaded on a node whose memory was not freed) and writes back what its
runtimes hold (``plane.residency_actual``: state, since when, where the model answers, the last
error and why). A llama.cpp server it starts is its child and lives as long as the agent, not as
long as a Dagster run.

It survives:

* a runtime failing: the failure is reported on the model's row (``error``) and the plan is tried
  again after ``retry_s`` (not on every poll: a load that keeps failing is retried, not
  hammered); what the runtimes hold is still reported on every poll;
* the database going away: the poll fails, the agent keeps its runtimes as they are (it never
  unloads for lack of a plan), connects again on the next poll and reports.

Since-when (the planner's minimum residency and cool-down) is the agent's observation: a model's
``since`` is when the agent first saw it in its state; a restarted agent takes it from its last
report where the state agrees.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg

from reasoning_plane import store
from reasoning_plane.serving.planner import COLD, LOADED, Plan, PlanRow
from serving.residency import Action, ApplyError, apply_plan
from serving.runtimes.base import ModelSpec, RuntimeAdapter

log = logging.getLogger("plane.node_agent")

Key = tuple[str, str]  # (runtime, model)


@dataclass
class Poll:
    """What one poll did: the actions done, those that failed (with why), and whether the
    plan was applied at all (not while a failure waits out ``retry_s``)."""

    plan_id: str | None
    applied: bool
    done: list[Action] = field(default_factory=list)
    failed: list[tuple[Action, str]] = field(default_factory=list)
    reported: list[dict[str, Any]] = field(default_factory=list)


class NodeAgent:
    """The reconcile loop of one serving node (see the module)."""

    def __init__(
        self,
        node: str,
        adapters: Mapping[tuple[str, str], RuntimeAdapter],
        specs: Mapping[tuple[str, str], ModelSpec],
        connect: Callable[[], psycopg.Connection],
        *,
        retry_s: float = 30.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.node = node
        self.adapters = {k: a for k, a in adapters.items() if k[0] == node}
        if not self.adapters:
            raise ValueError(f"node agent: {node}: no runtime adapter is configured for this node")
        self.specs = dict(specs)
        self.connect = connect
        self.retry_s = retry_s
        self.clock = clock
        self._conn: psycopg.Connection | None = None
        self._since: dict[Key, tuple[str, datetime]] = {}
        self._errors: dict[Key, str] = {}
        self._plan_of: dict[Key, str] = {}
        self._failed_at: datetime | None = None
        self._failed_plan: str | None = None

    # -- the database ------------------------------------------------------------------------

    def _connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = None
            conn = self.connect()
            if not self._since:  # a restarted agent keeps since-when from its last report
                for r in store.actual_state(conn, self.node):
                    self._since[(r["runtime"], r["model"])] = (r["state"], r["since"])
                conn.commit()
            self._conn = conn
        return self._conn

    def _drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
        self._conn = None

    # -- one poll ----------------------------------------------------------------------------

    def poll(self) -> Poll:
        """Read the node's desired state, apply it, report the actual state. A database error
        is raised (after the runtimes were left as they are); the next poll connects again."""
        try:
            conn = self._connection()
            desired = store.desired_of(conn, self.node)
            conn.commit()
        except psycopg.Error:
            self._drop()
            raise
        now = self.clock()
        result = self._apply(desired, now)
        result.reported = self._observe(desired, now)
        try:
            store.report_actual(conn, self.node, result.reported, now)
            conn.commit()
        except psycopg.Error:
            self._drop()
            raise
        return result

    def _apply(self, desired: list[tuple[str, str, str, str, str]], now: datetime) -> Poll:
        plan_id = desired[0][4] if desired else None
        waiting = (
            self._failed_at is not None
            and plan_id == self._failed_plan
            and (now - self._failed_at).total_seconds() < self.retry_s
        )
        if not desired or waiting:
            return Poll(plan_id, applied=False)
        rows = tuple(
            PlanRow(self.node, runtime, model, state, 0.0, "", why)
            for runtime, model, state, why, _ in desired
        )
        result = Poll(plan_id, applied=True)
        try:
            result.done = apply_plan(Plan(now, rows), self.adapters, self.specs)
        except ApplyError as exc:
            result.done, result.failed = exc.done, exc.failed
        except Exception as exc:  # e.g. a runtime without an adapter: no call was made
            why = f"{type(exc).__name__}: {exc}"
            result.failed = [
                (Action(self.node, r.runtime, r.model, "?", r.state), why) for r in rows
            ]
        for action in result.done:
            self._errors.pop((action.runtime, action.model), None)
            self._plan_of[(action.runtime, action.model)] = plan_id or ""
            log.info("%s", action)
        for action, why in result.failed:
            self._errors[(action.runtime, action.model)] = why
            log.warning("%s failed: %s", action, why)
        if result.failed:
            self._failed_at, self._failed_plan = now, plan_id
        else:
            self._failed_at = self._failed_plan = None
        return result

    def _observe(
        self, desired: list[tuple[str, str, str, str, str]], now: datetime
    ) -> list[dict[str, Any]]:
        """What each runtime holds, with since-when; cold rows only for models this node held
        (the cool-down) or failed to move (the error is the row's point)."""
        held: dict[Key, str] = {}
        unreadable: dict[str, str] = {}
        for (_, runtime), adapter in self.adapters.items():
            try:
                for model, state in adapter.states().items():
                    held[(runtime, model)] = state
            except Exception as exc:  # reported, and its models keep their last known state
                unreadable[runtime] = f"states unreadable: {type(exc).__name__}: {exc}"
        want = {(r, m): s for r, m, s, _, _ in desired}
        out = []
        for key in sorted({*held, *want, *self._since, *self._errors}):
            runtime, model = key
            prev = self._since.get(key)
            if runtime in unreadable:
                state = prev[0] if prev else COLD
                self._errors[key] = unreadable[runtime]
            else:
                state = held.get(key, COLD)
                if self._errors.get(key, "").startswith("states unreadable"):
                    del self._errors[key]
            if want.get(key) == state:
                self._errors.pop(key, None)  # it holds what the plan wants: nothing to report
            if state == COLD and prev is None and key not in self._errors:
                continue  # never held here, nothing wrong: nothing to remember
            since = prev[1] if prev is not None and prev[0] == state else now
            self._since[key] = (state, since)
            url = None
            if state == LOADED and runtime not in unreadable:
                adapter = self.adapters.get((self.node, runtime))
                try:
                    url = adapter.url(model) if adapter is not None else None
                except Exception:  # the URL is informative; the state is what counts
                    url = None
            out.append(
                {
                    "runtime": runtime,
                    "model": model,
                    "state": state,
                    "since": since,
                    "url": url,
                    "error": self._errors.get(key),
                    "plan_id": self._plan_of.get(key),
                }
            )
        return out

    # -- the loop ----------------------------------------------------------------------------

    def run(self, stop: threading.Event, interval_s: float = 2.0) -> None:
        """Poll every ``interval_s`` until ``stop`` is set; a database that is away is logged
        and tried again on the next poll (the runtimes keep what they hold)."""
        while not stop.is_set():
            try:
                self.poll()
            except psycopg.Error as exc:
                log.warning(
                    "node %s: database unreachable (%s); runtimes left as they are, trying "
                    "again in %s s",
                    self.node,
                    str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__,
                    interval_s,
                )
            stop.wait(interval_s)

    def close(self) -> None:
        """Stop what the agent's adapters started (its llama.cpp servers are its children) and
        report it (best effort: a database that is away gets the next agent's report)."""
        for adapter in self.adapters.values():
            closer = getattr(adapter, "close", None)
            if callable(closer):
                closer()
        if self._conn is not None and not self._conn.closed and not self._conn.broken:
            now = self.clock()
            try:
                store.report_actual(self._conn, self.node, self._observe([], now), now)
                self._conn.commit()
            except psycopg.Error as exc:
                log.warning("node %s: final report not written: %s", self.node, exc)
        self._drop()
