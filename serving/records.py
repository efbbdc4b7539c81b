"""Writing the gateway's decision records to PostgreSQL off the request path, and the spend a
restarted gateway starts from.

`Recorder.add` only appends to an in-memory buffer (a lock and a list: no I/O on the request
path). A background thread writes the buffer in batches, every ``batch_size`` records or
``interval_s`` seconds, each batch one transaction into ``plane.serving_decisions`` (append-only,
hash-chained by the database: `reasoning_plane.store`). A failed write is logged and retried,
the batch kept at the head of the buffer, so nothing is dropped; a retried batch whose first try
did commit is not written twice (``ON CONFLICT DO NOTHING`` on the request id).

The buffer is bounded: when ``max_buffered`` records wait (the database has been unreachable for
a while), `has_room` is False and the gateway refuses new requests with 503 until the log is
written again. Fail closed: a request the plane could not record is a request it could not
account for, to its auditors or to the team's budget (the settled cost is only in the record).
Requests already admitted still add their records past the bound; they are bounded by the
endpoints' slots. What a caller sends cannot make a record unwritable (`clean`); a record the
database still refuses for what it holds (a constraint) is logged whole as an error and counted
(``refused``) rather than kept, since retrying it cannot succeed and it would block the log.
``close`` writes what is left; what it cannot write it logs as an error, with every request id,
never silently.

`period_spend` is what a gateway starts from: per team, what its budget period already holds
(batch runs settled and reserved, and served requests settled, `store.usage`), so a restart does
not give a team its budget back. `Recorder.follow` keeps the gateway's figure current after that
(every ``refresh_s``): batch work and other gateways spend the same budgets meanwhile, and a new
budget period starts from what that period holds.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import threading
import time
from collections.abc import Mapping, MutableMapping
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from reasoning_plane import store
from reasoning_plane.model import Budget
from reasoning_plane.serving.records import ServingRecord
from reasoning_plane.snapshot import period_start

log = logging.getLogger("plane.serving.records")

COLUMNS = (
    "request_id",
    "decision_id",
    "decided_at",
    "team",
    "principal",
    "model",
    "status",
    "endpoint_id",
    "cluster",
    "reason",
    "runner_up",
    "runner_up_usd",
    "fastest_endpoint",
    "fastest_usd",
    "fastest_feasible",
    "estimated_usd",
    "actual_usd",
    "settled_at",
    "prompt_tokens",
    "completion_tokens",
    "rejected_by_rule",
    "policy_version",
    "snapshot_hash",
    "payload",
)
MAX_EVENT_BYTES = 1 << 20  # a server-sent event longer than this is not counted

INSERT = (
    f"INSERT INTO plane.serving_decisions ({', '.join(COLUMNS)})"
    f" VALUES ({', '.join(['%s'] * len(COLUMNS))}) ON CONFLICT DO NOTHING"
)


def clean(value: Any) -> Any:
    """``value`` as PostgreSQL stores it: a NUL character (which ``text`` and ``jsonb`` refuse,
    and which a caller can put in a model name) becomes U+FFFD, and a float that is not finite
    (which ``jsonb`` refuses) null, so that no caller-supplied value can make a record
    unwritable and stop the gateway's admission (see the module)."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {clean(k): clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    return value


def row_of(record: ServingRecord) -> tuple[Any, ...]:
    """``record`` as a row of ``plane.serving_decisions`` (in `COLUMNS` order)."""
    s = record.settlement
    row = (
        record.request_id,
        record.decision_id,
        record.decided_at,
        record.team,
        record.principal,
        record.model,
        record.status,
        record.endpoint_id,
        record.cluster,
        record.reason,
        record.runner_up,
        record.runner_up_usd,
        record.fastest_endpoint,
        record.fastest_usd,
        record.fastest_feasible,
        record.estimated_usd,
        s.actual_usd if s is not None else None,
        s.settled_at if s is not None else None,
        record.prompt_tokens,
        record.completion_tokens,
        record.rejected_by_rule,
        record.policy_version,
        record.snapshot_hash,
        record.payload(),
    )
    return tuple(Jsonb(clean(v)) if isinstance(v, dict) else clean(v) for v in row)


