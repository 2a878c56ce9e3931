"""`harness bench` figures: save/load/compare logic, and the command's exit code and retries with the
measurement stubbed (all fast; the real CI regression run is tests/test_bench_regression.py)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from harness.errors import ConfigError, DataError
from harness.perf import gradebench, suite
from harness.perf.cli import BASELINE, add_bench_parser, committed_baseline
from harness.perf.compare import (
    Figure,
    compare,
    comparison_table,
    figures_table,
    load,
    parse_threshold,
    regressed,
    same_cpu,
    save,
)
from harness.perf.host import cpu_info, describe, signature
from harness.perf.scaling import curve_table, fit_line
from harness.perf.suite import GATES, SECTIONS, accuracy_tolerance, figures_from, sections_of


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
    saved = load(path)
    assert saved.mode == "quick" and saved.figures == base and saved.cpu == cpu_info()
    current = [ratio(0.5), share(0.02), Figure("new/w", 1.0, "higher", 1.0, "new")]
    rows = {row.name: row for row in compare(current, saved.figures, 0.10)}
    assert rows["sampling/x"].regressed and rows["sampling/x"].change == pytest.approx(-0.5)
    assert not rows["loop/y"].regressed  # doubled, but 0.02 is still under the 0.05 goal
    assert rows["new/w"].baseline is None and rows["old/z"].current is None
    table = comparison_table(list(rows.values()), 0.10, saved.cpu)
    assert describe(cpu_info()) in table and "another CPU" not in table
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
    return Figure("accuracy/z", value, "higher", None, "an accuracy", tolerance, "tolerance")


def test_accuracy_figures_are_judged_by_their_tolerance_alone_and_have_no_goal():
    """The percent threshold plays no part: with a one-answer tolerance, losing one answer of 64 passes even
    at a 90% threshold, losing two fails even at 1%."""
    for threshold in (0.01, 0.40, 0.90):
        assert not regressed(accuracy(0.25 - 1 / 64, 1 / 64), 0.25, threshold)
        assert regressed(accuracy(0.25 - 2 / 64, 1 / 64), 0.25, threshold)
    assert accuracy(0.1, 0.0).meets_goal is None
    assert "accuracy/z" in figures_table([accuracy(0.1, 0.0)])


def test_accuracy_is_gated_only_against_a_same_cpu_baseline_and_there_catches_a_broken_grader():
    """Runs repeat exactly only on one CPU: the values other hosts read from the same code (a Xeon with AMX: 0
    of 12 labels, 10 of 64 answers; an Intel family 6 model 207: 1 of 12, 6 of 64) are shown 'not gated'
    against the AMD baseline, while on the baseline's own CPU a third of its answers fails."""
    base = {f.name: f for f in load(BASELINE).figures}
    labels, answers = base["accuracy/label_accuracy"], base["accuracy/pass_at_1_after"]
    for label_value, answer_value in ((0.0, 10 / 64), (1 / 12, 6 / 64)):
        other_host = [Figure(labels.name, label_value, "higher", None, "", 0.0, "tolerance"),
                      Figure(answers.name, answer_value, "higher", None, "", 0.0, "tolerance")]
        rows = compare(other_host, [labels, answers], 0.40, on_same_cpu=False)
        assert not any(row.regressed for row in rows) and all("another CPU" in row.verdict for row in rows)
    broken = [Figure(answers.name, answers.value / 3, "higher", None, "", 0.0, "tolerance")]
    assert compare(broken, [answers], 0.40, on_same_cpu=True)[0].regressed
    assert not compare([answers], [answers], 0.40, on_same_cpu=True)[0].regressed
    # one answer is the floor; the binomial term grows with the spread the value allows
    assert accuracy_tolerance(0.0, 12) == pytest.approx(1 / 12)
    assert accuracy_tolerance(0.2, 64) == pytest.approx(2 * (0.2 * 0.8 / 64) ** 0.5)


def test_ci_compares_with_the_committed_baseline_of_its_own_cpu_kind():
    """Each committed baseline*.json is picked on a host of its CPU; any other host gets baseline.json."""
    files = sorted(BASELINE.parent.glob("baseline*.json"))
    assert BASELINE in files
    for path in files:
        assert committed_baseline(load(path).cpu) == path
    assert committed_baseline({"vendor": "SomeVendor", "family": "1", "cpu_model": "1", "isa": []}) == BASELINE


def host(vendor: str, isa: list[str]) -> dict:
    return {"model": "x", "vendor": vendor, "family": "6", "cpu_model": "143", "cpus": 2, "isa": isa}


