"""Problems from a Hugging Face dataset (only when the user names one with `hf_dataset`)."""

from __future__ import annotations

from typing import Any

from harness.benchmarks.files import record_to_problem
from harness.errors import DataError
from harness.types import Problem


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}".rstrip(": ")


def _pick_split(loaded: Any, dataset_id: str) -> tuple[str, Any]:
    """A DatasetDict's "test" split, else its only split."""
    names = list(loaded.keys())
    if "test" in names:
        return "test", loaded["test"]
    if len(names) == 1:
        return names[0], loaded[names[0]]
    raise DataError(
        f"hf_dataset {dataset_id!r} has splits {', '.join(names)}; choose one with --benchmark-opt hf_split=NAME"
    )


def load_hf_problems(dataset_id: str, split: str | None, source: str) -> list[Problem]:
    """Every row of the dataset as a Problem (prompt from problem/prompt/question, gold from answer)."""
    try:
        import datasets
    except ImportError:
        raise DataError("hf_dataset needs the `datasets` package: pip install datasets") from None
    try:
        loaded = datasets.load_dataset(dataset_id, split=split) if split else datasets.load_dataset(dataset_id)
    except Exception as error:  # the hub client raises many kinds (offline, not found, bad split)
        raise DataError(
            f"hf_dataset {dataset_id!r} could not be loaded ({_first_line(error)}); check the id and the "
            "network, or use local files: --benchmark-opt path=FILE_OR_FOLDER"
        ) from None
    if split is None:
        split, loaded = _pick_split(loaded, dataset_id)
    return [
        record_to_problem(
            row,
            f"hf_dataset {dataset_id} split {split} row {index}",
            fmt="hf",
            default_source=source,
            default_id=str(index),
        )
        for index, row in enumerate(loaded)
    ]