def write(conn: psycopg.Connection, records: list[ServingRecord]) -> None:
    """Append ``records`` in one transaction (all or none)."""
    with conn.transaction(), conn.cursor() as cur:
        cur.executemany(INSERT, [row_of(r) for r in records])


def write_each(conn: psycopg.Connection, records: list[ServingRecord]) -> list[ServingRecord]:
    """Append ``records`` one transaction each; the ones the database refuses for what they
    hold (a constraint, a value), returned. For a batch that failed as a whole on such a
    record: the others are written, and the refused one does not block the log for ever."""
    refused = []
    for record in records:
        try:
            write(conn, [record])
        except (psycopg.errors.IntegrityError, psycopg.errors.DataError):
            refused.append(record)
    return refused


def period_spend(
    conn: psycopg.Connection, budgets: Mapping[str, Budget], now: datetime | None = None
) -> dict[str, float]:
    """Per team: USD its budget period already holds, batch and serving together (settled, and
    reserved by open batch reservations), each team in its own budget period."""
    now = now or datetime.now(UTC)
    periods = {b.period for b in budgets.values()} | {"monthly"}
    by_period = {p: store.usage(conn, period_start(p, now)) for p in periods}
    teams = set().union(*[set(u) for u in by_period.values()])
    spend: dict[str, float] = {}
    for team in teams:
        period = budgets[team].period if team in budgets else "monthly"
        used = by_period[period].get(team)
        if used is not None and (used.spent_usd or used.reserved_usd):
            spend[team] = used.spent_usd + used.reserved_usd
    return spend


