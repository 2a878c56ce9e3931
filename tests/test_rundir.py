"""Run directory: atomic files, checkpoints that refuse corruption, truncation on resume."""

from __future__ import annotations

import json

import pytest
import torch

from harness.errors import HarnessError
from harness.loop import problems_for_step
from harness.rundir import RunDir, write_json
from harness.types import Problem


def test_create_refuses_an_existing_run(tmp_path):
    """A second run into a folder that holds finished work is refused with the --resume hint; a folder
    holding only config.json (a start that failed before any work) is started afresh."""
    first = RunDir.create(tmp_path / "r", {"a": 1})
    assert RunDir.create(tmp_path / "r", {"a": 2}).read_config() == {"a": 2}
    first.append(first.metrics_path, {"step": 0})
    with pytest.raises(HarnessError, match="already holds a run: continue it with --resume"):
        RunDir.create(tmp_path / "r", {"a": 3})


def test_unwritable_output_is_detected_as_root_too(tmp_path):
    """A path under a regular file cannot be created, whoever runs: refused before any work."""
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(HarnessError, match="is not writable"):
        RunDir.create(blocker / "run", {})


def test_checkpoint_round_trip_and_corruption(tmp_path):
    """The last complete checkpoint loads; a flipped byte is refused, never loaded silently."""
    run = RunDir.create(tmp_path / "r", {})
    run.save_checkpoint(1, {"w": torch.ones(3)})
    run.save_checkpoint(2, {"w": torch.full((3,), 2.0)})
    step, state = run.load_checkpoint()
    assert step == 2 and torch.equal(state["w"], torch.full((3,), 2.0))
    assert sorted(p.name for p in run.checkpoint_dir.iterdir()) == ["checkpoint.json", "state-000002.pt"]
    target = run.checkpoint_dir / "state-000002.pt"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    with pytest.raises(HarnessError, match="missing or corrupt"):
        run.load_checkpoint()
    write_json(run.checkpoint_dir / "checkpoint.json", {"step": "x"})
    with pytest.raises(HarnessError, match="is corrupt: refusing to resume"):
        run.load_checkpoint()


def test_truncation_drops_later_steps_and_torn_lines(tmp_path):
    """On resume, records from steps at or after the checkpoint, and a torn last line, are dropped."""
    run = RunDir.create(tmp_path / "r", {})
    for step in range(4):
        run.append(run.metrics_path, {"step": step})
    with run.metrics_path.open("a") as handle:
        handle.write('{"step": 4, "pass')
    run.truncate_after(run.metrics_path, 2)
    assert [json.loads(line)["step"] for line in run.metrics_path.read_text().splitlines()] == [0, 1]


def test_problem_schedule_is_deterministic_and_covers_epochs():
    """Steps slice seeded permutations: same seed same order; each epoch visits every problem once."""
    problems = [Problem(id=str(i), prompt="q", answer="1", source="t") for i in range(10)]
    first = [p.id for step in range(5) for p in problems_for_step(problems, step, 4, seed=3)]
    again = [p.id for step in range(5) for p in problems_for_step(problems, step, 4, seed=3)]
    assert first == again
    assert sorted(first[:10]) == sorted(p.id for p in problems)
    assert first != [p.id for step in range(5) for p in problems_for_step(problems, step, 4, seed=4)]
