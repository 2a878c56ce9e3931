"""`harness bench`: measure, print, save, and compare against a baseline (non-zero exit on a regression)."""

from __future__ import annotations

import argparse
from pathlib import Path

BASELINE = Path(__file__).with_name("baseline.json")


def add_bench_parser(subparsers) -> argparse.ArgumentParser:
    """Register `bench` on the CLI's sub-command set (the lead wires this one call into harness/cli.py)."""
    parser = subparsers.add_parser(
        "bench", help="throughput ratios on the embedded model (sampling, training, loop phase shares)"
    )
    parser.add_argument("--quick", action="store_true", help="the small subset CI runs (about a minute)")
    parser.add_argument("--seed", type=int, default=0, help="seed for prompts, sampling and the loop")
    parser.add_argument("--json-out", type=Path, metavar="FILE", help="write the figures and raw numbers here")
    parser.add_argument("--save", type=Path, metavar="FILE", help=f"save as a baseline (e.g. {BASELINE})")
    parser.add_argument("--compare", type=Path, metavar="FILE", help="compare with a saved baseline")
    parser.add_argument("--max-regression", default="10%", metavar="PCT",
                        help="with --compare: fail when a figure is this much worse (default 10%%)")
    parser.set_defaults(func=cmd_bench)
    return parser


def cmd_bench(args: argparse.Namespace) -> int:
    from harness.bench.compare import compare, comparison_table, figures_table, load, parse_threshold, save
    from harness.bench.measures import measure

    threshold = parse_threshold(args.max_regression)  # bad flags fail before minutes of measuring
    baseline = load(args.compare) if args.compare else None
    mode = "quick" if args.quick else "full"
    figures, raw = measure(args.quick, seed=args.seed)
    print(figures_table(figures))
    for path in (args.json_out, args.save):
        if path:
            save(path, figures, mode, raw)
            print(f"wrote {path}")
    if baseline is None:
        return 0
    base_mode, base_figures = baseline
    if base_mode != mode:
        print(f"note: the baseline was measured in {base_mode} mode, this run in {mode} mode")
    rows = compare(figures, base_figures, threshold)
    print(comparison_table(rows, threshold))
    return 1 if any(row.regressed for row in rows) else 0
