"""The example third-party strategy package installs, shows up, and runs through the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

EXAMPLE = REPO / "examples" / "ttrl-margin-strategy"
HARNESS = [sys.executable, "-m", "harness.cli"]


@pytest.fixture(scope="module")
def installed_example():
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", str(EXAMPLE)]
    subprocess.run(pip, check=True, capture_output=True, text=True)
    yield
    subprocess.run([sys.executable, "-m", "pip", "uninstall", "-q", "-y", "ttrl-margin-strategy"], check=True)


def harness(*args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*HARNESS, *args], capture_output=True, text=True, cwd=cwd or REPO,
                          env={**os.environ, **(env or {})}, timeout=900)


def test_example_plugin_is_listed_with_its_distribution(installed_example):
    """`harness plugins` shows the installed strategy and the distribution it came from."""
    listing = harness("plugins", "--json")
    assert listing.returncode == 0, listing.stderr
    rows = json.loads(listing.stdout)["plugins"]
    margin = next(row for row in rows if row["name"] == "margin")
    assert margin["kind"] == "strategy" and margin["distribution"] == "ttrl-margin-strategy"
    assert margin["version"] == "0.1.0"
    hidden = harness("plugins", "--json", env={"TTRL_HARNESS_PLUGINS": ""})
    assert "margin" not in {row["name"] for row in json.loads(hidden.stdout)["plugins"]}


@pytest.mark.slow
def test_example_plugin_drives_a_run(installed_example, tmp_path):
    """A tiny real run with --strategy margin finishes and logs its steps."""
    out = tmp_path / "run"
    result = harness("run", "--strategy", "margin", "--strategy-opt", "min_margin=0", "--optimizer", "grpo",
                     "--sampler", "hf", "--limit", "2", "--problems-per-step", "2", "--n-votes", "2",
                     "--max-tokens", "12", "--steps", "1", "--no-eval", "--output", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [0]
    assert json.loads((out / "config.json").read_text())["strategy"] == "margin"
