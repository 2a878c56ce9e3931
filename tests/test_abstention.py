"""Abstention through the real loop: a problem the strategy abstains on gives no gradient, even when the
strategy also returns mixed (trainable-looking) rewards; a step where every problem abstained does no
optimizer step and no weight sync."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import REPO

# Runs one real `harness run` in a fresh interpreter with a strategy registered in-process (no install), and
# counts the loop's calls into the real optimizer and sampler by wrapping their methods (each call still
# runs the real method).
SCRIPT = textwrap.dedent("""
    import json, sys
    from harness import Strategy, Verdict, hookimpl
    from harness.cli import main
    from harness.optimizers.grpo import GRPOOptimizer
    from harness.plugins import get_plugins
    from harness.samplers.hf import HFSampler

    calls = {"optimizer.step": 0, "sampler.load_weights": 0}

    def counted(cls, method, key):
        original = getattr(cls, method)
        def wrapper(self, *args, **kwargs):
            calls[key] += 1
            return original(self, *args, **kwargs)
        setattr(cls, method, wrapper)

    counted(GRPOOptimizer, "step", "optimizer.step")
    counted(HFSampler, "load_weights", "sampler.load_weights")

    class AbstainsButRewards(Strategy):
        name = "abstains-but-rewards"
        def label(self, group):
            # mixed rewards: were they trained on, GRPO would see a group with signal and step
            rewards = [float(i % 2) for i in range(len(group.completions))]
            return Verdict("7", rewards, train=False)

    class Plugin:
        @hookimpl
        def register_strategies(self, register):
            register(AbstainsButRewards)

    get_plugins().register(Plugin(), "abstainer")
    code = main(sys.argv[2:])
    with open(sys.argv[1], "w") as handle:
        json.dump(calls, handle)
    sys.exit(code)
""")


@pytest.mark.slow
def test_abstained_problems_with_rewards_give_no_rollouts_no_step_and_no_sync(tmp_path):
    out, calls_file = tmp_path / "run", tmp_path / "calls.json"
    args = ["run", "--strategy", "abstains-but-rewards", "--sampler", "hf", "--limit", "2",
            "--problems-per-step", "2", "--n-votes", "4", "--max-tokens", "4", "--steps", "2", "--no-eval",
            "--output", str(out)]
    env = {**os.environ, "TTRL_HARNESS_PLUGINS": "", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(calls_file), *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]

    assert json.loads(calls_file.read_text()) == {"optimizer.step": 0, "sampler.load_weights": 0}
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [0, 1]
    for record in records:
        assert record["abstain_rate"] == 1.0
        assert record["train/skipped"] == 1.0  # the optimizer was handed an empty batch, so it never ran