class Recorder:
    """Takes decision records without blocking and writes them in batches (see the module)."""

    def __init__(
        self,
        url: str,
        *,
        batch_size: int = 200,
        interval_s: float = 0.25,
        max_buffered: int = 10_000,
        retry_s: float = 0.5,
        max_retry_s: float = 5.0,
        refresh_s: float = 5.0,
    ) -> None:
        if batch_size < 1 or max_buffered < batch_size or interval_s <= 0:
            raise ValueError(
                "recorder: batch_size must be at least 1, max_buffered at least batch_size, "
                "interval_s above 0"
            )
        self.url = url
        self.batch_size = batch_size
        self.interval_s = interval_s
        self.max_buffered = max_buffered
        self.retry_s = retry_s
        self.max_retry_s = max_retry_s
        self.refresh_s = refresh_s
        self.refreshes = 0  # times the followed spend was brought up to date
        self.written = 0  # records committed
        self.batches = 0  # transactions committed
        self.failures = 0  # failed writes (each retried)
        self.refused = 0  # records the database refused for what they hold (logged whole)
        self.last_error: str | None = None
        self._buffer: list[ServingRecord] = []
        self._cond = threading.Condition()
        self._writing = threading.Lock()  # one writer at a time (the thread, or close/flush)
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._conn: psycopg.Connection | None = None
        self._spent: MutableMapping[str, float] | None = None  # the gateway's, when followed
        self._budgets: Mapping[str, Budget] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._refreshed_at = 0.0

    # -- the request path --------------------------------------------------------------------

    def has_room(self) -> bool:
        """Whether a new request may be admitted: the buffer is below its bound."""
        return len(self._buffer) < self.max_buffered

    @property
    def waiting(self) -> int:
        return len(self._buffer)

    def add(self, record: ServingRecord) -> None:
        """Buffer ``record`` for the next batch (never blocks on the database)."""
        with self._cond:
            self._buffer.append(record)
            if len(self._buffer) >= self.batch_size:
                self._cond.notify()

    # -- the background writer ---------------------------------------------------------------

    def start(self) -> None:
        """Check the schema (a service role has an administrator migrate it, or is refused) and
        start the writer thread."""
        with psycopg.connect(self.url) as conn:
            store.ensure_schema(conn)
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="serving-records", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        delay = self.retry_s
        while True:
            with self._cond:
                if not self._stopping and len(self._buffer) < self.batch_size:
                    self._cond.wait(self.interval_s)
                if self._stopping:
                    return  # close() writes what is left, on its own thread
            if self._write_once():
                delay = self.retry_s
                if time.monotonic() - self._refreshed_at >= self.refresh_s:
                    self._refresh()
            else:
                with self._cond:
                    self._cond.wait(delay)
                delay = min(delay * 2, self.max_retry_s)

    def _write_once(self) -> bool:
        """Write the head of the buffer (up to ``batch_size`` records) in one transaction;
        False when that failed (the records stay at the head, to be retried)."""
        with self._writing:
            return self._write_head()

    def _write_head(self) -> bool:
        with self._cond:
            batch = self._buffer[: self.batch_size]
        if not batch:
            return True
        try:
            if self._conn is None or self._conn.closed:
                self._conn = psycopg.connect(self.url, autocommit=True)
            try:
                write(self._conn, batch)
            except (psycopg.errors.IntegrityError, psycopg.errors.DataError):
                for bad in write_each(self._conn, batch):
                    # Refused for what it holds: retrying cannot help, and keeping it would
                    # stop admission for good. Logged whole, as an error: not lost silently.
                    self.refused += 1
                    log.error(
                        "serving records: the database refused the record of request %s; "
                        "it is not in the log: %s",
                        bad.request_id,
                        json.dumps(clean(bad.payload()), default=str),
                    )
        except psycopg.Error as exc:
            self.failures += 1
            self.last_error = str(exc).strip()
            log.warning(
                "serving records: writing %d of %d waiting failed, will retry: %s",
                len(batch),
                len(self._buffer),
                self.last_error,
            )
            if self._conn is not None:
                self._conn.close()
            self._conn = None
            return False
        with self._cond:
            del self._buffer[: len(batch)]  # only the writer takes from the head
        self.written += len(batch)
        self.batches += 1
        return True

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Write everything buffered now (retrying until ``timeout_s``); True when it was."""
        deadline = time.monotonic() + timeout_s
        delay = self.retry_s
        while self._buffer:
            if not self._write_once():
                if time.monotonic() + delay > deadline:
                    return False
                time.sleep(delay)
                delay = min(delay * 2, self.max_retry_s)
        return True

    def close(self, timeout_s: float = 10.0) -> None:
        """Stop the writer and write what is left. Records that still cannot be written are
        logged as an error with their request ids (they are not dropped silently)."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None
        if not self.flush(timeout_s):
            lost = [r.request_id for r in self._buffer]
            log.error(
                "serving records: %d decision records could not be written (%s): %s",
                len(lost),
                self.last_error,
                ", ".join(lost),
            )
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # -- the team's spend ----------------------------------------------------------------------

    def follow(
        self,
        spent: MutableMapping[str, float],
        budgets: Mapping[str, Budget],
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        """Load the period's spend into ``spent`` (the gateway's ``spent_usd``) now, and keep
        it current from the writer thread: each team's figure becomes what the database holds
        for its period plus this gateway's settled records not written yet. ``loop``: the
        gateway's event loop, which alone changes ``spent`` (settlements happen there), so the
        figure is set between its steps and no settlement is counted twice or missed."""
        self._spent, self._budgets, self._loop = spent, budgets, loop
        self._apply(self.period_spend(budgets))
        self._refreshed_at = time.monotonic()

    def _refresh(self) -> None:
        """Bring the followed spend up to date (on the writer thread, between two writes, so
        that each of this gateway's settled records is either in the database's figure or still
        in the buffer)."""
        self._refreshed_at = time.monotonic()
        if self._spent is None:
            return
        try:
            if self._conn is None or self._conn.closed:
                self._conn = psycopg.connect(self.url, autocommit=True)
            held = period_spend(self._conn, self._budgets)
        except psycopg.Error as exc:
            log.warning("serving records: reading the teams' spend failed: %s", exc)
            return
        if self._loop is None or self._loop.is_closed():
            self._apply(held)
            return
        done = threading.Event()

        def apply() -> None:
            try:
                self._apply(held)
            finally:
                done.set()

        try:
            self._loop.call_soon_threadsafe(apply)
        except RuntimeError:  # the loop has stopped: nothing is settled there any more
            return
        deadline = time.monotonic() + 5.0  # no write until it is applied (see the docstring)
        while not done.wait(0.05) and not self._stopping and time.monotonic() < deadline:
            pass

    def _apply(self, held: Mapping[str, float]) -> None:
        spent = self._spent
        if spent is None:
            return
        with self._cond:
            pending: dict[str, float] = {}
            for r in self._buffer:
                if r.settlement is not None:
                    pending[r.team] = pending.get(r.team, 0.0) + r.settlement.actual_usd
        for team in {*spent, *held, *pending}:
            spent[team] = held.get(team, 0.0) + pending.get(team, 0.0)
        self.refreshes += 1

    def period_spend(
        self, budgets: Mapping[str, Budget], now: datetime | None = None
    ) -> dict[str, float]:
        """`period_spend` from this recorder's database."""
        with psycopg.connect(self.url) as conn:
            return period_spend(conn, budgets, now)


def token_count(value: object) -> int | None:
    """A token count the runtime reported, if it is one."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


class StreamUsage:
    """The tokens of a streamed answer: the runtime's ``usage`` when a chunk carries one, else
    one completion token per chunk carrying generated text (llama.cpp, vLLM and Ollama send a
    chunk per token)."""

    def __init__(self) -> None:
        self._pending = b""
        self.chunks = 0
        self.usage: dict | None = None

    def feed(self, data: bytes) -> None:
        self._pending += data
        *events, self._pending = self._pending.replace(b"\r\n", b"\n").split(b"\n\n")
        if len(self._pending) > MAX_EVENT_BYTES:  # not an event stream: not counted
            self._pending = b""
        for event in events:
            for line in event.split(b"\n"):
                if line.startswith(b"data:"):
                    self._event(line[5:].strip())

    def _event(self, data: bytes) -> None:
        if not data or data == b"[DONE]":
            return
        try:
            chunk = json.loads(data)
        except ValueError:
            return
        if not isinstance(chunk, dict):
            return
        if isinstance(chunk.get("usage"), dict):
            self.usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            if isinstance(choice, dict):
                delta = choice.get("delta") if isinstance(choice.get("delta"), dict) else {}
                if delta.get("content") or choice.get("text"):
                    self.chunks += 1

    def result(self) -> dict:
        if self.usage is not None and token_count(self.usage.get("completion_tokens")) is not None:
            return self.usage
        return {**(self.usage or {}), "completion_tokens": self.chunks}


def logged(conn: psycopg.Connection, request_or_decision_id: str) -> dict[str, Any] | None:
    """The logged record of a request (by request id or decision id): its payload with its
    chain position and row hash; None when there is none."""
    if conn.execute("SELECT to_regclass('plane.serving_decisions')").fetchone() == (None,):
        return None
    row = conn.execute(
        "SELECT payload, chain_pos, row_hash, recorded_at FROM plane.serving_decisions"
        " WHERE request_id = %s OR decision_id = %s LIMIT 1",
        (request_or_decision_id, request_or_decision_id),
    ).fetchone()
    if row is None:
        return None
    payload, pos, row_hash, recorded_at = row
    return {**payload, "chain_pos": pos, "row_hash": row_hash, "recorded_at": str(recorded_at)}
