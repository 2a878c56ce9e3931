"""Plugins that break, installed for real: a raising hook is a listed load failure and nothing else stops; a
strategy that raises or returns a bad reward stops the run with one line, and the same command can rerun."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import REPO

PACKAGE = {
    "pyproject.toml": """
        [build-system]
        requires = ["setuptools>=68"]
        build-backend = "setuptools.build_meta"
        [project]
        name = "ttrl-broken-plugins"
        version = "0.3.0"
        [project.entry-points.ttrl_harness]
        raising_hook = "broken_plugins.raising_hook"
        misbehaving = "broken_plugins.misbehaving"
        [tool.setuptools]
        packages = ["broken_plugins"]
    """,
    "broken_plugins/__init__.py": "",
    "broken_plugins/raising_hook.py": """
        from harness import hookimpl

        @hookimpl
        def register_strategies(register):
            raise RuntimeError("the hook itself is broken")
    """,
    "broken_plugins/misbehaving.py": """
        import math
        from harness import Strategy, Verdict, hookimpl

        class Raises(Strategy):
            name = "raises"
            def label(self, group):
                raise ZeroDivisionError("division by zero inside label")

        class NotANumber(Strategy):
            name = "nan-reward"
            def label(self, group):
                return Verdict("x", [math.nan] * len(group.completions))

        @hookimpl
        def register_strategies(register):
            register(Raises)
            register(NotANumber)
    """,
}
TINY_RUN = ("--sampler", "hf", "--limit", "1", "--problems-per-step", "1", "--n-votes", "2", "--max-tokens", "4",
            "--steps", "1", "--no-eval")


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    folder = tmp_path_factory.mktemp("broken-plugins")
    for path, body in PACKAGE.items():
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_text(textwrap.dedent(body))
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", str(folder)],
                   check=True, capture_output=True, text=True)
    yield
    subprocess.run([sys.executable, "-m", "pip", "uninstall", "-q", "-y", "ttrl-broken-plugins"], check=True)


def harness(*args: str, **env: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k != "TTRL_HARNESS_PLUGINS"}
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True, cwd=REPO,
                          env={**environment, "HF_HUB_OFFLINE": "1", **env}, timeout=900)


def test_a_raising_hook_is_listed_as_failed_and_the_rest_load(installed):
    """`harness plugins` lists the failure (one warning line, no traceback) and the other plugin's strategies."""
    done = harness("plugins")
    assert done.returncode == 0, done.stderr
    failure = ("plugin 'raising_hook' from ttrl-broken-plugins failed to load: register_strategies raised "
               "RuntimeError: the hook itself is broken")
    assert f"FAILED         {failure}" in done.stdout
    assert done.stderr.count(f"warning: {failure}") == 1 and "Traceback" not in done.stderr
    names = {line.split()[1] for line in done.stdout.splitlines() if line.startswith("strategy")}
    assert {"majority", "raises", "nan-reward"} <= names


@pytest.mark.slow
def test_majority_still_runs_beside_the_broken_plugin(installed, tmp_path):
    """The real run of a built-in strategy works in the same environment."""
    done = harness("run", "--strategy", "majority", *TINY_RUN, "--output", str(tmp_path / "run"))
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "run" / "metrics.jsonl").read_text().count("\n") == 1


@pytest.mark.slow
def test_a_strategy_that_raises_is_one_line_and_the_command_can_run_again(installed, tmp_path):
    """One line naming the strategy and the problem; the folder it leaves does not block the same command;
    --verbose shows the strategy's own traceback."""
    command = ("run", "--strategy", "raises", *TINY_RUN, "--output", str(tmp_path / "run"))
    for attempt in range(2):
        done = harness(*command)
        assert done.returncode == 1, done.stderr[-2000:]
        lines = [line for line in done.stderr.splitlines() if line.startswith("error:")]
        assert lines == ["error: strategy 'raises' on problem 'arith-0000' raised ZeroDivisionError: division by "
                         "zero inside label"], (attempt, done.stderr[-2000:])
        assert "Traceback" not in done.stderr
    verbose = harness(*command, "--verbose")
    assert "Traceback" in verbose.stderr and "in label" in verbose.stderr


@pytest.mark.slow
def test_a_nan_reward_is_refused_where_the_strategy_returns_it(installed, tmp_path):
    done = harness("run", "--strategy", "nan-reward", *TINY_RUN, "--output", str(tmp_path / "run"))
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        "error: strategy 'nan-reward' on problem 'arith-0000' returned reward nan for sample 0; rewards must be "
        "finite numbers in [-1, 1]")
    assert not (tmp_path / "run" / "metrics.jsonl").exists()