def test_same_cpu_figures_are_gated_only_against_a_baseline_from_this_cpu():
    """A TRL speed-up halved fails against a same-CPU baseline and is shown 'not gated' against another CPU's;
    a portable ratio fails on either; the ceiling share is never gated."""
    xeon = host("GenuineIntel", ["avx512f", "amx_bf16", "amx_tile"])
    epyc = {**host("AuthenticAMD", ["avx512f", "avx512_bf16"]), "family": "25"}
    assert same_cpu(xeon, xeon) and not same_cpu(epyc, xeon) and not same_cpu(None, xeon)
    base = [Figure("loop/speedup_vs_trl_grpo", 3.0, "higher", 3.0, "", gate="same-cpu"),
            Figure("sampling/harness_vs_raw_vllm", 1.0, "higher", 0.95, "", gate="portable"),
            Figure("training/share_of_bf16_ceiling", 0.5, "higher", 0.5, "", gate="report")]
    now = [Figure(f.name, f.value / 2, f.better, f.goal, f.meaning, gate=f.gate) for f in base]
    same = {row.name: row for row in compare(now, base, 0.40, on_same_cpu=True)}
    other = {row.name: row for row in compare(now, base, 0.40, on_same_cpu=False)}
    assert same["loop/speedup_vs_trl_grpo"].regressed and not other["loop/speedup_vs_trl_grpo"].regressed
    assert "another CPU" in other["loop/speedup_vs_trl_grpo"].verdict
    assert same["sampling/harness_vs_raw_vllm"].regressed and other["sampling/harness_vs_raw_vllm"].regressed
    assert not same["training/share_of_bf16_ceiling"].regressed
    assert "report only" in same["training/share_of_bf16_ceiling"].verdict


def test_host_record_reads_model_and_isa_features(tmp_path):
    """cpu_info reads /proc/cpuinfo's first processor: model name, vendor, family, model and the ISA flags
    that pick kernels; describe() says AMX yes/no."""
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 143\n"
                       "model name\t: Intel(R) Xeon(R) Platinum 8481C\nflags\t\t: fpu avx2 avx512f amx_bf16 amx_tile\n"
                       "\nprocessor\t: 1\nmodel name\t: other\n")
    cpu = cpu_info(cpuinfo)
    assert cpu["model"] == "Intel(R) Xeon(R) Platinum 8481C" and cpu["vendor"] == "GenuineIntel"
    assert cpu["family"] == "6" and cpu["cpu_model"] == "143" and cpu["isa"] == ["avx2", "avx512f", "amx_tile",
                                                                                 "amx_bf16"]
    assert "AMX yes" in describe(cpu) and "Xeon" in describe(cpu) and "avx512_bf16 no" in describe(cpu)


def test_a_version_1_baseline_without_gates_or_cpu_still_loads(tmp_path):
    """An old file takes today's gate for each known figure and has no CPU (so same-cpu figures go ungated)."""
    old = tmp_path / "v1.json"
    old.write_text(json.dumps({"version": 1, "mode": "quick", "figures": {
        "loop/speedup_vs_trl_grpo": {"name": "loop/speedup_vs_trl_grpo", "value": 2.8, "better": "higher",
                                     "goal": 3.0, "meaning": "m", "tolerance": 0.0}}}))
    baseline = load(old)
    assert baseline.cpu is None and baseline.figures[0].gate == "same-cpu"
    assert "unknown CPU" in comparison_table([], 0.4, baseline.cpu)


def test_raw_numbers_become_figures_only_when_their_section_ran():
    """figures_from makes each figure whose raw numbers exist: loop without peer has no TRL speed-up."""
    loop_only = {"label_share": 0.01, "sync_share": 0.02, "iteration_seconds": 20.0, "label_accuracy": 0.25,
                 "labels": 8.0, "pass_at_1_after": 0.2, "eval_answers": 64.0}
    names = {f.name for f in figures_from(loop_only)}
    assert names == {"loop/label_share", "loop/sync_share", "accuracy/label_accuracy", "accuracy/pass_at_1_after"}
    speedup = {f.name: f for f in figures_from({**loop_only, "trl_step_seconds": 60.0})}["loop/speedup_vs_trl_grpo"]
    assert speedup.value == pytest.approx(3.0) and speedup.meets_goal
    tolerances = {f.name: f.tolerance for f in figures_from(loop_only)}
    assert tolerances["accuracy/label_accuracy"] == pytest.approx(accuracy_tolerance(0.25, 8))
    assert tolerances["accuracy/pass_at_1_after"] == pytest.approx(accuracy_tolerance(0.2, 64))
    plain = figures_from({"train_tokens_per_s": 300.0, "plain_tokens_per_s": 400.0})
    assert [(f.name, f.value, f.gate) for f in plain] == [("training/grpo_vs_plain_step", 0.75, "portable")]


