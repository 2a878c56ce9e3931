"""`harness bench` figures: save/load/compare logic (fast), and the CI regression run against the baseline."""

from __future__ import annotations

import argparse
import json

import pytest

from harness.bench.cli import BASELINE, add_bench_parser
from harness.bench.compare import (
    Figure,
    compare,
    comparison_table,
    figures_table,
    load,
    parse_threshold,
    regressed,
    save,
)
from harness.bench.scaling import curve_table, fit_line
from harness.bench.suite import SECTIONS, figures_from, sections_of
from harness.errors import ConfigError, DataError


def ratio(value: float) -> Figure:
    return Figure("sampling/x", value, "higher", 0.95, "a ratio")


def share(value: float) -> Figure:
    return Figure("loop/y", value, "lower", 0.05, "a share")


def test_threshold_parses_percentages_and_rejects_junk():
    """'10%' and '10' both mean 0.10; words and out-of-range values are ConfigErrors."""
    assert parse_threshold("10%") == pytest.approx(0.10)
    assert parse_threshold(" 40 ") == pytest.approx(0.40)
    for bad in ("ten", "-5%", "150%"):
        with pytest.raises(ConfigError, match="--max-regression"):
            parse_threshold(bad)


def test_higher_is_better_regresses_only_beyond_threshold():
    """A ratio 9% below its baseline passes at 10%; 11% below fails; an improvement never fails."""
    assert not regressed(ratio(0.91), 1.0, 0.10)
    assert regressed(ratio(0.89), 1.0, 0.10)
    assert not regressed(ratio(3.0), 1.0, 0.10)


def test_lower_is_better_share_regresses_only_above_goal():
    """A share tripling but still under its goal passes; one growing past threshold and goal fails."""
    assert not regressed(share(0.003), 0.001, 0.10)
    assert regressed(share(0.08), 0.06, 0.10)
    assert not regressed(share(0.065), 0.06, 0.10)


def test_save_load_round_trip_and_diff_table(tmp_path):
    """Saved figures load back equal; the diff marks regressions, new and missing figures."""
    path = tmp_path / "base.json"
    base = [ratio(1.0), share(0.01), Figure("old/z", 2.0, "higher", 1.0, "gone")]
    save(path, base, "quick", {"tokens_per_s": 100.0})
    mode, loaded = load(path)
    assert mode == "quick" and loaded == base
    current = [ratio(0.5), share(0.02), Figure("new/w", 1.0, "higher", 1.0, "new")]
    rows = {row.name: row for row in compare(current, loaded, 0.10)}
    assert rows["sampling/x"].regressed and rows["sampling/x"].change == pytest.approx(-0.5)
    assert not rows["loop/y"].regressed  # doubled, but 0.02 is still under the 0.05 goal
    assert rows["new/w"].baseline is None and rows["old/z"].current is None
    table = comparison_table(list(rows.values()), 0.10)
    assert "REGRESSED" in table and "new (not in baseline)" in table and "missing now" in table


def test_load_rejects_missing_and_malformed_files(tmp_path):
    """A missing or non-bench file is a one-line DataError naming --compare."""
    with pytest.raises(DataError, match="no such file"):
        load(tmp_path / "absent.json")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"figures": [1, 2]}))
    with pytest.raises(DataError, match="not a bench file"):
        load(bad)


def accuracy(value: float, tolerance: float) -> Figure:
    return Figure("accuracy/z", value, "higher", None, "an accuracy", tolerance)


def test_accuracy_figures_ignore_a_one_answer_change_and_have_no_goal():
    """pass@1 over 64 answers: losing one answer (0.25 -> 0.234) passes even at 1%; losing two fails."""
    assert not regressed(accuracy(0.25 - 1 / 64, 1 / 64), 0.25, 0.01)
    assert regressed(accuracy(0.25 - 2 / 64, 1 / 64), 0.25, 0.01)
    assert accuracy(0.1, 0.0).meets_goal is None
    assert "accuracy/z" in figures_table([accuracy(0.1, 0.0)])


