"""Run directory: atomic files (also when a write fails), checkpoints that refuse corruption, truncation on
resume."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from harness.errors import HarnessError
from harness.loop import problems_for_step
from harness.rundir import RunDir, write_atomic, write_json
from harness.types import Problem
from tests.conftest import REPO

ORIGINAL = b'{"step": 3}\n'


def test_write_atomic_replaces_the_file_and_leaves_only_it(tmp_path):
    """The new bytes are in place and the temporary file is gone (the baseline for the failures below)."""
    target = tmp_path / "config.json"
    target.write_bytes(ORIGINAL)
    write_atomic(target, b"new")
    assert target.read_bytes() == b"new" and os.listdir(tmp_path) == ["config.json"]


def test_write_atomic_gives_new_files_the_umask_mode_and_keeps_an_existing_files_mode(tmp_path):
    """Not mkstemp's private 0600: run files stay readable by whoever could read a plainly written file."""
    fresh, kept = tmp_path / "metrics.jsonl", tmp_path / "config.json"
    kept.write_bytes(ORIGINAL)
    kept.chmod(0o640)
    write_atomic(fresh, b"{}")
    write_atomic(kept, b"{}")
    umask = os.umask(0)
    os.umask(umask)
    assert fresh.stat().st_mode & 0o777 == 0o666 & ~umask
    assert kept.stat().st_mode & 0o777 == 0o640


# A real failure of the data write: with the file-size limit at 4 KiB, writing 1 MiB fails with EFBIG. It runs
# in a child process, as the limit holds for every file the process writes (pytest's own capture files too);
# SIGXFSZ is ignored so that the write raises instead of the signal killing the process.
FILE_SIZE_LIMIT = textwrap.dedent("""
    import resource, signal, sys
    from pathlib import Path
    from harness.rundir import write_atomic

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
    try:
        write_atomic(Path(sys.argv[1]), b"x" * (1 << 20))
    except OSError as error:
        print(error.errno)
""")


def test_a_failed_data_write_leaves_the_original_and_no_temporary_file(tmp_path):
    """The disk refuses the bytes part-way (EFBIG here, ENOSPC on a full disk): the error reaches the caller,
    the original file is byte for byte as before, and nothing else is left in the folder."""
    target = tmp_path / "metrics.jsonl"
    target.write_bytes(ORIGINAL)
    done = subprocess.run([sys.executable, "-c", FILE_SIZE_LIMIT, str(target)], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(errno.EFBIG)]
    assert target.read_bytes() == ORIGINAL and os.listdir(tmp_path) == ["metrics.jsonl"]


@pytest.mark.parametrize("failure", [OSError(errno.EIO, "Input/output error"), KeyboardInterrupt()],
                         ids=["io-error", "ctrl-c"])
def test_a_failed_fsync_leaves_the_original_and_no_temporary_file(tmp_path, monkeypatch, failure):
    """fsync failing (an I/O error, or Ctrl-C landing there): the same exception reaches the caller, the
    original is intact and the temporary file is removed. A disk that fails fsync on demand does not exist
    here, so os.fsync is the one call replaced; the rest of write_atomic runs for real."""
    target = tmp_path / "checkpoint.json"
    target.write_bytes(ORIGINAL)

    def failing_fsync(fd: int) -> None:
        raise failure

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(type(failure)):
        write_atomic(target, b"new")
    monkeypatch.undo()
    assert target.read_bytes() == ORIGINAL and os.listdir(tmp_path) == ["checkpoint.json"]


def test_a_failed_rename_leaves_the_target_and_no_temporary_file(tmp_path):
    """The rename over the target fails for real (the target is a non-empty folder): the error reaches the
    caller, the target and what it holds are untouched, and the written temporary file is removed."""
    target = tmp_path / "eval.jsonl"
    target.mkdir()
    (target / "kept").write_bytes(ORIGINAL)
    with pytest.raises(OSError):
        write_atomic(target, b"new")
    assert os.listdir(tmp_path) == ["eval.jsonl"] and (target / "kept").read_bytes() == ORIGINAL
    assert os.listdir(target) == ["kept"]


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
