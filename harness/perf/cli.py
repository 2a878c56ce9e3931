"""`harness bench`: measure, print, save, and compare against a baseline (non-zero exit on a regression)."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.perf.suite import SECTIONS

BASELINE = Path(__file__).with_name("baseline.json")


def committed_baseline(host_cpu: dict | None = None) -> Path:
    """The committed baseline (harness/perf/baseline*.json) measured on this host's CPU kind, else the default
    one, against which same-cpu and accuracy figures are shown but not gated (docs/performance.md)."""
    from harness.perf.compare import load, same_cpu

    for path in sorted(BASELINE.parent.glob("baseline*.json")):
        if same_cpu(load(path).cpu, host_cpu):
            return path
    return BASELINE


def add_bench_parser(subparsers, parents: tuple | list = ()) -> argparse.ArgumentParser:
    """Register `bench` on the CLI's sub-command set."""
    parser = subparsers.add_parser(
        "bench", help="throughput ratios and accuracy at a fixed seed on the embedded model, with baselines",
        parents=list(parents),
    )
    parser.add_argument("--quick", action="store_true",
                        help="the small subset CI runs (about 3 minutes on 2 idle cores; no scaling curves)")
    parser.add_argument("--only", type=_sections, default=SECTIONS, metavar="SECTION[,SECTION]",
                        help=f"measure only these sections, of: {', '.join(SECTIONS)}")
    parser.add_argument("--seed", type=int, default=0, help="seed for prompts, sampling and the loop")
    parser.add_argument("--json-out", type=Path, metavar="FILE", help="write the figures and raw numbers here")
    parser.add_argument("--save", type=Path, metavar="FILE", help=f"save as a baseline (e.g. {BASELINE})")
    parser.add_argument("--compare", type=Path, metavar="FILE", help="compare with a saved baseline")
    parser.add_argument("--max-regression", default="10%", metavar="PCT",
                        help="with --compare: fail when a figure is this much worse (default 10%%)")
    parser.add_argument("--retries", type=_retries, default=0, metavar="K",
                        help="with --compare: measure a regressed figure's section up to K more times; it "
                        "fails only if it regressed every time (default 0)")
    parser.set_defaults(func=cmd_bench)
    return parser


def _sections(text: str) -> tuple[str, ...]:
    chosen = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in chosen if name not in SECTIONS]
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(f"unknown section {', '.join(unknown) or text!r}; "
                                         f"choose from {', '.join(SECTIONS)}")
    return chosen


def _retries(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: give a whole number of retries, 0 or more (e.g. 1)")
    return value


def cmd_bench(args: argparse.Namespace) -> int:
    from harness.perf.compare import (
        compare,
        comparison_table,
        figures_table,
        load,
        parse_threshold,
        same_cpu,
        save,
    )
    from harness.perf.scaling import curve_table
    from harness.perf.suite import measure

    threshold = parse_threshold(args.max_regression)  # bad flags fail before minutes of measuring
    baseline = load(args.compare) if args.compare else None
    mode = "quick" if args.quick else "full"
    figures, raw, curves = measure(args.quick, args.only, seed=args.seed)
    rows = []
    if baseline is not None:
        if baseline.mode != mode:
            print(f"note: the baseline was measured in {baseline.mode} mode, this run in {mode} mode")
        on_same_cpu = same_cpu(baseline.cpu)
        rows = compare(figures, baseline.figures, threshold, on_same_cpu)
        for attempt in range(1, args.retries + 1):
            figures, raw, rows = remeasure_regressed(args, figures, raw, rows, baseline, threshold, attempt)
    print(figures_table(figures))
    for name, points in curves.items():
        print(f"\none iteration against {name}:\n" + curve_table(name, points)[0])
    for path in (args.json_out, args.save):
        if path:
            save(path, figures, mode, raw, curves)
            print(f"wrote {path}")
    if baseline is None:
        return 0
    print(comparison_table(rows, threshold, baseline.cpu))
    return 1 if any(row.regressed for row in rows) else 0


def remeasure_regressed(args, figures, raw, rows, baseline, threshold, attempt):
    """Measure again the sections of the figures that regressed; a figure fails only if every try regressed
    (noise on a shared machine rarely hits the same figure twice; a real slow-down always does)."""
    from harness.perf.compare import compare, same_cpu
    from harness.perf.suite import measure, sections_of

    bad = [row.name for row in rows if row.regressed]
    if not bad:
        return figures, raw, rows
    sections = sections_of(bad)
    print(f"regressed: {', '.join(bad)}; measuring {', '.join(sections)} again (try {attempt} of {args.retries})")
    again, again_raw, _ = measure(args.quick, sections, seed=args.seed)
    retried = {f.name: f for f in again if f.name in bad}
    figures = [retried.get(f.name, f) for f in figures]
    raw = {**raw, **{f"retry{attempt}/{key}": value for key, value in again_raw.items()}}
    return figures, raw, compare(figures, baseline.figures, threshold, same_cpu(baseline.cpu))
