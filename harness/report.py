"""report.md with a before/after table and PNG plots, rebuilt from the run directory's files."""

from __future__ import annotations

from pathlib import Path

from harness.rundir import RunDir, read_jsonl, write_atomic

PLOTS = (  # the first row reads the hidden gold; the second is what a user without labels can watch
    ("pass_at_1", "pass@1 (rollouts, vs gold)"),
    ("label_accuracy", "label accuracy"),
    ("reward_accuracy", "reward accuracy"),
    ("majority_ratio", "majority ratio"),
    ("distinct_answers", "distinct answers per problem"),
    ("entropy", "entropy (-log p per token)"),
    ("response_length", "response length (tokens)"),
    ("truncation_rate", "share cut at max_tokens"),
)


def evaluations(run_dir: RunDir) -> tuple[dict | None, dict | None, dict | None]:
    """The evaluations before training, after the last step, and of the collapse watch's best step."""
    evals = read_jsonl(run_dir.eval_path)
    before = next((e for e in evals if e["phase"] == "before"), None)
    after = next((e for e in reversed(evals) if e["phase"] == "after"), None)
    best = next((e for e in reversed(evals) if e["phase"] == "best"), None)
    return before, after, best


def table(before: dict | None, after: dict | None, best: dict | None = None) -> str:
    """A markdown table of every evaluation figure: before training, after its last step (and, with the
    collapse watch's keep_best, the best step's policy; which one to report is the reader's call, so both)."""
    keys = [k for k in (before or after or {}) if k not in ("step", "phase", "problems")]
    best_title = f" | best (step {best['step']})" if best else ""
    after_title = f"after (step {after['step']})" if after else "after"
    header = f"| metric | before | {after_title} | change{best_title} |"
    lines = [header, "|---" * header.count(" | ") + "|---|"]
    for key in keys:
        b = before.get(key) if before else None
        a = after.get(key) if after else None
        change = f"{a - b:+.3f}" if a is not None and b is not None else ""
        extra = f" | {_fmt(best.get(key))}" if best else ""
        lines.append(f"| {key} | {_fmt(b)} | {_fmt(a)} | {change}{extra} |")
    return "\n".join(lines)


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.3f}"


def write_report(run_dir: RunDir) -> Path:
    """Write report.md (and plots.png when matplotlib is available); return the report's path."""
    config = run_dir.read_config()
    metrics = read_jsonl(run_dir.metrics_path)
    before, after, best = evaluations(run_dir)
    plot_name = _plot(run_dir, metrics)
    parts = [
        f"# TTRL run `{run_dir.path.name}`",
        f"model `{config['model']}`, benchmark `{config['benchmark']}`, strategy `{config['strategy']}`, "
        f"optimizer `{config['optimizer']}`, {len(metrics)} steps",
        "## Evaluation before and after training",
        table(before, after, best),
    ]
    if metrics:
        last = metrics[-1]
        parts += ["## Last step diagnostics (vs hidden gold)",
                  "\n".join(f"- {k}: {v:.4g}" for k, v in last.items() if isinstance(v, float))]
    if plot_name:
        parts.append(f"![training curves]({plot_name})")
    path = run_dir.path / "report.md"
    write_atomic(path, ("\n\n".join(parts) + "\n").encode())
    return path


def _plot(run_dir: RunDir, metrics: list[dict]) -> str | None:
    if not metrics:
        return None
    import matplotlib

    matplotlib.use("Agg")  # headless: no display needed
    import matplotlib.pyplot as plt

    steps = [m["step"] for m in metrics]
    figure, grid = plt.subplots(2, len(PLOTS) // 2, figsize=(4 * len(PLOTS) // 2, 6.4))
    for axis, (key, title) in zip(grid.flat, PLOTS, strict=True):
        axis.plot(steps, [m.get(key, float("nan")) for m in metrics], marker="o")  # older runs lack some
        axis.set_title(title)
        axis.set_xlabel("step")
    figure.tight_layout()
    target = run_dir.path / "plots.png"
    tmp = target.with_name(".plots.tmp.png")
    figure.savefig(tmp, dpi=90)
    plt.close(figure)
    tmp.replace(target)
    return target.name
