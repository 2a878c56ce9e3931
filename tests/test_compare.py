"""`harness compare`: a grid of ordinary run directories, resumable cell by cell, then a leaderboard and a plot."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import REPO

TINY = ("--steps", "1", "--sampler", "hf", "--limit", "2", "--problems-per-step", "2", "--n-votes", "2",
        "--max-tokens", "8", "--eval-k", "2")
ENV = {**os.environ, "TTRL_HARNESS_PLUGINS": "", "HF_HUB_OFFLINE": "1"}


def compare(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness.cli", "compare", *args], capture_output=True, text=True,
                          cwd=REPO, env=ENV, timeout=1200)


GRID = ("--strategy", "majority,oracle,random", "--seeds", "0,1", *TINY)


def kill_inside_the_second_cell(out) -> None:
    """Start the grid and kill -9 its process group inside the second cell, after that cell's first evaluation."""
    command = [sys.executable, "-m", "harness.cli", "compare", *GRID, "--output", str(out)]
    process = subprocess.Popen(command, cwd=REPO, env=ENV, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    in_second = False
    for line in process.stderr:
        in_second = in_second or line.startswith("[2/6] majority-seed1")
        if in_second and line.startswith("eval[before]"):
            break
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=60)


@pytest.mark.slow
def test_a_killed_grid_continues_then_writes_leaderboard_and_plot_and_a_second_call_does_no_work(tmp_path):
    """One grid, as a user runs it: killed inside its second cell, the same command skips the finished cell,
    resumes the killed one and completes the rest; then leaderboard (with the untrained row) and plot exist,
    a third call does no work, and other settings in the same folder are refused."""
    out = tmp_path / "grid"
    kill_inside_the_second_cell(out)
    assert not (out / "leaderboard.json").exists()
    first = compare(*GRID, "--output", str(out))
    assert first.returncode == 0, first.stderr[-3000:]
    assert "[1/6] majority-seed0: done already" in first.stderr
    assert "[2/6] majority-seed1: resumed" in first.stderr
    cells = sorted(p.name for p in out.iterdir() if p.is_dir())
    assert cells == [f"{s}-seed{n}" for s in ("majority", "oracle", "random") for n in (0, 1)]
    rows = {row["strategy"]: row for row in json.loads((out / "leaderboard.json").read_text())["rows"]}
    assert list(rows) == ["untrained", "majority", "oracle", "random"]
    assert rows["majority"]["steps"] == {"mean": 1.0, "sd": 0.0, "n": 2}  # the resumed step is logged once
    assert rows["oracle"]["label_accuracy"]["mean"] == 1.0 and rows["oracle"]["steps"]["n"] == 2
    assert rows["untrained"]["pass_at_1_after"] == rows["untrained"]["pass_at_1_before"]
    assert "| untrained |" in (out / "leaderboard.md").read_text() and "| random |" in first.stdout
    assert (out / "comparison.png").stat().st_size > 10_000
    started = time.perf_counter()
    second = compare(*GRID, "--output", str(out))
    assert second.returncode == 0 and second.stderr.count(": done already") == 6
    assert time.perf_counter() - started < 60  # no model was loaded
    other = compare("--strategy", "majority", "--seeds", "0", *TINY, "--lr", "1e-5", "--output", str(out))
    assert other.returncode == 2 and "holds a run with other settings (optimizer_options)" in other.stderr


def test_seed_lists_and_unknown_strategies_fail_before_any_work(tmp_path):
    bad_seeds = compare("--strategy", "majority", "--seeds", "0,x", "--output", str(tmp_path / "a"))
    assert bad_seeds.returncode == 2 and "--seeds '0,x': give whole numbers" in bad_seeds.stderr
    typo = compare("--strategy", "majority,randm", "--output", str(tmp_path / "b"))
    assert typo.returncode == 2 and "Unknown strategy 'randm'. Did you mean: random?" in typo.stderr
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_a_grid_of_optimizers_names_its_cells_and_rows_by_strategy_and_optimizer(tmp_path):
    from harness.compare import cell_config, cells
    from harness.config import RunConfig

    grid = cells(["majority"], [0, 1], tmp_path, ["grpo", "ppo"])
    assert [cell.path.name for cell in grid] == ["majority-grpo-seed0", "majority-grpo-seed1",
                                                 "majority-ppo-seed0", "majority-ppo-seed1"]
    assert [cell.label for cell in grid] == ["majority/grpo"] * 2 + ["majority/ppo"] * 2
    assert [cell_config(RunConfig(), cell).optimizer for cell in grid] == ["grpo", "grpo", "ppo", "ppo"]
    single = cells(["majority"], [0], tmp_path, ["ppo"])  # one optimizer: the old names, the base config's
    assert [(c.path.name, c.label, c.optimizer) for c in single] == [("majority-seed0", "majority", None)]
    typo = compare("--optimizer", "grpo,ppoo", "--output", str(tmp_path / "c"))
    assert typo.returncode == 2 and "Unknown optimizer 'ppoo'. Did you mean: ppo?" in typo.stderr
