"""The parent side of the math-verify worker: a persistent child process with a hard wall-clock bound.

Each comparison writes one JSON line and waits (select) for the reply until its deadline; no reply in time
means the worker is killed, restarted in the background, and the answer is "not equivalent". A dead worker,
a broken pipe or garbage on the pipe all read as False. The one thing that raises is a worker that never
starts (GraderUnavailableError, after STARTUP_TRIES tries): grading on without it would silently turn every
symbolic comparison into "not equal", i.e. wrong rewards. Works from any thread (the worker, not this
process, owns the signals); one comparison runs at a time.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import HarnessError

WORKER_SCRIPT = Path(__file__).with_name("worker.py")
DEFAULT_MEMORY_MB = 1024
STARTUP_TIMEOUT = 60.0  # importing sympy + math-verify; seconds on a busy 2-core machine, per try
STARTUP_TRIES = 3  # a worker that says nothing (or exits) within STARTUP_TIMEOUT is started again
SOFT_SHARE = 0.8  # the worker's own timer fires at this share of the deadline; the kill comes after
SYS_PATH_VARIABLE = "ANSWER_PARSERS_SYS_PATH"


class GraderUnavailableError(HarnessError):
    """The math-verify worker did not start in STARTUP_TRIES tries: the run stops instead of grading without it."""


@dataclass
class WorkerStats:
    """Counters for tests and benchmarks."""

    calls: int = 0
    timeouts: int = 0  # hard: the worker was killed
    soft_timeouts: int = 0  # the worker's timer interrupted sympy and the worker lived on
    restarts: int = 0
    statuses: dict[str, int] = field(default_factory=dict)


class MathVerifyWorker:
    """One math-verify child process, started lazily and restarted after a kill or crash."""

    def __init__(self, memory_mb: int = DEFAULT_MEMORY_MB, startup_timeout: float = STARTUP_TIMEOUT,
                 script: Path = WORKER_SCRIPT) -> None:
        self.memory_mb = memory_mb
        self.startup_timeout = startup_timeout
        self.script = script
        self._failed_starts = 0
        self.stats = WorkerStats()
        self._process: subprocess.Popen[bytes] | None = None
        self._ready = False
        self._eof = False
        self._replacement = False  # the running worker replaces a killed one: its start-up is on the clock
        self._spawned_at = 0.0
        self._stderr = None
        self._buffer = b""
        self._next_id = 0
        self._lock = threading.Lock()

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def start(self, wait: bool = False) -> bool:
        """Spawn the worker now, so that its imports overlap other work; `wait`: until it is ready."""
        with self._lock:
            self._spawn()
            return self._ready or (wait and self._wait_ready(self._spawned_at + self.startup_timeout))

    def compare(self, gold: str, answer: str, timeout: float) -> tuple[bool, str]:
        """(whether math-verify finds `answer` equal to `gold` within `timeout` seconds, status).

        Status: "ok"; "timeout" (the worker's timer fired), "killed" (no reply by the deadline),
        "dead" (the worker exited), "memory", "refused" (eval tripwire), "error", "busy" (another thread
        held the worker until the deadline), "starting" (a replacement worker was not ready by the
        deadline). Anything but "ok" comes with False. Raises GraderUnavailableError when the worker does not
        start at all (STARTUP_TRIES tries of startup_timeout seconds each).
        """
        equal, status, _ = self.compare_timed(gold, answer, timeout)
        return equal, status

    def compare_timed(self, gold: str, answer: str, timeout: float) -> tuple[bool, str, float]:
        """compare(), plus the seconds the worker itself had for this comparison (0 when it never got it).

        That can be much less than `timeout`: the wait for another thread's comparison comes out of it. A
        "timeout" then says nothing about what the worker finds with the whole `timeout` (the cache needs this).
        """
        timeout = max(timeout, 0.0)
        deadline = time.monotonic() + timeout
        if not self._lock.acquire(timeout=timeout):
            return *self._count(False, "busy"), 0.0
        try:
            return self._compare_locked(gold, answer, deadline, timeout)
        except GraderUnavailableError:
            raise
        except Exception:  # never raise to the grader: an unexpected failure is "not equivalent"
            self._kill()
            return *self._count(False, "error"), 0.0
        finally:
            self._lock.release()

    def close(self) -> None:
        """Stop the worker (a later comparison starts a new one)."""
        with self._lock:
            self._kill()
            self._replacement = False

    def _compare_locked(self, gold: str, answer: str, deadline: float, timeout: float) -> tuple[bool, str, float]:
        self._spawn()
        if not self._ready:
            started = self._ensure_ready(deadline)
            if started != "ok":
                return *self._count(False, started), 0.0
            if not self._replacement:  # the first start-up is not the comparison's time
                deadline = time.monotonic() + timeout
        self.stats.calls += 1
        self._next_id += 1
        left = max(0.0, deadline - time.monotonic())
        request = {"id": self._next_id, "gold": gold, "answer": answer, "timeout": left * SOFT_SHARE}
        try:
            self._process.stdin.write((json.dumps(request) + "\n").encode())
            self._process.stdin.flush()
        except OSError:  # the worker died: restart for the next call
            return *self._restart("dead"), left
        while True:
            reply = self._read_line(deadline)
            if reply is None:  # EOF: crashed or killed for memory; else still busy at the deadline
                return *self._restart("dead" if self._eof else "killed"), left
            message = _decode(reply)
            if message is None:
                return *self._restart("error"), left
            if message.get("id") == self._next_id:
                status = str(message.get("status"))
                return *self._count(message.get("equal") is True and status == "ok", status), left

    def _ensure_ready(self, deadline: float) -> str:
        """Wait for "ready". The first worker may take startup_timeout (so early verdicts are right); a
        replacement after a kill must fit the caller's deadline, else "starting" and it starts on. A worker
        that exits or stays silent for startup_timeout is started again; after STARTUP_TRIES such starts in a
        row, GraderUnavailableError."""
        while True:
            give_up = self._spawned_at + self.startup_timeout
            if self._wait_ready(min(deadline, give_up) if self._replacement else give_up):
                self._failed_starts = 0
                return "ok"
            if time.monotonic() < give_up and not self._eof:
                return "starting"
            self._failed_starts += 1
            reason = self._startup_failure_reason()
            self._kill()
            if self._failed_starts >= STARTUP_TRIES:
                self._failed_starts = 0
                raise GraderUnavailableError(
                    f"the math-verify grading worker did not start in {STARTUP_TRIES} tries of "
                    f"{self.startup_timeout:.0f} s ({reason}); check that `python -c 'import math_verify'` works "
                    "with this Python, and that the machine has free memory and CPU")
            self._spawn()

    def _startup_failure_reason(self) -> str:
        """The last line the worker wrote to stderr, else what its silence means."""
        with contextlib.suppress(OSError, ValueError, AttributeError):
            self._stderr.seek(0)
            lines = self._stderr.read()[-2000:].decode(errors="replace").strip().splitlines()
            if lines:
                return lines[-1]
        return "it exited without a message" if self._eof else "no reply"

    def _spawn(self) -> None:
        if self._process is not None and self._process.poll() is None:
            return
        self._ready = False
        self._eof = False
        self._buffer = b""
        self._spawned_at = time.monotonic()
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the worker; read on failure
        # -I keeps the worker's own folder and the current directory off sys.path; the parent's import path
        # (PYTHONPATH, editable installs) is handed over explicitly so math-verify is found the same way.
        environment = {**os.environ, SYS_PATH_VARIABLE: json.dumps([path for path in sys.path if path])}
        self._process = subprocess.Popen(
            [sys.executable, "-I", str(self.script), str(self.memory_mb)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=environment,
            close_fds=True,
        )

    def _wait_ready(self, until: float) -> bool:
        line = self._read_line(until)
        message = None if line is None else _decode(line)
        self._ready = bool(message and message.get("ready") is True)
        return self._ready

    def _read_line(self, deadline: float) -> bytes | None:
        """The next line from the worker, or None at the deadline or when the worker has exited.

        A deadline already past still reads what is waiting in the pipe: a worker that said "ready" while
        the parent was busy elsewhere (a vLLM engine starting for over a minute) is ready, not late."""
        stdout = self._process.stdout
        descriptor = stdout.fileno()
        while b"\n" not in self._buffer:
            left = max(0.0, deadline - time.monotonic())
            readable, _, _ = select.select([descriptor], [], [], left)
            if not readable:
                return None
            chunk = os.read(descriptor, 65536)
            if not chunk:  # end of file: the worker is gone (crash, memory kill)
                self._eof = True
                return None
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line

    def _restart(self, status: str) -> tuple[bool, str]:
        self._kill()
        self.stats.restarts += 1
        self._replacement = True
        self._spawn()  # starts in the background while the caller moves on
        return self._count(False, status)

    def _kill(self) -> None:
        process, self._process = self._process, None
        self._ready = False
        self._buffer = b""
        if process is None:
            return
        if process.poll() is None:
            process.kill()
        for stream in (process.stdin, process.stdout, self._stderr):
            with contextlib.suppress(OSError, AttributeError):
                stream.close()
        # Reaping can take a moment when the worker held a lot of memory: not on the caller's time.
        threading.Thread(target=_reap, args=(process,), daemon=True).start()

    def _count(self, equal: bool, status: str) -> tuple[bool, str]:
        self.stats.statuses[status] = self.stats.statuses.get(status, 0) + 1
        self.stats.timeouts += status == "killed"
        self.stats.soft_timeouts += status == "timeout"
        return equal, status


def _reap(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=60)


def _decode(line: bytes) -> dict | None:
    try:
        message = json.loads(line)
    except ValueError:
        return None
    return message if isinstance(message, dict) else None
