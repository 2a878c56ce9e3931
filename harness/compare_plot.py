"""The comparison plot of `harness compare`: per strategy, the mean over seeds with a band from the lowest to
the highest seed, for the evaluation's pass@1 (at every evaluation of the training trajectory), and at every
step the rollouts' pass@1, label and reward accuracy (against the hidden gold) and two label-free signals of
collapse: the majority ratio and the entropy of the sampled tokens."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from harness.rundir import RunDir, read_jsonl

PANELS = (("eval", "pass_at_1", "pass@1, evaluation (avg@k)"), ("metrics", "pass_at_1", "pass@1, rollouts"),
          ("metrics", "label_accuracy", "label accuracy"), ("metrics", "reward_accuracy", "reward accuracy"),
          ("metrics", "majority_ratio", "majority ratio (label-free)"),
          ("metrics", "entropy", "entropy, -log p per token (label-free)"))
TRAJECTORY = ("before", "during", "after")  # the collapse watch's "best" evaluation is not a point in time


def _series(cells, source: str, key: str) -> dict[str, dict[int, list[float]]]:
    """strategy -> step -> one value per seed."""
    series: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for cell in cells:
        run_dir = RunDir(cell.path)
        records = read_jsonl(run_dir.eval_path if source == "eval" else run_dir.metrics_path)
        for record in records:
            if key in record and record.get("phase", "during") in TRAJECTORY:
                series[cell.label][int(record["step"])].append(float(record[key]))
    return series


def plot_grid(cells, target: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")  # headless: no display needed
    import matplotlib.pyplot as plt

    figure, grid = plt.subplots(2, len(PANELS) // 2, figsize=(4.5 * len(PANELS) // 2, 6.8))
    axes = list(grid.flat)
    for axis, (source, key, title) in zip(axes, PANELS, strict=True):
        for strategy, by_step in _series(cells, source, key).items():
            steps = sorted(by_step)
            means = [sum(by_step[s]) / len(by_step[s]) for s in steps]
            line, = axis.plot(steps, means, marker="o", label=strategy)
            axis.fill_between(steps, [min(by_step[s]) for s in steps], [max(by_step[s]) for s in steps],
                              color=line.get_color(), alpha=0.2)
        axis.set_title(title)
        axis.set_xlabel("step")
    axes[0].legend()
    figure.tight_layout()
    tmp = target.with_name(f".{target.name}.tmp.png")
    figure.savefig(tmp, dpi=90)
    plt.close(figure)
    tmp.replace(target)
    return target
