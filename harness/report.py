"""report.md with a before/after table and PNG plots, rebuilt from the run directory's files."""

from __future__ import annotations

from pathlib import Path

from harness.rundir import RunDir, read_jsonl, write_atomic

PLOTS = (
    ("pass_at_1", "pass@1 (rollouts, vs gold)"),
    ("label_accuracy", "label accuracy"),
    ("reward_accuracy", "reward accuracy"),
    ("response_length", "response length (tokens)"),
)


def before_after(run_dir: RunDir) -> tuple[dict | None, dict | None]:
    evals = read_jsonl(run_dir.eval_path)
    before = next((e for e in evals if e["phase"] == "before"), None)
    after = next((e for e in reversed(evals) if e["phase"] == "after"), None)
    return before, after


def table(before: dict | None, after: dict | None) -> str:
    """A markdown table of every evaluation figure, before vs after training."""
    keys = [k for k in (before or after or {}) if k not in ("step", "phase", "problems")]
    lines = ["| metric | before | after | change |", "|---|---|---|---|"]
    for key in keys:
        b = before.get(key) if before else None
        a = after.get(key) if after else None
        change = f"{a - b:+.3f}" if a is not None and b is not None else ""
        lines.append(f"| {key} | {_fmt(b)} | {_fmt(a)} | {change} |")
    return "\n".join(lines)


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.3f}"


def write_report(run_dir: RunDir) -> Path:
    """Write report.md (and plots.png when matplotlib is available); return the report's path."""
    config = run_dir.read_config()
    metrics = read_jsonl(run_dir.metrics_path)
    before, after = before_after(run_dir)
    plot_name = _plot(run_dir, metrics)
    parts = [
        f"# TTRL run `{run_dir.path.name}`",
        f"model `{config['model']}`, benchmark `{config['benchmark']}`, strategy `{config['strategy']}`, "
        f"optimizer `{config['optimizer']}`, {len(metrics)} steps",
        "## Evaluation before and after training",
        table(before, after),
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
    figure, axes = plt.subplots(1, len(PLOTS), figsize=(4 * len(PLOTS), 3.2))
    for axis, (key, title) in zip(axes, PLOTS, strict=True):
        axis.plot(steps, [m.get(key) for m in metrics], marker="o")
        axis.set_title(title)
        axis.set_xlabel("step")
    figure.tight_layout()
    target = run_dir.path / "plots.png"
    tmp = target.with_name(".plots.tmp.png")
    figure.savefig(tmp, dpi=90)
    plt.close(figure)
    tmp.replace(target)
    return target.name
