"""Where a benchmark's data file is: the `path` option, else $HARNESS_DATA_DIR, else ./data.

A folder may hold the files in TTRL's layout (`ttrl/AIME-TTT.json`, `AIME-TTT.json`, or the official
repository's `AIME-TTT/test.json`) or Qwen2.5-Math's (`qwen_eval/aime24.jsonl`, `aime24.jsonl`,
`aime24/test.jsonl`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from harness.errors import DataError

DATA_DIR_ENV = "HARNESS_DATA_DIR"
FIX = f"pass --benchmark-opt path=FILE_OR_FOLDER or set {DATA_DIR_ENV}=FOLDER"


def data_root(path: str | None) -> Path:
    """The file or folder to read: the option, else $HARNESS_DATA_DIR, else ./data."""
    if path:
        return Path(path).expanduser()
    return Path(os.environ.get(DATA_DIR_ENV) or "data").expanduser()


def ttrl_candidates(folder: Path, filename: str) -> list[Path]:
    """Where TTRL's file `filename` (e.g. AIME-TTT.json) may lie under `folder`, most likely first."""
    stem = Path(filename).stem
    return [folder / "ttrl" / filename, folder / filename, folder / stem / "test.json"]


def qwen_candidates(folder: Path, name: str) -> list[Path]:
    """Where Qwen2.5-Math's set `name` (e.g. aime24) may lie under `folder`, most likely first."""
    return [folder / "qwen_eval" / f"{name}.jsonl", folder / f"{name}.jsonl", folder / name / "test.jsonl"]


@dataclass(frozen=True)
class Found:
    """A located data file and its format."""

    path: Path
    format: str  # "ttrl" | "qwen" | "auto" (a file the user named: decided from its content)


def locate(benchmark: str, path: str | None, fmt: str, ttrl_file: str | None, qwen_name: str | None) -> Found:
    """The data file of `benchmark`, or a one-line DataError naming every place it looked."""
    root = data_root(path)
    if root.is_file():
        return Found(root, fmt)
    if not root.exists():
        where = "--benchmark-opt path" if path else (DATA_DIR_ENV if os.environ.get(DATA_DIR_ENV) else "default")
        raise DataError(f"benchmark '{benchmark}': data path {root} ({where}) does not exist; {FIX}")
    candidates: list[Found] = []
    if fmt in ("ttrl", "auto") and ttrl_file:
        candidates += [Found(p, "ttrl") for p in ttrl_candidates(root, ttrl_file)]
    if fmt in ("qwen", "auto") and qwen_name:
        candidates += [Found(p, "qwen") for p in qwen_candidates(root, qwen_name)]
    for candidate in candidates:
        if candidate.path.is_file():
            return candidate
    if not candidates:
        raise DataError(f"benchmark '{benchmark}' has no {fmt}-format file; use --benchmark-opt format=auto")
    looked = ", ".join(str(c.path) for c in candidates)
    raise DataError(f"benchmark '{benchmark}': no data file found (looked for {looked}); {FIX}")
