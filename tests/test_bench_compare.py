"""`harness bench` figures: save/load/compare logic (fast), and the CI regression run against the baseline."""

from __future__ import annotations

import argparse
import json

import pytest

from harness.bench.cli import BASELINE, add_bench_parser
from harness.bench.compare import Figure, compare, comparison_table, load, parse_threshold, regressed, save
from harness.errors import ConfigError, DataError

# Ratios measured on a shared 2-core machine swing between runs (other jobs take the cores between the two
# halves of a ratio; three quick runs gave harness/raw 1.16, 0.76, 0.81); 40% still catches a real slow-down
# such as losing batching or prefix caching (2x and more) without failing on noise.
CI_MAX_REGRESSION = 0.40


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


def test_committed_baseline_is_a_quick_bench_file():
    """harness/bench/baseline.json loads, is a --quick run, and holds every figure the bench measures."""
    mode, figures = load(BASELINE)
    assert mode == "quick"
    assert {f.name for f in figures} == {"sampling/harness_vs_raw_vllm", "sampling/vllm_vs_hf",
                                         "training/share_of_bf16_ceiling", "loop/label_share", "loop/sync_share"}


def test_bench_parser_flags():
    """add_bench_parser registers `bench` with its flags and a handler."""
    parser = argparse.ArgumentParser()
    add_bench_parser(parser.add_subparsers())
    args = parser.parse_args(["bench", "--quick", "--compare", "b.json", "--max-regression", "25%"])
    assert args.quick and str(args.compare) == "b.json" and args.max_regression == "25%" and callable(args.func)

