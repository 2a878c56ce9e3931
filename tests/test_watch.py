"""The collapse watch: label-free step figures, the best step, early stopping, and best/ on disk."""

from __future__ import annotations

import math

import pytest

from harness.config import build_config
from harness.errors import ConfigError
from harness.metrics import aggregate, problem_diagnostics
from harness.rundir import RunDir
from harness.testing import make_group
from harness.types import Verdict
from harness.watch import Watch, WatchConfig, replay


def records(metric: str, values: list[float]) -> list[dict]:
    return [{"step": step, metric: value} for step, value in enumerate(values)]


def test_best_step_follows_the_metric_in_either_direction():
    """max picks the highest, min the lowest; the first of equal values stays best."""
    up = replay(WatchConfig(metric="majority_ratio"), records("majority_ratio", [0.4, 0.7, 0.7, 0.5]))
    assert (up.best_step, up.best_value) == (1, 0.7)
    down = replay(WatchConfig(metric="entropy", mode="min"), records("entropy", [1.2, 0.9, 1.0, 0.3]))
    assert (down.best_step, down.best_value) == (3, 0.3)


def test_window_and_min_delta_smooth_the_ranking():
    """With window 2 a single lucky step does not win; min_delta ignores gains smaller than it."""
    values = [0.5, 0.9, 0.1, 0.6, 0.7]  # window-2 means: 0.5, 0.7, 0.5, 0.35, 0.65
    watch = replay(WatchConfig(window=2), records("majority_ratio", values))
    assert watch.best_step == 1 and watch.best_value == pytest.approx(0.7)
    strict = replay(WatchConfig(min_delta=0.25), records("majority_ratio", [0.5, 0.7, 0.8]))
    assert strict.best_step == 2  # 0.7 is only 0.2 above 0.5; 0.8 is 0.3 above it
    flat = replay(WatchConfig(min_delta=0.25), records("majority_ratio", [0.5, 0.7, 0.74]))
    assert flat.best_step == 0


def test_patience_stops_after_that_many_steps_without_a_new_best():
    watch = Watch(WatchConfig(patience=2))
    for step, value in enumerate([0.5, 0.8, 0.7]):
        watch.observe({"step": step, "majority_ratio": value})
        assert not watch.should_stop()
    watch.observe({"step": 3, "majority_ratio": 0.79})
    assert watch.should_stop()
    assert "has not improved for 2 steps (best 0.800 at step 1); stopping after step 3" in watch.stop_message()
    assert not replay(WatchConfig(), records("majority_ratio", [0.1] * 9)).should_stop()  # patience 0: never


def test_a_step_without_the_metric_is_not_ranked():
    """A step where every problem abstained reports no strategy/<key>: it neither wins nor breaks the watch."""
    watch = replay(WatchConfig(metric="strategy/margin", patience=1),
                   [{"step": 0, "strategy/margin": 0.2}, {"step": 1}, {"step": 2, "strategy/margin": 0.1}])
    assert watch.best_step == 0 and watch.values == [0.2, 0.1] and watch.should_stop()


@pytest.mark.parametrize("metric", ["label_accuracy", "pass_at_1", "maj_at_n", "reward_accuracy"])
def test_a_metric_that_reads_the_gold_is_refused_with_the_label_free_ones_named(metric):
    with pytest.raises(ConfigError) as error:
        build_config({"watch": {"metric": metric}}, {})
    message = str(error.value)
    assert "\n" not in message and metric in message and "majority_ratio" in message and "gold" in message


def test_flags_and_file_merge_watch_tables_key_by_key():
    config = build_config({"watch": {"metric": "entropy", "mode": "min"}}, {"watch": {"patience": 3}})
    assert (config.watch.metric, config.watch.mode, config.watch.patience) == ("entropy", "min", 3)
    assert config.watch.active and not build_config({}, {}).watch.active


def test_collapse_signals_in_the_step_diagnostics():
    """distinct answers, entropy as the mean -log p of the sampled tokens, share cut at max_tokens."""
    group = make_group(["4", "4", "5", None], logprobs=[[-0.5, -1.5], [-1.0], [-2.0, -2.0, -2.0], [-0.1]])
    group.completions[2].finish_reason = "length"
    verdict = Verdict(pseudo_label="4", rewards=[1.0, 1.0, 0.0, 0.0])
    row = problem_diagnostics(group, verdict, [True, True, False, False], "4")
    assert row["distinct_answers"] == 2.0
    assert row["entropy"] == pytest.approx((1.0 + 1.0 + 2.0 + 0.1) / 4)
    assert row["truncated"] == 0.25
    logged = aggregate([row])
    assert logged["distinct_answers"] == 2.0 and logged["truncation_rate"] == 0.25 and math.isfinite(logged["entropy"])


def test_best_policy_files_are_settled_to_the_one_a_resume_needs(tmp_path):
    """Saving a new best keeps the older file until a checkpoint (or a resume) settles them: then only the
    best step's policy remains and best.json names it; without a best step nothing remains."""
    import torch

    run = RunDir(tmp_path / "run")
    info = {"metric": "majority_ratio", "mode": "max", "value": 0.5}
    run.save_best(1, {"w": torch.ones(2)}, info)
    run.save_best(3, {"w": torch.full((2,), 3.0)}, {**info, "value": 0.9})
    assert run.best_info()["step"] == 3 and len(list(run.best_dir.glob("policy-*.pt"))) == 2
    run.settle_best(1, info)  # a resume from a checkpoint before step 3: step 3's file is discarded work
    assert run.best_info() == {"step": 1, "file": "policy-000001.pt", **info}
    assert [p.name for p in run.best_dir.glob("policy-*.pt")] == ["policy-000001.pt"]
    assert torch.equal(run.load_best()["w"], torch.ones(2))
    run.settle_best(None, info)
    assert run.best_info() is None and not list(run.best_dir.glob("policy-*"))
