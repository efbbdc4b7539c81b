"""Progress of long work in the run's logs (and so in the dagster CLI and the UI).

* `RateLog`: for work done in countable steps (embedding batches): "done/total (share),
  items/s, ETA", logged at most every ``every_s`` seconds and always for the last step;
* `heartbeat`: for one long call that cannot report steps (reading and validating a large file):
  "still <doing> after N s" every ``every_s`` seconds from a background thread, until it returns.
"""

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager


def _duration(seconds: float) -> str:
    seconds = max(seconds, 0.0)
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min"


class RateLog:
    """Logs ``done/total`` with the rate and the estimated time left.

    ``log`` receives one line per report (e.g. ``context.log.info``); ``clock`` is injectable
    for tests.
    """

    def __init__(
        self,
        log: Callable[[str], None],
        what: str,
        total: int,
        *,
        unit: str = "rows",
        every_s: float = 10.0,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        if total < 0:
            raise ValueError(f"total must be >= 0, got {total}")
        if every_s < 0:
            raise ValueError(f"every_s must be >= 0, got {every_s}")
        self.log, self.what, self.total, self.unit = log, what, total, unit
        self.every_s, self.clock = every_s, clock
        self.started = clock()
        self._last: float | None = None
        self.lines = 0

    def line(self, done: int) -> str:
        elapsed = self.clock() - self.started
        rate = done / elapsed if elapsed > 0 else 0.0
        share = done / self.total if self.total else 1.0
        text = (
            f"{self.what}: {done:,}/{self.total:,} {self.unit} ({share:.0%}), "
            f"{rate:,.1f} {self.unit}/s"
        )
        if done < self.total and rate > 0:
            text += f", about {_duration((self.total - done) / rate)} left"
        elif done >= self.total:
            text += f", done in {_duration(elapsed)}"
        return text

    def update(self, done: int) -> bool:
        """Report ``done`` if the interval has passed or the work is complete; True if logged."""
        if done < 0:
            raise ValueError(f"done must be >= 0, got {done}")
        now = self.clock()
        due = self._last is None or now - self._last >= self.every_s
        if not (due or done >= self.total):
            return False
        self._last = now
        self.lines += 1
        self.log(self.line(done))
        return True


@contextmanager
def heartbeat(
    log: Callable[[str], None], doing: str, *, every_s: float = 10.0
) -> Iterator[threading.Event]:
    """Log ``still <doing> after N s`` every ``every_s`` seconds while the block runs."""
    if every_s <= 0:
        raise ValueError(f"every_s must be > 0, got {every_s}")
    stop = threading.Event()
    started = time.perf_counter()

    def beat() -> None:
        while not stop.wait(every_s):
            log(f"still {doing} after {_duration(time.perf_counter() - started)}")

    thread = threading.Thread(target=beat, name=f"heartbeat: {doing}", daemon=True)
    thread.start()
    try:
        yield stop
    finally:
        stop.set()
        thread.join()
