"""The example third-party strategy package installs, shows up, and runs through the CLI."""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import pytest

from tests.conftest import REPO, live_distributions, throwaway_venv

EXAMPLE = REPO / "examples" / "ttrl-margin-strategy"


TUTORIAL = REPO / "docs" / "plugins.md"
FILE_BLOCK = re.compile(r"<!-- file: (?P<path>[^ ]+) -->\n```[a-z]*\n(?P<body>.*?)```", re.S)


def tutorial_files() -> dict[str, str]:
    """The files the tutorial in docs/plugins.md shows, by path inside the plugin's folder."""
    return {m["path"]: m["body"] for m in FILE_BLOCK.finditer(TUTORIAL.read_text())}


def test_the_tutorial_shows_the_example_package_file_for_file():
    """docs/plugins.md and examples/ttrl-margin-strategy are one source: every file the tutorial shows is
    the example's file, and the example has no file the tutorial leaves out."""
    shown = tutorial_files()
    assert set(shown) == {"ttrl_margin_strategy/__init__.py", "pyproject.toml", "tests/test_margin.py"}
    for path, body in shown.items():
        assert (EXAMPLE / path).read_text() == body, f"{path} differs between docs/plugins.md and the example"
    example = {str(f.relative_to(EXAMPLE)) for f in EXAMPLE.rglob("*") if f.is_file() and "__pycache__" not in
               f.parts and ".egg-info" not in str(f) and "build" not in f.parts}
    assert example == set(shown)


class Installed(NamedTuple):
    folder: Path  # the plugin's folder, made from the tutorial's files
    python: Path  # the throwaway venv's interpreter, which has the plugin installed
    live_before: set[str]  # the live venv's site-packages entries before the install


@pytest.fixture(scope="module")
def installed_example(tmp_path_factory) -> Installed:
    """The tutorial followed word by word: an empty folder, the files it shows, `pip install -e .`, its unit
    tests. The install goes into a throwaway venv that sees the live venv's packages, so the live venv (and
    every other test in it) never has the plugin; deleting the venv is the uninstall."""
    base = tmp_path_factory.mktemp("tutorial")
    folder = base / "ttrl-margin-strategy"
    for path, body in tutorial_files().items():
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_text(body)
    live_before = live_distributions()
    python = throwaway_venv(base / "venv")
    pip = [str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "-e", "."]
    subprocess.run(pip, check=True, capture_output=True, text=True, cwd=folder, timeout=300)
    return Installed(folder, python, live_before)


def test_the_install_leaves_the_live_venv_unchanged(installed_example):
    """The plugin is installed where the tests run it, and nowhere else: the live venv's site-packages are
    as before, its interpreter finds no such distribution, and its `harness plugins` has no margin."""
    assert live_distributions() == installed_example.live_before
    with pytest.raises(importlib.metadata.PackageNotFoundError):
        importlib.metadata.distribution("ttrl-margin-strategy")
    live = harness("plugins", "--json", python=Path(sys.executable))
    assert live.returncode == 0, live.stderr
    assert "margin" not in {row["name"] for row in json.loads(live.stdout)["plugins"]}
    assert "margin" in harness("plugins", python=installed_example.python).stdout


def test_the_tutorial_unit_tests_pass(installed_example):
    """Step 5: `python -m pytest -q tests` in the plugin's folder (no model, no grader worker)."""
    done = subprocess.run([installed_example.python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
                          cwd=installed_example.folder, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "2 passed" in done.stdout


def test_the_tutorial_plugin_shows_its_options(installed_example):
    """Step 5: `harness plugins margin` prints min_margin with its type, default and description."""
    done = harness("plugins", "margin", python=installed_example.python)
    assert done.returncode == 0, done.stderr
    assert "strategy 'margin' from ttrl-margin-strategy 0.1.0" in done.stdout
    assert "min_margin: int, default 2" in done.stdout and "Votes the winner must lead" in done.stdout


def harness(*args: str, python: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    """`harness ARGS` run by `python` (the throwaway venv's, or the live one's to show what it lacks)."""
    return subprocess.run([python, "-m", "harness.cli", *args], capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, **(env or {})}, timeout=900)


def test_example_plugin_is_listed_with_its_distribution(installed_example):
    """`harness plugins` shows the installed strategy and the distribution it came from."""
    listing = harness("plugins", "--json", python=installed_example.python)
    assert listing.returncode == 0, listing.stderr
    rows = json.loads(listing.stdout)["plugins"]
    margin = next(row for row in rows if row["name"] == "margin")
    assert margin["kind"] == "strategy" and margin["distribution"] == "ttrl-margin-strategy"
    assert margin["version"] == "0.1.0"
    hidden = harness("plugins", "--json", python=installed_example.python, env={"TTRL_HARNESS_PLUGINS": ""})
    assert "margin" not in {row["name"] for row in json.loads(hidden.stdout)["plugins"]}


@pytest.mark.slow
def test_example_plugin_drives_a_run(installed_example, tmp_path):
    """A tiny real run with --strategy margin finishes and logs its steps."""
    out = tmp_path / "run"
    result = harness("run", "--strategy", "margin", "--strategy-opt", "min_margin=0", "--optimizer", "grpo",
                     "--sampler", "hf", "--limit", "2", "--problems-per-step", "2", "--n-votes", "2",
                     "--max-tokens", "12", "--steps", "1", "--no-eval", "--output", str(out),
                     python=installed_example.python)
    assert result.returncode == 0, result.stderr[-3000:]
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [0]
    config = json.loads((out / "config.json").read_text())
    assert config["strategy"] == "margin" and config["strategy_options"] == {"min_margin": 0}
    assert config["plugin_versions"]["strategy/margin"] == "ttrl-margin-strategy 0.1.0"
    assert "strategy/lead" in records[0]