def test_regressed_figures_map_back_to_the_sections_that_measure_them():
    """A retry measures only what regressed, in the suite's order."""
    assert sections_of(["training/grpo_vs_plain_step"]) == ("training",)
    assert sections_of(["accuracy/pass_at_1_after", "sampling/vllm_vs_hf"]) == ("sampling", "loop")
    assert sections_of(["loop/speedup_vs_trl_grpo"]) == ("loop", "peer")
    assert sections_of(["grader/speed_vs_math_verify"]) == ("grader",)
    assert set(SECTIONS) == {"sampling", "training", "loop", "peer", "scaling", "grader"}


def test_grader_speed_is_a_ratio_of_answers_per_s_and_never_gated():
    """ours/math-verify answers/s, measured in one run; halved against a baseline it is reported, not failed."""
    figure = {f.name: f for f in figures_from({"grader_answers_per_s": 150.0, "math_verify_answers_per_s": 100.0})}
    speed = figure["grader/speed_vs_math_verify"]
    assert speed.value == pytest.approx(1.5) and speed.gate == "report" and speed.meets_goal
    slower = Figure(speed.name, 0.75, speed.better, speed.goal, speed.meaning, gate=speed.gate)
    row = compare([slower], [speed], 0.10)[0]
    assert not row.regressed and row.verdict == "report only (not gated)" and not slower.meets_goal


def test_grader_section_grades_the_cases_with_both_graders(tmp_path):
    """A real run on three cases (a bare answer each way and a completion): both graders find the same two
    equal, their rates are positive; a folder without cases is skipped with a message, not an error."""
    cases = [{"kind": "answer", "answer": "0.5", "gold": "\\frac{1}{2}"},
             {"kind": "answer", "answer": "(1,2]", "gold": "(1,2)"},
             {"kind": "completion", "answer": "So the answer is \\boxed{\\sqrt{4}}.", "gold": "2"}]
    (tmp_path / "suite.jsonl").write_text("".join(json.dumps(case) + "\n" for case in cases))
    assert gradebench.load_cases(tmp_path) == cases
    raw = gradebench.grader_figures(1, tmp_path)
    assert raw["grader_cases"] == 3 and raw["grader_equal"] == raw["math_verify_equal"] == 2
    assert raw["grader_answers_per_s"] > 0 and raw["math_verify_answers_per_s"] > 0
    said: list[str] = []
    assert gradebench.grader_figures(1, tmp_path / "absent", log=said.append) == {}
    assert "no peer cases" in said[0] and "skipped" in said[0]


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


def test_committed_baselines_are_quick_bench_files():
    """Every harness/perf/baseline*.json loads, is a --quick run, records its CPU (no two the same), and holds
    every figure the quick bench measures, each with today's gate."""
    signatures = []
    for path in sorted(BASELINE.parent.glob("baseline*.json")):
        baseline = load(path)
        assert baseline.mode == "quick" and baseline.cpu and baseline.cpu["model"] and "isa" in baseline.cpu
        assert {f.name: f.gate for f in baseline.figures} == GATES, path.name
        signatures.append(signature(baseline.cpu))
    assert len(set(signatures)) == len(signatures)


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



# `harness bench --compare ... --retries K` with suite.measure stubbed: the real sections take minutes of
# engines, and what is under test is the command's own logic (compare, which sections to measure again,
# which figures to keep, the exit code), which runs for real. The stub's raw numbers go through the real
# figures_from, so the figure names and sections are the suite's own.
HEALTHY = {
    "sampling": {"harness_tokens_per_s": 100.0, "raw_tokens_per_s": 100.0, "hf_tokens_per_s": 10.0},
    "training": {"train_tokens_per_s": 100.0, "plain_tokens_per_s": 100.0},
}
SLOW_SAMPLING = {"harness_tokens_per_s": 0.5}  # both sampling ratios halve
SLOW_TRAINING = {"train_tokens_per_s": 0.5}


class StubbedMeasure:
    """Stands in for suite.measure. Call i multiplies the raw numbers named in plan[i] by their factor (0.5:
    half speed, a regression at any threshold under 50%) and records which sections it was asked for."""

    def __init__(self, plan: list[dict[str, float]]) -> None:
        self.plan = list(plan)
        self.calls: list[tuple[str, ...]] = []

    def __call__(self, quick: bool, sections: tuple[str, ...] = SECTIONS, seed: int = 0, log=print):
        self.calls.append(tuple(sections))
        factors = self.plan.pop(0)
        raw = {key: value * factors.get(key, 1.0)
               for section in sections for key, value in HEALTHY.get(section, {}).items()}
        return figures_from(raw), raw, {}


