"""Plugins that break, installed for real (into a throwaway venv, never the live one): a raising hook is a
listed load failure and nothing else stops, and leaves nothing it registered behind; a third-party name that
collides with a built-in blocks only that name, with one line naming both distributions; a strategy that
raises or returns a bad reward stops the run with one line, and the same command can rerun."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import textwrap
from pathlib import Path

import pytest

from harness import Benchmark, Strategy, Verdict, hookimpl
from harness.errors import PluginError
from harness.plugins import Plugins, get_plugins
from harness.strategies.majority import MajorityStrategy
from tests.conftest import REPO, throwaway_venv

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


# A third-party distribution whose strategy takes a built-in's name, beside one name of its own.
SHADOWING = {
    "pyproject.toml": """
        [build-system]
        requires = ["setuptools>=68"]
        build-backend = "setuptools.build_meta"
        [project]
        name = "ttrl-shadow-plugins"
        version = "0.2.0"
        [project.entry-points.ttrl_harness]
        shadow = "shadow_plugins"
        [tool.setuptools]
        packages = ["shadow_plugins"]
    """,
    "shadow_plugins/__init__.py": """
        from harness import Strategy, Verdict, hookimpl

        class Majority(Strategy):
            name = "majority"
            def label(self, group):
                return Verdict(None, [0.0] * len(group.completions))

        class OwnName(Strategy):
            name = "shadow-own"
            def label(self, group):
                return Verdict(None, [0.0] * len(group.completions))

        @hookimpl
        def register_strategies(register):
            register(Majority)
            register(OwnName)
    """,
}


def install(package: dict[str, str], folder: Path) -> Path:
    """Write the package's files and pip-install it into a throwaway venv; returns that venv's python."""
    for path, body in package.items():
        (folder / "src" / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / "src" / path).write_text(textwrap.dedent(body))
    python = throwaway_venv(folder / "venv")
    subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", str(folder / "src")],
                   check=True, capture_output=True, text=True, timeout=300)
    return python


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The python of a venv that has ttrl-broken-plugins installed (and everything the live venv has)."""
    return install(PACKAGE, tmp_path_factory.mktemp("broken-plugins"))


@pytest.fixture(scope="module")
def shadowing(tmp_path_factory) -> Path:
    """The python of a venv that has ttrl-shadow-plugins installed."""
    return install(SHADOWING, tmp_path_factory.mktemp("shadow-plugins"))


def harness(python: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k != "TTRL_HARNESS_PLUGINS"}
    return subprocess.run([python, "-m", "harness.cli", *args], capture_output=True, text=True, cwd=REPO,
                          env={**environment, "HF_HUB_OFFLINE": "1", **env}, timeout=900)


def test_a_raising_hook_is_listed_as_failed_and_the_rest_load(installed):
    """`harness plugins` lists the failure (one warning line, no traceback) and the other plugin's strategies."""
    done = harness(installed, "plugins")
    assert done.returncode == 0, done.stderr
    failure = ("plugin 'raising_hook' from ttrl-broken-plugins failed to load: register_strategies raised "
               "RuntimeError: the hook itself is broken")
    assert f"FAILED         {failure}" in done.stdout
    assert done.stderr.count(f"warning: {failure}") == 1 and "Traceback" not in done.stderr
    names = {line.split()[1] for line in done.stdout.splitlines() if line.startswith("strategy")}
    assert {"majority", "raises", "nan-reward"} <= names


class ShadowMajority(Strategy):
    name = "majority"  # a built-in's name

    def label(self, group):
        return Verdict(None, [0.0] * len(group.completions))


class HalfRegistered(ShadowMajority):
    name = "half-registered"


class LaterHookRaises:
    """Registers two strategies, one under a built-in's name; then its benchmark hook raises."""

    @hookimpl
    def register_strategies(self, register):
        register(ShadowMajority)
        register(HalfRegistered)

    @hookimpl
    def register_benchmarks(self, register):
        raise RuntimeError("the benchmark hook is broken")


class RaisesAfterRegistering:
    """Runs after the built-ins (trylast), registers under a built-in's name and another, then raises."""

    @hookimpl(trylast=True)
    def register_strategies(self, register):
        register(ShadowMajority)
        register(HalfRegistered)
        raise RuntimeError("the strategy hook is broken")


class Harmless:
    @hookimpl
    def register_benchmarks(self, register):
        pass


@pytest.mark.parametrize(("plugin", "error"), [
    (LaterHookRaises(), "register_benchmarks raised RuntimeError: the benchmark hook is broken"),
    (RaisesAfterRegistering(), "register_strategies raised RuntimeError: the strategy hook is broken"),
], ids=["a-later-hook-raises", "the-same-hook-raises-after-registering"])
def test_a_hook_that_raises_leaves_nothing_it_registered_behind(builtin_plugins: Plugins, plugin: object,
                                                                 error: str, capsys):
    """What the plugin registered before raising goes with it, the clash its 'majority' made included: the
    built-in majority is usable again, through get_plugins() too, and no clash is listed. The failure is
    listed and warned about once, also after a later plugin makes the registries be built again."""
    builtin_plugins.register(plugin, "half-way")
    strategies = get_plugins()["strategy"]
    assert strategies.get("majority") is MajorityStrategy
    assert "half-registered" not in strategies.names()
    assert not any(registry.clashes for registry in builtin_plugins.registries.values())
    builtin_plugins.register(Harmless(), "harmless")  # every hook is called again: the failed plugin's not
    assert [(f.name, f.error) for f in builtin_plugins.failures] == [("half-way", error)]
    assert capsys.readouterr().err.count("failed to load") == 1
    assert {"arith", "math500"} <= set(builtin_plugins["benchmark"].names())


