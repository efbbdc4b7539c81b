"""A runtime server as a child process of the node agent: started on a free loopback port, ready
when its HTTP API answers, stopped with SIGTERM and then SIGKILL after a grace period.

Shared by the llama.cpp adapter and the vLLM adapter's local backend, so both report a server
that died while loading with the same error: what it printed last (its stderr tail), which is
where a bad model path, an out-of-memory or a missing library is said.
"""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx

STDERR_TAIL_CHARS = 2000


class RuntimeStartError(RuntimeError):
    """A runtime server did not become ready: it exited, or it did not answer in time."""


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now (the OS picks it; the server binds it a moment later)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class ServerProcess:
    """One runtime server process. Its stderr goes to a file, not a pipe: a pipe nobody reads
    fills up and blocks a chatty server (llama.cpp logs every request)."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        what: str = "runtime",
    ) -> None:
        self.argv = list(argv)
        self.what = what
        self._log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - kept for the process's life
            prefix="runtime-", suffix=".log", delete=False
        )
        self.log_path = Path(self._log.name)
        try:
            self.proc = subprocess.Popen(
                self.argv,
                env={**os.environ, **(env or {})},
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
            )
        except OSError as e:
            self._close_log(remove=True)
            raise RuntimeStartError(f"{what}: cannot start {self.argv[0]!r}: {e}") from e

    @property
    def alive(self) -> bool:
        """Whether the process is still running (a crashed server is not)."""
        return self.proc.poll() is None

    def output_tail(self, chars: int = STDERR_TAIL_CHARS) -> str:
        """The last ``chars`` characters the server printed."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return text[-chars:]

    def wait_ready(self, url: str, timeout_s: float) -> None:
        """Return when ``GET url`` answers 200; raise `RuntimeStartError` with the server's
        output tail when the process exits first or ``timeout_s`` passes (then it is stopped,
        so a half-started server does not hold the memory the plan counted as free)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.alive:
                code = self.proc.returncode
                tail = self.output_tail()
                self.stop(0)
                raise RuntimeStartError(
                    f"{self.what}: exited with code {code} before answering {url}; "
                    f"its output ends with:\n{tail}"
                )
            try:
                if httpx.get(url, timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        tail = self.output_tail()
        self.stop(0)
        raise RuntimeStartError(
            f"{self.what}: did not answer {url} within {timeout_s:g} s; "
            f"its output ends with:\n{tail}"
        )

    def stop(self, grace_s: float = 10.0) -> None:
        """SIGTERM, then SIGKILL when it has not exited after ``grace_s`` seconds."""
        if self.alive:
            self.proc.terminate()
            try:
                self.proc.wait(grace_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._close_log(remove=True)

    def _close_log(self, *, remove: bool) -> None:
        if not self._log.closed:
            self._log.close()
        if remove:
            self.log_path.unlink(missing_ok=True)
