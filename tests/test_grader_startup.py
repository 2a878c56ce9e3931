"""The math-verify worker starts reliably, and a worker that cannot start stops the run instead of grading
differently (a silent "not equal" for every symbolic comparison would be wrong rewards, not slow ones)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.answer_parsers.checker import STARTUP_TRIES, GraderUnavailableError, MathVerifyWorker
from harness.answer_parsers.equivalence import is_equivalent
from harness.errors import HarnessError

# A stand-in worker that speaks the protocol at once and calls every pair equal: it starts in milliseconds,
# so the test below is about the parent's timing, not about how long sympy takes to import.
INSTANT_WORKER = """
import json, sys
print(json.dumps({"ready": True}), flush=True)
for line in sys.stdin:
    request = json.loads(line)
    print(json.dumps({"id": request["id"], "equal": True, "status": "ok"}), flush=True)
"""
EXITING_WORKER = "import sys; sys.stderr.write('ImportError: No module named math_verify\\n'); sys.exit(1)\n"
SILENT_WORKER = "import time; time.sleep(3600)\n"


def script(tmp_path: Path, source: str) -> Path:
    path = tmp_path / "worker.py"
    path.write_text(source)
    return path


def test_a_ready_worker_is_ready_however_late_the_first_comparison_comes(tmp_path):
    """The cause of "the grading worker did not start" beside an idle worker: the parent asked for the first
    time after the start-up deadline (a vLLM engine had been starting meanwhile) and never read the
    "ready" waiting in the pipe."""
    worker = MathVerifyWorker(startup_timeout=2.0, script=script(tmp_path, INSTANT_WORKER))
    try:
        worker.start()
        first_pid = worker.pid
        time.sleep(3.0)  # past the start-up deadline, as when model loading takes longer than it
        assert worker.compare("1", "1", timeout=5.0) == (True, "ok")
        assert worker.pid == first_pid, "a ready worker was taken for a failed start and replaced"
    finally:
        worker.close()


def test_the_real_worker_starts_beside_four_busy_processes():
    """Under CPU contention (4 busy loops on 2 cores, as beside a starting vLLM engine) the first comparison
    that needs sympy still gets math-verify's verdict."""
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(4)]
    worker = MathVerifyWorker()
    try:
        worker.start()
        time.sleep(1.0)
        assert worker.compare("\\frac{1}{2}+x", "0.5+x", timeout=10.0) == (True, "ok")
        assert worker.compare("x^2", "x^3", timeout=10.0) == (False, "ok")
    finally:
        worker.close()
        for burner in burners:
            burner.kill()
            burner.wait()


@pytest.mark.parametrize(("source", "reason"), [
    (EXITING_WORKER, "ImportError: No module named math_verify"),
    (SILENT_WORKER, "no reply"),
])
def test_a_worker_that_never_starts_stops_with_one_line_after_its_tries(tmp_path, source, reason):
    worker = MathVerifyWorker(startup_timeout=0.5, script=script(tmp_path, source))
    try:
        started = time.monotonic()
        with pytest.raises(GraderUnavailableError) as raised:
            worker.compare("x", "x+0", timeout=1.0)
        assert time.monotonic() - started < STARTUP_TRIES * 0.5 + 5.0
        message = str(raised.value)
        assert "\n" not in message and reason in message and f"{STARTUP_TRIES} tries" in message
        assert isinstance(raised.value, HarnessError)  # the CLI prints it as one line and exits non-zero
    finally:
        worker.close()


def test_is_equivalent_lets_the_startup_failure_through(tmp_path, monkeypatch):
    """Every other failure reads as "not equal"; this one must reach the loop."""
    from harness.answer_parsers import equivalence

    broken = MathVerifyWorker(startup_timeout=0.3, script=script(tmp_path, EXITING_WORKER))
    monkeypatch.setattr(equivalence, "_worker", broken)
    equivalence.clear_cache()
    try:
        assert is_equivalent("2", "2.0")  # decided without the worker: still fine
        with pytest.raises(GraderUnavailableError):
            is_equivalent("x+1", "1+x")
    finally:
        broken.close()
        equivalence.clear_cache()
