"""Crash safety for real: one tiny run is SIGKILLed while sampling, during an optimizer step and during a
checkpoint write, stopped once with Ctrl-C, and resumed each time; every step is logged exactly once.

The run uses the `hf` sampler (no engine start-up) with the hub switched off (HF_HUB_OFFLINE=1,
TRANSFORMERS_OFFLINE=1): finishing proves that a run needs no hub access. HARNESS_TRACE=1 makes the loop
announce each phase on stderr as it starts; the test kills the whole process group when the wanted one
appears. tests/test_loop.py covers a kill after the first step through vLLM.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import REPO

TINY = ["--sampler", "hf", "--benchmark", "arith", "--limit", "4", "--problems-per-step", "2", "--n-votes", "4",
        "--max-tokens", "12", "--steps", "2", "--no-eval", "--lr", "1e-5", "--optimizer-opt", "kl_coef=0",
        "--parser-opt", 'fallbacks=["last_number"]']  # short answers rarely reach \boxed{}: vote on numbers
OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
TRACE = re.compile(r"\[trace\] phase=(\w+)$")
WAIT_S = 600  # per wait: generous for a loaded 2-core CI machine
TIMING = ("seconds/", "train/seconds", "train/tokens_per_second")  # wall-clock fields differ between runs


class Child:
    """`harness run ARGS` in its own session; its stderr is read line by line on a thread."""

    started: list[Child] = []  # killed at teardown if a failed assertion left one running

    def __init__(self, *args: str) -> None:
        env = {**os.environ, "TTRL_HARNESS_PLUGINS": "", "HARNESS_TRACE": "1", **OFFLINE}
        self.proc = subprocess.Popen([sys.executable, "-m", "harness.cli", "run", *args], cwd=REPO, env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                     start_new_session=True)
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        Child.started.append(self)

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.lines.put(line)
        self.lines.put(None)

    @property
    def stderr(self) -> str:
        return "".join(self.seen)

    def _next(self, deadline: float) -> str | None:
        try:
            line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            self.signal(signal.SIGKILL)
            pytest.fail(f"no progress in {WAIT_S} s; stderr so far:\n{self.stderr[-3000:]}")
        if line is not None:
            self.seen.append(line)
        return line

    def wait_for(self, phase: str, occurrence: int = 1) -> None:
        """Block until the loop announces `phase` for the `occurrence`-th time."""
        for _ in range(occurrence):
            self.wait_for_line(lambda line: (m := TRACE.search(line.rstrip("\n"))) is not None and m[1] == phase,
                               f"phase={phase} #{occurrence}")

    def wait_for_line(self, wanted: Callable[[str], bool], what: str) -> None:
        """Block until a stderr line satisfies `wanted`."""
        deadline = time.monotonic() + WAIT_S
        while True:
            line = self._next(deadline)
            if line is None:
                pytest.fail(f"the run ended before {what}:\n{self.stderr[-3000:]}")
            if wanted(line):
                return

    def signal(self, sig: int) -> int:
        """Send `sig` to the whole process group (as a terminal's Ctrl-C does) and wait for the exit."""
        os.killpg(self.proc.pid, sig)
        return self.finish()

    def finish(self) -> int:
        deadline = time.monotonic() + WAIT_S
        while self._next(deadline) is not None:
            pass
        self.reader.join()
        return self.proc.wait(timeout=60)


@pytest.fixture(autouse=True)
def _no_orphans():
    yield
    while Child.started:
        child = Child.started.pop()
        if child.proc.poll() is None:
            os.killpg(child.proc.pid, signal.SIGKILL)
            child.proc.wait()


def logged_steps(run: Path) -> list[int]:
    path = run / "metrics.jsonl"
    return [json.loads(line)["step"] for line in path.read_text().splitlines()] if path.exists() else []


def checkpointed_step(run: Path) -> int | None:
    meta = run / "checkpoint" / "checkpoint.json"
    return json.loads(meta.read_text())["step"] if meta.exists() else None


def without_timing(record: dict) -> dict:
    return {key: value for key, value in record.items() if not key.startswith(TIMING)}


def kill_during_write(child: Child, partial: Path) -> None:
    """SIGKILL once the checkpoint file is being written (its .partial file exists)."""
    child.wait_for("checkpoint")
    deadline = time.monotonic() + 60
    while not partial.exists() and time.monotonic() < deadline and child.proc.poll() is None:
        time.sleep(0.005)
    assert partial.exists(), f"no {partial.name} appeared:\n{child.stderr[-3000:]}"
    child.signal(signal.SIGKILL)


@pytest.mark.slow
def test_kill_at_each_phase_then_resume_logs_every_step_once(tmp_path):
    """SIGKILL in sample, optimize and checkpoint, and Ctrl-C: resume loses and repeats no step."""
    run = tmp_path / "run"

    # 1. SIGKILL while sampling step 1: step 0 is logged and checkpointed
    first = Child(*TINY, "--output", str(run))
    first.wait_for("sample", occurrence=2)
    assert first.signal(signal.SIGKILL) == -signal.SIGKILL
    assert (logged_steps(run), checkpointed_step(run)) == ([0], 1)

    # 2. Ctrl-C while sampling: a clean stop with exit 130 and the resume hint; nothing is lost
    interrupted = Child("--resume", str(run))
    interrupted.wait_for("sample")
    assert interrupted.signal(signal.SIGINT) == 130, interrupted.stderr[-3000:]
    assert "resumed from step 1" in interrupted.stderr
    assert f"interrupted: the last checkpoint is kept; continue with: harness run --resume {run}" \
        in interrupted.stderr
    assert "Traceback" not in interrupted.stderr
    assert (logged_steps(run), checkpointed_step(run)) == ([0], 1)

    # 3. SIGKILL during the optimizer step of step 1
    optimizing = Child("--resume", str(run))
    optimizing.wait_for("optimize")
    optimizing.signal(signal.SIGKILL)
    assert (logged_steps(run), checkpointed_step(run)) == ([0], 1)

    # 4. SIGKILL while checkpoint 2 is being written: step 1 is logged, but the checkpoint still says 1
    writing = Child("--resume", str(run))
    kill_during_write(writing, run / "checkpoint" / "state-000002.pt.partial")
    assert (logged_steps(run), checkpointed_step(run)) == ([0, 1], 1)
    lost_record = json.loads((run / "metrics.jsonl").read_text().splitlines()[1])

    # 5. resume to the end: step 1's stale record is replaced, not repeated
    last = Child("--resume", str(run))
    assert last.finish() == 0, last.stderr[-3000:]
    assert "resumed from step 1" in last.stderr
    assert (logged_steps(run), checkpointed_step(run)) == ([0, 1], 2)
    assert sorted(p.name for p in (run / "checkpoint").glob("state-*")) == ["state-000002.pt"]
    # the redone step samples with the same seed from the same checkpointed weights: the same step again
    record = json.loads((run / "metrics.jsonl").read_text().splitlines()[1])
    assert without_timing(record) == pytest.approx(without_timing(lost_record), rel=1e-3)
    assert (run / "report.md").is_file()
    shutil.rmtree(run / "checkpoint")  # 1.6 GB; pytest keeps the last runs' tmp_path folders


def test_ctrl_c_during_start_up_is_one_line(tmp_path):
    """Ctrl-C while plugins and models load (before the loop's own handler): exit 130, no traceback."""
    child = Child(*TINY, "--output", str(tmp_path / "run"))
    child.wait_for_line(lambda line: line.startswith("run directory:"), "the run directory line")
    assert child.signal(signal.SIGINT) == 130
    assert "Traceback" not in child.stderr
    assert child.stderr.rstrip().splitlines()[-1] == "error: interrupted (Ctrl-C)"
