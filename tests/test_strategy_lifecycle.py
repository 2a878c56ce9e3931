"""What the loop does with a strategy: checks its verdicts where they are returned, trains on what it says,
logs its info, and hands it the seed, the step and its saved state."""

from __future__ import annotations

import math

import pytest

from harness import Strategy, Verdict
from harness.errors import PluginError
from harness.loop import Engines, checkpoint_state, label_group, resume_state, to_rollouts
from harness.metrics import aggregate, problem_diagnostics
from harness.plugins import Plugins
from harness.testing import make_group


class Fixed(Strategy):
    """Returns whatever verdict the test hands it; counts steps; keeps a running total as its state."""

    name = "fixed"

    def __init__(self, options=None, seed: int = 0, verdict: Verdict | None = None) -> None:
        super().__init__(options, seed=seed)
        self.verdict, self.steps, self.total = verdict, [], 0.0

    def start_step(self, step: int) -> None:
        self.steps.append(step)

    def label(self, group):
        self.total += 1
        return self.verdict

    def state_dict(self):
        return {"total": self.total}

    def load_state_dict(self, state):
        self.total = state["total"]


GROUP = make_group(["4", "4", "5"])


@pytest.mark.parametrize("rewards, message", [
    ([1.0, math.nan, 0.0], "returned reward nan for sample 1; rewards must be finite numbers in [-1, 1]"),
    ([1.0, math.inf, 0.0], "returned reward inf for sample 1"),
    ([1.0, 2.0, 0.0], "returned reward 2.0 for sample 1"),
    ([1.0, "1", 0.0], "returned reward '1' for sample 1"),
    ([1.0, True, 0.0], "returned reward True for sample 1"),
    ([1.0], "returned 1 rewards for 3 samples"),
])
def test_bad_rewards_are_refused_naming_the_strategy_and_problem(rewards, message):
    with pytest.raises(PluginError) as error:
        label_group(Fixed(verdict=Verdict("4", rewards)), "fixed", GROUP)
    assert str(error.value).startswith("strategy 'fixed' on problem 'p0' ") and message in str(error.value)


def test_a_raising_strategy_is_a_plugin_error_that_keeps_its_cause():
    class Raises(Fixed):
        def label(self, group):
            raise KeyError("oops")

    with pytest.raises(PluginError, match=r"strategy 'fixed' on problem 'p0' raised KeyError: 'oops'") as error:
        label_group(Raises(), "fixed", GROUP)
    assert isinstance(error.value.__cause__, KeyError)  # --verbose prints this traceback
    with pytest.raises(PluginError, match="returned NoneType, not a harness.Verdict"):
        label_group(Fixed(verdict=None), "fixed", GROUP)


def test_train_decides_which_groups_become_rollouts():
    """No label abstains by default; train=True trains without a label; train=False abstains with one; only
    the first n_train samples are trained on."""
    verdicts = [Verdict(None, [0.5, 0.5, 0.0]), Verdict(None, [1.0, 0.0, 1.0], train=True),
                Verdict("4", [1.0, 1.0, 0.0], train=False), Verdict("4", [1.0, 1.0, 0.0])]
    rollouts = to_rollouts([GROUP] * 4, verdicts, n_train=2)
    assert [(r.group_index, r.reward) for r in rollouts] == [(1, 1.0), (1, 0.0), (3, 1.0), (3, 1.0)]
    assert [v.abstained for v in verdicts] == [True, False, True, False]


def test_info_is_logged_per_step_and_reward_accuracy_is_graded_for_confidences():
    """`info` keys become strategy/<key>, the mean over the problems that report them; reward_accuracy is
    1 - |clip(r) - correct|, exact agreement for 0/1 rewards."""
    binary = problem_diagnostics(GROUP, Verdict("4", [1.0, 1.0, 0.0], {"lead": 1}), [True, True, False], "4")
    confident = problem_diagnostics(GROUP, Verdict("4", [0.7, 0.7, 0.2]), [True, True, False], "4")
    assert binary["reward_accuracy"] == 1.0
    assert confident["reward_accuracy"] == pytest.approx((0.7 + 0.7 + 0.8) / 3)
    step = aggregate([binary, confident])
    assert step["strategy/lead"] == 1.0 and step["reward_accuracy"] == pytest.approx((1 + 2.2 / 3) / 2)


def test_seed_and_state_reach_the_strategy_through_the_checkpoint(tmp_path):
    """The registry passes the run's seed; the checkpoint carries state_dict, and resume restores it."""
    plugins = Plugins(load_entry_points=False)
    assert plugins["strategy"].create("majority", {}, seed=7).seed == 7
    strategy = Fixed(verdict=Verdict("4", [1.0, 1.0, 0.0]))
    for _ in range(3):
        label_group(strategy, "fixed", GROUP)

    class Stub:  # the optimizer and sampler halves of a checkpoint, which this test does not exercise
        def state_dict(self):
            return {}

        def load_state_dict(self, state):
            pass

        def named_weights(self):
            return []

        def load_weights(self, weights):
            pass

    saved = checkpoint_state(Engines(None, strategy, Stub(), Stub()))
    assert saved["strategy"] == {"total": 3.0}
    fresh = Fixed()

    class Run:
        metrics_path = labels_path = eval_path = tmp_path / "x.jsonl"

        def truncate_after(self, path, step):
            pass

    step = resume_state(Run(), (2, saved), Engines(None, fresh, Stub(), Stub()), log=lambda *_: None)
    assert step == 2 and fresh.total == 3.0


def test_random_control_flips_seeded_coins_that_resume_exactly():
    """`random` trains without a label on Bernoulli(p) rewards; the run seed picks the coins, and its saved
    state continues the same sequence after a resume."""
    plugins = Plugins(load_entry_points=False)
    group = make_group(["4"] * 8)
    first = plugins["strategy"].create("random", {"p": 0.5}, seed=3)
    verdict = first.label(group)
    assert verdict.train is True and verdict.pseudo_label is None and not verdict.abstained
    assert set(verdict.rewards) <= {0.0, 1.0} and verdict.info["reward_rate"] == sum(verdict.rewards) / 8
    again = plugins["strategy"].create("random", {"p": 0.5}, seed=3)
    assert again.label(group).rewards == verdict.rewards
    assert plugins["strategy"].create("random", {}, seed=4).label(make_group(["4"] * 64)).rewards != \
        plugins["strategy"].create("random", {}, seed=3).label(make_group(["4"] * 64)).rewards
    saved = first.state_dict()
    expected = first.label(group).rewards
    resumed = plugins["strategy"].create("random", {"p": 0.5}, seed=3)
    resumed.load_state_dict(saved)
    assert resumed.label(group).rewards == expected
    coins = plugins["strategy"].create("random", {"p": 0.25}, seed=0).label(make_group(["4"] * 4000)).rewards
    assert abs(sum(coins) / 4000 - 0.25) < 0.03
    assert plugins["strategy"].create("random", {"p": 0.0}).label(group).rewards == [0.0] * 8
