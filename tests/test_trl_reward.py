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