def test_raw_numbers_become_figures_only_when_their_section_ran():
    """figures_from makes each figure whose raw numbers exist: loop without peer has no TRL speed-up."""
    loop_only = {"label_share": 0.01, "sync_share": 0.02, "iteration_seconds": 20.0, "label_accuracy": 0.25,
                 "labels": 8.0, "pass_at_1_after": 0.2, "eval_answers": 64.0}
    names = {f.name for f in figures_from(loop_only)}
    assert names == {"loop/label_share", "loop/sync_share", "accuracy/label_accuracy", "accuracy/pass_at_1_after"}
    speedup = {f.name: f for f in figures_from({**loop_only, "trl_step_seconds": 60.0})}["loop/speedup_vs_trl_grpo"]
    assert speedup.value == pytest.approx(3.0) and speedup.meets_goal
    tolerances = {f.name: f.tolerance for f in figures_from(loop_only)}
    assert tolerances["accuracy/label_accuracy"] == pytest.approx(1 / 8)
    assert tolerances["accuracy/pass_at_1_after"] == pytest.approx(1 / 64)


def test_regressed_figures_map_back_to_the_sections_that_measure_them():
    """A retry measures only what regressed, in the suite's order."""
    assert sections_of(["training/share_of_bf16_ceiling"]) == ("training",)
    assert sections_of(["accuracy/pass_at_1_after", "sampling/vllm_vs_hf"]) == ("sampling", "loop")
    assert sections_of(["loop/speedup_vs_trl_grpo"]) == ("loop", "peer")
    assert set(SECTIONS) == {"sampling", "training", "loop", "peer", "scaling"}


def test_scaling_fit_says_linear_or_not():
    """A straight line is called linear with its fixed cost and slope; a square law is superlinear."""
    linear = fit_line([8, 16, 32, 64], [3 + 0.5 * x for x in (8, 16, 32, 64)])
    assert linear.r2 == pytest.approx(1.0) and linear.intercept == pytest.approx(3.0)
    assert linear.slope == pytest.approx(0.5) and linear.verdict.startswith("linear")
    square = fit_line([1, 2, 4, 8], [x * x for x in (1, 2, 4, 8)])
    assert square.r2 < 0.98 and "superlinear" in square.verdict and square.loglog == pytest.approx(2.0)
    points = [{"x": x, "seconds": 1.0 + x, "sample": 0.5, "optimize": x, "tokens": 100.0 * x} for x in (1, 2, 4)]
    text, fit = curve_table("problems", points)
    assert "fit: seconds = 1.00 + 1.000 x problems" in text and fit.verdict in text
    with pytest.raises(ValueError):
        fit_line([8, 8], [1.0, 2.0])


def test_committed_baseline_is_a_quick_bench_file():
    """harness/bench/baseline.json loads, is a --quick run, and holds every figure the quick bench measures."""
    mode, figures = load(BASELINE)
    assert mode == "quick"
    assert {f.name for f in figures} == {"sampling/harness_vs_raw_vllm", "sampling/vllm_vs_hf",
                                         "training/share_of_bf16_ceiling", "loop/speedup_vs_trl_grpo",
                                         "loop/label_share", "loop/sync_share", "accuracy/label_accuracy",
                                         "accuracy/pass_at_1_after"}


def test_bench_parser_flags():
    """add_bench_parser registers `bench` with its flags and a handler."""
    parser = argparse.ArgumentParser()
    add_bench_parser(parser.add_subparsers())
    args = parser.parse_args(["bench", "--quick", "--compare", "b.json", "--max-regression", "25%",
                              "--retries", "1", "--only", "loop,peer"])
    assert args.quick and str(args.compare) == "b.json" and args.max_regression == "25%" and callable(args.func)
    assert args.retries == 1 and args.only == ("loop", "peer")
    assert parser.parse_args(["bench"]).only == SECTIONS
    with pytest.raises(SystemExit):
        parser.parse_args(["bench", "--only", "samplng"])
    for bad in ("-1", "two"):
        with pytest.raises(SystemExit):
            parser.parse_args(["bench", "--retries", bad])

