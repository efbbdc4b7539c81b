"""Progress lines of long work: rate-limited, with rate and time left; heartbeats stop."""

import threading

import pytest

from assets.progress import RateLog, heartbeat


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_rate_log_reports_share_rate_and_time_left_at_most_every_interval() -> None:
    lines: list[str] = []
    clock = Clock()
    log = RateLog(lines.append, "tickets: encoded", 1000, unit="chunks", every_s=10, clock=clock)
    clock.now += 2
    assert log.update(100)  # the first report is always logged
    assert lines == ["tickets: encoded: 100/1,000 chunks (10%), 50.0 chunks/s, about 18 s left"]
    clock.now += 3
    assert not log.update(250)  # 3 s after the last line: too soon
    clock.now += 7
    assert log.update(400)
    assert lines[-1] == "tickets: encoded: 400/1,000 chunks (40%), 33.3 chunks/s, about 18 s left"
    clock.now += 1
    assert log.update(1000)  # the last step is always logged, however soon
    assert lines[-1] == "tickets: encoded: 1,000/1,000 chunks (100%), 76.9 chunks/s, done in 13 s"
    assert log.lines == 3


def test_rate_log_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="total"):
        RateLog(print, "x", -1)
    with pytest.raises(ValueError, match="every_s"):
        RateLog(print, "x", 1, every_s=-1)
    with pytest.raises(ValueError, match="done"):
        RateLog(print, "x", 1).update(-5)


def test_long_durations_are_shown_in_minutes() -> None:
    clock = Clock()
    lines: list[str] = []
    log = RateLog(lines.append, "big", 100_000, every_s=0, clock=clock)
    clock.now += 60
    log.update(1_000)
    assert lines[-1].endswith("about 99.0 min left")


def test_heartbeat_logs_while_the_block_runs_and_stops_after() -> None:
    lines: list[str] = []
    beat = threading.Event()

    def log(line: str) -> None:
        lines.append(line)
        beat.set()

    with heartbeat(log, "reading big.csv", every_s=0.01):
        assert beat.wait(10), "no heartbeat while the block ran"
    after = len(lines)
    assert lines[0].startswith("still reading big.csv after ")
    beat.clear()
    assert not beat.wait(0.1)  # the thread was stopped and joined: no more lines
    assert len(lines) == after
    with pytest.raises(ValueError, match="every_s"), heartbeat(print, "x", every_s=0):
        pass
