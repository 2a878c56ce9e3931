"""A strategy as a TRL reward function: the flat batch TRL passes is regrouped by prompt and voted per group."""

from __future__ import annotations

import pytest

from harness.integrations.trl_reward import make_reward_function
from harness.plugins import get_plugins


@pytest.fixture
def parser():
    parser = get_plugins()["answer_parser"].create("boxed", {})
    yield parser
    parser.close()


def test_rewards_follow_each_prompts_own_majority_in_trl_order(parser):
    """Two prompts interleaved as TRL may pass them: each sample is rewarded against its own prompt's vote."""
    strategy = get_plugins()["strategy"].create("majority", {})
    reward = make_reward_function(strategy, parser)
    prompts = ["p1", "p2", "p1", "p2", "p1", "p2"]
    completions = [r"\boxed{4}", r"\boxed{7}", r"\boxed{4}", r"\boxed{7}", r"\boxed{5}", r"\boxed{9}"]
    assert reward(prompts, completions) == [1.0, 1.0, 1.0, 1.0, 0.0, 0.0]
    assert reward.__name__ == "ttrl_majority_reward"


def test_conversational_completions_and_abstentions(parser):
    """Chat-message completions are read by content; a problem the strategy abstains on gets None (TRL
    ignores None rewards)."""
    strategy = get_plugins()["strategy"].create("majority", {"min_agreement": 0.75})
    reward = make_reward_function(strategy, parser)
    prompts = [[{"role": "user", "content": "q"}]] * 4
    completions = [[{"role": "assistant", "content": rf"\boxed{{{v}}}"}] for v in (1, 2, 3, 1)]
    assert reward(prompts, completions) == [None, None, None, None]  # 2 of 4 agree: below 0.75
    agreeing = [[{"role": "assistant", "content": r"\boxed{1}"}]] * 3 + [completions[1]]
    assert reward(prompts, agreeing) == [1.0, 1.0, 1.0, 0.0]


@pytest.mark.slow
def test_two_trl_processes_reward_whole_groups_as_one_process_would(tmp_path, parser):
    """A real GRPOTrainer step in 2 CPU processes (accelerate launch, gloo): TRL spreads each prompt's
    samples over both processes, and each process's rewards equal those one process gives the same
    completions (the vote of the whole group, not of the process's share)."""
    import json
    import subprocess
    import sys

    from harness.integrations.trl_reward import label_pairs
    from tests.conftest import REPO

    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               str(REPO / "tests" / "scripts" / "trl_two_processes.py"), str(tmp_path)]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=900,
                          env={**__import__("os").environ, "TTRL_HARNESS_PLUGINS": "", "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    records = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    shares = [record["rows"] for record in records]
    assert all(len(share) == 6 for share in shares)
    for record in records:  # every process voted on whole groups of 4, the split one included
        assert sorted(record["group_sizes"].values()) == [4, 4, 4], record["group_sizes"]
    split = {row["prompt"] for row in shares[0]} & {row["prompt"] for row in shares[1]}
    assert split, "TRL kept every group on one process: this run does not test the gathering"
    rows = shares[0] + shares[1]
    strategy = get_plugins()["strategy"].create("majority", {})
    parser = get_plugins()["answer_parser"].create("boxed", {"fallbacks": ["last_number"]})
    one_process = label_pairs(strategy, parser, [(row["prompt"], row["completion"]) for row in rows])
    parser.close()
    assert [row["reward"] for row in rows] == one_process