def run_bench(tmp_path: Path, monkeypatch, plan: list[dict[str, float]], retries: int) -> tuple[int, StubbedMeasure]:
    """`harness bench --quick --only sampling,training --compare BASE --max-regression 10% --retries K` against
    a baseline of the healthy figures saved on this host (so every figure is gated)."""
    base = {key: value for section in HEALTHY.values() for key, value in section.items()}
    save(tmp_path / "base.json", figures_from(base), "quick", base)
    measure = StubbedMeasure(plan)
    monkeypatch.setattr(suite, "measure", measure)
    parser = argparse.ArgumentParser()
    add_bench_parser(parser.add_subparsers())
    args = parser.parse_args(["bench", "--quick", "--only", "sampling,training", "--compare",
                              str(tmp_path / "base.json"), "--max-regression", "10%", "--retries", str(retries),
                              "--json-out", str(tmp_path / "now.json")])
    return args.func(args), measure


def test_bench_exits_0_when_the_retry_of_a_regressed_figure_recovers(tmp_path, monkeypatch, capsys):
    """Sampling regresses on the first try only: only its section is measured again, the retried figures
    replace the regressed ones (in the table and the JSON, with the retry's raw numbers kept apart), exit 0."""
    code, measure = run_bench(tmp_path, monkeypatch, [SLOW_SAMPLING, {}], retries=1)
    out = capsys.readouterr().out
    assert code == 0, out
    assert measure.calls == [("sampling", "training"), ("sampling",)]
    assert ("regressed: sampling/harness_vs_raw_vllm, sampling/vllm_vs_hf; measuring sampling again "
            "(try 1 of 1)") in out
    assert "REGRESSED" not in out
    saved = json.loads((tmp_path / "now.json").read_text())
    assert saved["figures"]["sampling/harness_vs_raw_vllm"]["value"] == pytest.approx(1.0)
    assert saved["raw"]["harness_tokens_per_s"] == 50.0 and saved["raw"]["retry1/harness_tokens_per_s"] == 100.0


def test_bench_exits_1_when_every_try_regresses(tmp_path, monkeypatch, capsys):
    """Training is slow on the first try and both retries: it is measured three times, alone after the
    first, and the run fails with it marked REGRESSED; sampling, never slow, stays ok."""
    code, measure = run_bench(tmp_path, monkeypatch, [SLOW_TRAINING] * 3, retries=2)
    out = capsys.readouterr().out
    assert code == 1, out
    assert measure.calls == [("sampling", "training"), ("training",), ("training",)]
    verdicts = {line.split()[0]: line.split()[-1] for line in out[out.rfind("baseline host:"):].splitlines()[2:]}
    assert verdicts["training/grpo_vs_plain_step"] == "REGRESSED"
    assert verdicts["sampling/harness_vs_raw_vllm"] == "ok" and verdicts["sampling/vllm_vs_hf"] == "ok"


def test_each_retry_measures_only_the_sections_still_regressed(tmp_path, monkeypatch, capsys):
    """Both sections regress, sampling recovers on the first retry and training on the second: the second
    retry measures training alone, and the run passes."""
    plan = [SLOW_SAMPLING | SLOW_TRAINING, SLOW_TRAINING, {}]
    code, measure = run_bench(tmp_path, monkeypatch, plan, retries=2)
    out = capsys.readouterr().out
    assert code == 0, out
    assert measure.calls == [("sampling", "training"), ("sampling", "training"), ("training",)]
    assert "regressed: training/grpo_vs_plain_step; measuring training again (try 2 of 2)" in out


def test_a_figure_fails_only_if_every_try_regressed_it(tmp_path, monkeypatch, capsys):
    """Of one section's two figures, the first regresses on the first try and the second on the retry: each
    passed once, so the run passes, and each keeps the value of the try it passed (the retry replaces only
    the figures that had regressed, not every figure its section measured)."""
    plan = [{"raw_tokens_per_s": 2.0}, {"hf_tokens_per_s": 4.0}]  # a larger denominator: a lower ratio
    code, measure = run_bench(tmp_path, monkeypatch, plan, retries=1)
    out = capsys.readouterr().out
    assert code == 0, out
    assert measure.calls == [("sampling", "training"), ("sampling",)]
    figures = json.loads((tmp_path / "now.json").read_text())["figures"]
    assert figures["sampling/harness_vs_raw_vllm"]["value"] == pytest.approx(1.0)  # the retry's
    assert figures["sampling/vllm_vs_hf"]["value"] == pytest.approx(10.0)  # the first try's


def test_bench_without_retries_fails_on_the_first_regression_and_passes_a_clean_run(tmp_path, monkeypatch,
                                                                                    capsys):
    """--retries 0 (the default) measures once: a regression is exit 1, a clean run exit 0, never a retry."""
    code, measure = run_bench(tmp_path, monkeypatch, [SLOW_SAMPLING], retries=0)
    assert code == 1 and measure.calls == [("sampling", "training")]
    code, measure = run_bench(tmp_path, monkeypatch, [{}], retries=0)
    assert code == 0 and measure.calls == [("sampling", "training")]
    assert "measuring" not in capsys.readouterr().out
