"""Shared fixtures: the real data folder beside the checkout, and a clean plugin set per test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("HARNESS_DATA_DIR") or REPO.parent / "shared" / "data")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """../shared/data (or $HARNESS_DATA_DIR): TTRL's and Qwen's files, never copied into the project."""
    if not (DATA_DIR / "ttrl" / "AIME-TTT.json").is_file():
        raise FileNotFoundError(f"test data not found at {DATA_DIR}; set HARNESS_DATA_DIR")
    return DATA_DIR


@pytest.fixture(autouse=True, scope="session")
def _data_env():
    os.environ.setdefault("HARNESS_DATA_DIR", str(DATA_DIR))
    yield
