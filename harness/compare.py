"""`harness compare`: a grid of matched runs (strategies x optimizers x seeds), then a leaderboard and one plot.

Each cell is an ordinary run directory, `<output>/<strategy>-seed<seed>/` (`<strategy>-<optimizer>-seed<seed>/`
when the grid compares optimizers): a finished cell is not run again,
an interrupted or killed one resumes from its last checkpoint, so Ctrl-C and kill -9 lose at most the step
in progress. The untrained model is a row of its own: every cell evaluates it before training, with the
same protocol and seed, so its row is the cells' "before" evaluations.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from statistics import fmean, pstdev

from harness import interrupts
from harness.config import RunConfig
from harness.errors import ConfigError, HarnessError
from harness.rundir import RunDir, read_jsonl, write_atomic, write_json

# fields that differ between the cells of one grid (everything else must match, or the grid is another one)
CELL_FIELDS = ("name", "output", "seed", "strategy", "strategy_options", "optimizer", "plugin_versions")
UNTRAINED = "untrained"


@dataclass
class Cell:
    strategy: str
    seed: int
    path: Path
    optimizer: str | None = None  # None: the base config's (a grid of one optimizer)

    @property
    def label(self) -> str:
        """The cell's row in the leaderboard and its line in the plot."""
        return self.strategy if self.optimizer is None else f"{self.strategy}/{self.optimizer}"


def cells(strategies: list[str], seeds: list[int], output: Path, optimizers: list[str] | None = None) -> list[Cell]:
    if not optimizers or len(optimizers) == 1:
        return [Cell(strategy, seed, output / f"{strategy}-seed{seed}") for strategy in strategies for seed in seeds]
    return [Cell(strategy, seed, output / f"{strategy}-{optimizer}-seed{seed}", optimizer)
            for strategy in strategies for optimizer in optimizers for seed in seeds]


def cell_config(base: RunConfig, cell: Cell) -> RunConfig:
    update = {"strategy": cell.strategy, "seed": cell.seed, "output": cell.path, "name": cell.path.name,
              "strategy_options": dict(base.strategy_options)}
    if cell.optimizer is not None:
        update["optimizer"] = cell.optimizer
    return base.model_copy(update=update)


def _shared(config: dict) -> dict:
    return {key: value for key, value in config.items() if key not in CELL_FIELDS}


def is_finished(run_dir: RunDir, config: RunConfig) -> bool:
    """Every evaluation written (the after-training one comes last, after the watch's best), or without
    evaluation: every step logged, or the collapse watch stopped the run."""
    from harness.watch import replay

    if config.evaluation.enabled:
        phases = {e["phase"] for e in read_jsonl(run_dir.eval_path)}
        return "after" in phases and (not config.watch.keep_best or "best" in phases)
    records = read_jsonl(run_dir.metrics_path)
    stopped = config.watch.active and replay(config.watch, records).should_stop()
    return len({record["step"] for record in records}) >= config.steps or stopped


def run_cell(config: RunConfig, verbose: bool = False) -> tuple[str, bool]:
    """Run, resume or skip one cell; returns (what happened, interrupted). The cell runs in a child process
    (`harness run --resume <cell>`), so each cell's engines and models are freed when it ends: in one process
    the memory grew by gigabytes per cell (measured: 17-18 GB after nine vLLM cells on a 24 GB machine)."""
    path = Path(config.output)
    existing = RunDir(path)
    if existing.config_path.exists() and existing.holds_work():
        saved = existing.read_config()
        old, new = _shared(saved), _shared(config.model_dump(mode="json"))
        if old != new:
            changed = sorted(key for key in old if old[key] != new.get(key))
            raise ConfigError(f"{path} holds a run with other settings ({', '.join(changed) or 'fields'}); "
                              "pick another --output for a different grid")
        run_dir = RunDir.open(path)
        config = RunConfig.model_validate(saved)
        if is_finished(run_dir, config):
            return "done already", False
        verb = "resumed"
    else:
        run_dir = RunDir.create(path, config.model_dump(mode="json"))
        verb = "ran"
    started = time.perf_counter()
    returncode = _run_child(run_dir.path, verbose)
    timing_path = path / "compare.json"
    spent = json.loads(timing_path.read_text())["wall_seconds"] if timing_path.exists() else 0.0
    write_json(timing_path, {"wall_seconds": spent + time.perf_counter() - started})
    if returncode not in (0, 130):
        raise HarnessError(f"cell {path.name} stopped with exit code {returncode} (its error is above); "
                           "fix it and run the same command again: finished cells are kept")
    return verb, returncode == 130


def _run_child(path: Path, verbose: bool) -> int:
    """`harness run --resume path` in a child that dies with us (Linux: PR_SET_PDEATHSIG). Its output goes to
    our stderr: stdout is the grid's leaderboard only."""
    command = [sys.executable, "-m", "harness.cli", "run", "--resume", str(path), *(["--verbose"] if verbose else [])]
    child = subprocess.Popen(command, stdout=sys.stderr, preexec_fn=interrupts.die_with_parent)
    try:
        return child.wait()
    except KeyboardInterrupt:  # Ctrl-C reached the child too: it checkpoints and exits 130
        return child.wait()


