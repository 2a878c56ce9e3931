"""The run directory: resolved config, metrics.jsonl, eval.jsonl, checkpoints. Every write is atomic."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from harness.errors import HarnessError

CHECKPOINT_META = "checkpoint.json"
MIN_FREE_BYTES = 2 * 1024**3  # a 135M-parameter checkpoint with AdamW state is ~1.6 GB
_UMASK = os.umask(0)
os.umask(_UMASK)  # read once at import (os.umask can only be read by setting it)


def write_atomic(path: Path, data: bytes) -> None:
    """Write to a temp file in the same folder, fsync, then rename over the target. The file gets the mode
    a plain open() would give it (the target's, else 0666 minus the umask), not mkstemp's private 0600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o666 & ~_UMASK
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _torch_save_atomic(target: Path, state: Any) -> None:
    """torch.save to `<target>.partial`, fsync, then rename: a crash leaves the old file or none, never half."""
    import torch

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".pt.partial")
    torch.save(state, tmp)
    with tmp.open("rb") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, target)


def write_json(path: Path, value: Any) -> None:
    write_atomic(path, (json.dumps(value, indent=2, default=str) + "\n").encode())


def read_jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


class RunDir:
    """One run's folder. Knows nothing about training; stores what the loop hands it."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.config_path = self.path / "config.json"
        self.metrics_path = self.path / "metrics.jsonl"
        self.labels_path = self.path / "labels.jsonl"  # each step's pseudo-label per problem id
        self.eval_path = self.path / "eval.jsonl"
        self.checkpoint_dir = self.path / "checkpoint"
        self.best_dir = self.path / "best"

    @classmethod
    def create(cls, path: Path, config: dict) -> RunDir:
        run = cls(path)
        if run.config_path.exists() and run.holds_work():
            raise HarnessError(f"{path} already holds a run: continue it with --resume {path} or pick --output")
        # a folder with only config.json is a start that failed before any work: it is started afresh
        run.check_writable()
        write_json(run.config_path, config)
        return run

    @classmethod
    def open(cls, path: Path) -> RunDir:
        run = cls(path)
        if not run.config_path.is_file():
            raise HarnessError(f"--resume {path}: no config.json there; is it a run directory?")
        run.check_writable()
        return run

    def read_only(self) -> ReadOnlyRunDir:
        return ReadOnlyRunDir(self.path)

    def holds_work(self) -> bool:
        """Whether anything finished lives here: a step's metrics, an evaluation, or a checkpoint."""
        return (any(p.is_file() and p.stat().st_size > 0 for p in (self.metrics_path, self.eval_path))
                or (self.checkpoint_dir / CHECKPOINT_META).exists())

    def check_writable(self) -> None:
        """Fail before any work when the folder cannot be written or the disk is nearly full."""
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            probe = self.path / f".write-test-{os.getpid()}"  # per process: the ranks of one run check at once
            write_atomic(probe, b"ok")
            probe.unlink()
        except OSError as error:
            raise HarnessError(f"output directory {self.path} is not writable ({error.strerror})") from None
        free = shutil.disk_usage(self.path).free
        if free < MIN_FREE_BYTES:
            raise HarnessError(
                f"output directory {self.path} has {free / 1024**3:.1f} GiB free; checkpoints need "
                f"{MIN_FREE_BYTES / 1024**3:.0f} GiB: free space or pick another --output"
            )

    def read_config(self) -> dict:
        try:
            config = json.loads(self.config_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as error:  # JSONDecodeError is a ValueError
            raise HarnessError(f"{self.config_path} cannot be read ({error}): restore it or start a new run") from None
        if not isinstance(config, dict):
            raise HarnessError(f"{self.config_path} holds no JSON object: restore it or start a new run")
        return config

    # metrics.jsonl / eval.jsonl: append one line per record, fsync'd; truncated to the checkpoint on resume
    def append(self, path: Path, record: dict) -> None:
        with path.open("a") as handle:
            handle.write(json.dumps(record) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def truncate_after(self, path: Path, step: int) -> None:
        """Drop records of steps >= `step` (written after the checkpoint we resume from)."""
        if not path.exists():
            return
        kept = [line for line in path.read_text().splitlines() if _keep(line, step)]
        write_atomic(path, "".join(line + "\n" for line in kept).encode())

    # checkpoints: state-<step>.pt, then checkpoint.json naming it with its sha256, then old files go
    def save_checkpoint(self, step: int, state: dict) -> None:
        target = self.checkpoint_dir / f"state-{step:06d}.pt"
        _torch_save_atomic(target, state)
        write_json(self.checkpoint_dir / CHECKPOINT_META, {"step": step, "file": target.name,
                                                            "sha256": sha256_of(target)})
        for old in self.checkpoint_dir.glob("state-*.pt*"):
            if old.name != target.name:
                old.unlink(missing_ok=True)

    # best/: the policy of the collapse watch's best step (policy-<step>.pt) and best.json naming it. Older
    # files are pruned only once a checkpoint lies past them, so a resume can always point back at the best
    # step among the steps it keeps.
    def save_best(self, step: int, weights: dict, info: dict) -> None:
        target = self.best_dir / f"policy-{step:06d}.pt"
        _torch_save_atomic(target, {name: tensor.detach().clone() for name, tensor in weights.items()})
        write_json(self.best_dir / "best.json", {"step": step, "file": target.name, **info})

    def best_info(self) -> dict | None:
        path = self.best_dir / "best.json"
        return json.loads(path.read_text()) if path.is_file() else None

    def load_best(self) -> dict:
        import torch

        info = self.best_info()
        if info is None or not (self.best_dir / info["file"]).is_file():
            raise HarnessError(f"{self.best_dir}: the best step's policy is missing; rerun without keep_best "
                               "or start the run again")
        return torch.load(self.best_dir / info["file"], map_location="cpu", weights_only=True)

    def settle_best(self, best_step: int | None, info: dict) -> None:
        """At a checkpoint or a resume: keep only the policy of `best_step` (the best among the steps the
        checkpoint holds) and point best.json at it; files of other steps are no longer needed."""
        if not self.best_dir.is_dir():
            return
        keep = f"policy-{best_step:06d}.pt" if best_step is not None else None
        if keep and (self.best_dir / keep).is_file():
            write_json(self.best_dir / "best.json", {"step": best_step, "file": keep, **info})
        else:
            (self.best_dir / "best.json").unlink(missing_ok=True)
        for old in self.best_dir.glob("policy-*.pt*"):
            if old.name != keep:
                old.unlink(missing_ok=True)

    def load_checkpoint(self) -> tuple[int, dict] | None:
        """(step, state) of the last complete checkpoint; None when there is none yet."""
        import torch

        meta_path = self.checkpoint_dir / CHECKPOINT_META
        if not meta_path.exists():
            return None
        try:
            meta = json.loads(meta_path.read_text())
            target = self.checkpoint_dir / meta["file"]
            step, expected = int(meta["step"]), meta["sha256"]
        except (ValueError, KeyError, TypeError):
            raise HarnessError(f"{meta_path} is corrupt: refusing to resume; delete the run or restore it") from None
        if not target.is_file() or sha256_of(target) != expected:
            raise HarnessError(f"checkpoint {target} is missing or corrupt (sha256 mismatch): refusing to load it")
        return step, torch.load(target, map_location="cpu", weights_only=True)


def _keep(line: str, step: int) -> bool:
    try:
        return json.loads(line).get("step", 0) < step
    except json.JSONDecodeError:
        return False  # a torn last line from a crash mid-write


class ReadOnlyRunDir(RunDir):
    """The run folder as ranks other than 0 of a data-parallel run see it: they read its config, checkpoint
    and best policy; rank 0 alone writes, so each record and checkpoint is written once."""

    def append(self, path: Path, record: dict) -> None:
        pass

    def truncate_after(self, path: Path, step: int) -> None:
        pass

    def save_checkpoint(self, step: int, state: dict) -> None:
        pass

    def save_best(self, step: int, weights: dict, info: dict) -> None:
        pass

    def settle_best(self, best_step: int | None, info: dict) -> None:
        pass