class BenchmarkHookRaisesOnBadClass:
    """A hook that hands register() a strategy for the benchmark kind: register raises inside the hook."""

    @hookimpl
    def register_benchmarks(self, register):
        register(ShadowMajority)


def test_a_hook_whose_register_call_is_refused_is_a_load_failure_too(builtin_plugins: Plugins):
    """register() refusing a class (wrong kind) raises inside the hook: the plugin is listed as failed with
    the kind error, and every built-in benchmark still loads."""
    builtin_plugins.register(BenchmarkHookRaisesOnBadClass(), "wrong-kind")
    (failure,) = builtin_plugins.failures
    assert failure.name == "wrong-kind" and failure.error.startswith("register_benchmarks raised PluginError: ")
    assert f"{ShadowMajority.__qualname__} is not a benchmark (subclass harness.{Benchmark.__name__})" in failure.error
    assert "arith" in builtin_plugins["benchmark"].names() and "majority" in builtin_plugins["strategy"].names()


def clash_line(version: str) -> str:
    # pluggy calls the later-registered plugin first, so the third-party one is named first
    return (f"strategy 'majority' is registered twice: by ttrl-shadow-plugins 0.2.0 (plugin 'shadow') and by "
            f"ttrl-harness {version} (plugin 'harness.strategies.plugin'); uninstall one, or pick one with "
            "TTRL_HARNESS_PLUGINS")


def test_a_third_party_name_colliding_with_a_builtin_blocks_only_that_name(shadowing, tmp_path):
    """The documented precedence (docs/plugins.md, "When a plugin is broken"): neither side wins silently.
    `harness plugins` lists the clash with both distributions; `--strategy majority` is refused with one
    line naming both, before any work (no run folder); every other name, the plugin's own included, loads."""
    version = importlib.metadata.version("ttrl-harness")
    listing = harness(shadowing, "plugins")
    assert listing.returncode == 0, listing.stderr
    assert (f"CLASH          strategy 'majority' is registered by ttrl-shadow-plugins 0.2.0 (plugin 'shadow') and "
            f"by ttrl-harness {version} (plugin 'harness.strategies.plugin'): runs that use it are refused"
            ) in listing.stdout
    names = {line.split()[1] for line in listing.stdout.splitlines() if line.startswith("strategy")}
    assert {"shadow-own", "weighted", "oracle"} <= names and "majority" not in names
    run = harness(shadowing, "run", "--strategy", "majority", *TINY_RUN, "--output", str(tmp_path / "run"))
    assert run.returncode == PluginError.exit_code
    assert [line for line in run.stderr.splitlines() if line.strip()] == [f"error: {clash_line(version)}"]
    assert not (tmp_path / "run").exists()


def test_leaving_the_colliding_plugin_out_gives_the_builtin_back(shadowing):
    """The way out the error names: TTRL_HARNESS_PLUGINS without the shadowing distribution."""
    blocked = harness(shadowing, "plugins", "majority")
    assert blocked.returncode == PluginError.exit_code and "registered twice" in blocked.stderr
    done = harness(shadowing, "plugins", "majority", TTRL_HARNESS_PLUGINS="")
    assert done.returncode == 0, done.stderr
    assert "strategy 'majority' from ttrl-harness" in done.stdout


@pytest.mark.slow
def test_majority_still_runs_beside_the_broken_plugin(installed, tmp_path):
    """The real run of a built-in strategy works in the same environment."""
    done = harness(installed, "run", "--strategy", "majority", *TINY_RUN, "--output", str(tmp_path / "run"))
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "run" / "metrics.jsonl").read_text().count("\n") == 1


@pytest.mark.slow
def test_a_strategy_that_raises_is_one_line_and_the_command_can_run_again(installed, tmp_path):
    """One line naming the strategy and the problem; the folder it leaves does not block the same command;
    --verbose shows the strategy's own traceback."""
    command = ("run", "--strategy", "raises", *TINY_RUN, "--output", str(tmp_path / "run"))
    for attempt in range(2):
        done = harness(installed, *command)
        assert done.returncode == 1, done.stderr[-2000:]
        lines = [line for line in done.stderr.splitlines() if line.startswith("error:")]
        assert lines == ["error: strategy 'raises' on problem 'arith-0000' raised ZeroDivisionError: division by "
                         "zero inside label"], (attempt, done.stderr[-2000:])
        assert "Traceback" not in done.stderr
    verbose = harness(installed, *command, "--verbose")
    assert "Traceback" in verbose.stderr and "in label" in verbose.stderr


@pytest.mark.slow
def test_a_nan_reward_is_refused_where_the_strategy_returns_it(installed, tmp_path):
    done = harness(installed, "run", "--strategy", "nan-reward", *TINY_RUN, "--output", str(tmp_path / "run"))
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        "error: strategy 'nan-reward' on problem 'arith-0000' returned reward nan for sample 0; rewards must be "
        "finite numbers in [-1, 1]")
    assert not (tmp_path / "run" / "metrics.jsonl").exists()