def _mean_sd(values: list[float]) -> dict[str, float | int] | None:
    if not values:
        return None
    return {"mean": fmean(values), "sd": pstdev(values) if len(values) > 1 else 0.0, "n": len(values)}


def _eval(run_dir: RunDir, phase: str) -> dict | None:
    return next((e for e in reversed(read_jsonl(run_dir.eval_path)) if e["phase"] == phase), None)


def _maj_key(record: dict) -> str | None:
    return next((key for key in record if key.startswith("maj_at_")), None)


def leaderboard(grid: list[Cell]) -> list[dict]:
    """One row per strategy (and optimizer, when they vary) and one for the untrained model: mean and spread
    over seeds of each figure."""
    rows: dict[str, dict[str, list[float]]] = {}
    for cell in grid:
        run_dir = RunDir(cell.path)
        before, after, best = (_eval(run_dir, phase) for phase in ("before", "after", "best"))
        metrics = read_jsonl(run_dir.metrics_path)
        figures = rows.setdefault(cell.label, {})
        if before and after:
            maj = _maj_key(before)
            for name, record in (("before", before), ("after", after), ("best", best)):
                if record is not None:  # "best": the collapse watch's best step (watch.keep_best)
                    figures.setdefault(f"pass_at_1_{name}", []).append(record["pass_at_1"])
                    figures.setdefault(f"maj_{name}", []).append(record[maj])
        if metrics:
            for key in ("label_accuracy", "reward_accuracy", "majority_ratio"):
                figures.setdefault(key, []).append(fmean(m[key] for m in metrics))
            figures.setdefault("steps", []).append(float(len(metrics)))
        timing = cell.path / "compare.json"
        if timing.exists():
            figures.setdefault("wall_seconds", []).append(json.loads(timing.read_text())["wall_seconds"])
    untrained: dict[str, list[float]] = {}
    seen_seeds: set[int] = set()
    for cell in grid:  # the base model's evaluation, once per seed
        before = _eval(RunDir(cell.path), "before")
        if before and cell.seed not in seen_seeds:
            seen_seeds.add(cell.seed)
            maj = _maj_key(before)
            for name in ("before", "after"):
                untrained.setdefault(f"pass_at_1_{name}", []).append(before["pass_at_1"])
                untrained.setdefault(f"maj_{name}", []).append(before[maj])
    table = [{"strategy": UNTRAINED, **{k: _mean_sd(v) for k, v in untrained.items()}}]
    table += [{"strategy": name, **{k: _mean_sd(v) for k, v in figures.items()}} for name, figures in rows.items()]
    return table


COLUMNS = (("pass_at_1_before", "pass@1 before"), ("pass_at_1_after", "pass@1 after"),
           ("pass_at_1_best", "pass@1 best"), ("maj_before", "maj before"), ("maj_after", "maj after"),
           ("maj_best", "maj best"), ("label_accuracy", "label acc"), ("reward_accuracy", "reward acc"),
           ("steps", "steps"), ("wall_seconds", "wall s"))


def markdown(table: list[dict], seeds: list[int]) -> str:
    # the "best" columns only when some cell kept a best step (watch.keep_best)
    columns = [(key, title) for key, title in COLUMNS if not key.endswith("_best") or any(key in r for r in table)]
    lines = [f"mean ± sd over seeds {', '.join(map(str, seeds))} (maj: maj@k of the evaluation; after: the last "
             "step's policy; best: the collapse watch's pick, label-free)", "",
             "| strategy | " + " | ".join(title for _, title in columns) + " |",
             "|---" * (len(columns) + 1) + "|"]
    for row in table:
        cells_text = []
        for key, _ in columns:
            value = row.get(key)
            if value is None:
                cells_text.append("-")
            elif key in ("steps", "wall_seconds"):
                cells_text.append(f"{value['mean']:.0f}")
            else:
                cells_text.append(f"{value['mean']:.3f} ± {value['sd']:.3f}")
        lines.append(f"| {row['strategy']} | " + " | ".join(cells_text) + " |")
    return "\n".join(lines)


def write_leaderboard(grid: list[Cell], seeds: list[int], output: Path) -> tuple[str, Path]:
    """leaderboard.md, leaderboard.json and comparison.png in `output`; returns the markdown and the plot."""
    from harness.compare_plot import plot_grid

    table = leaderboard(grid)
    text = markdown(table, seeds)
    write_atomic(output / "leaderboard.md", ("# TTRL comparison\n\n" + text + "\n").encode())
    write_json(output / "leaderboard.json", {"seeds": seeds, "rows": table})
    return text, plot_grid(grid, output / "comparison.png")
