"""The plugin registry: lookups, errors, duplicates, entry points, the allowlist variable, and the clean
plugin set each test gets (tests/conftest.py)."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict, Field

from harness import hookimpl
from harness.errors import ConfigError, PluginError, UnknownPluginError
from harness.interfaces import Benchmark, Strategy
from harness.plugins import ALLOWLIST_ENV, DEFAULT_PLUGINS, Plugins, get_plugins, use_plugins
from harness.registry import Origin, Registry
from harness.types import Verdict

pytest_plugins = ["pytester"]  # to run a small test session of its own


class EchoOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    threshold: float = Field(0.5, ge=0, le=1, description="A bounded number.")


class EchoStrategy(Strategy):
    name = "echo"
    Options = EchoOptions

    def label(self, group):
        return Verdict(None, [0.0] * len(group.completions))


class EchoPlugin:
    @hookimpl
    def register_strategies(self, register):
        register(EchoStrategy)


def test_unknown_name_suggests_the_closest():
    """A typo names the closest registered plugin and lists the known ones."""
    plugins = Plugins(load_entry_points=False)
    with pytest.raises(UnknownPluginError) as error:
        plugins["strategy"].get("majorty")
    message = str(error.value)
    assert message.startswith("Unknown strategy 'majorty'. Did you mean: majority?")
    assert "oracle" in message and "\n" not in message


def test_builtins_are_registered_like_plugins():
    """Every DEFAULT_PLUGINS module registers through the hooks and is reported as builtin."""
    plugins = Plugins(load_entry_points=False)
    assert set(plugins["strategy"].names()) >= {"majority", "weighted", "oracle"}
    assert "grpo" in plugins["optimizer"].names()
    assert {"vllm", "hf"} <= set(plugins["sampler"].names())
    assert {"aime24", "amc", "math500", "arith"} <= set(plugins["benchmark"].names())
    assert "boxed" in plugins["answer_parser"].names()
    assert all(plugins.sources[m] == "ttrl-harness" for m in DEFAULT_PLUGINS)
    assert plugins["strategy"].entry("majority").origin.plugin == "harness.strategies.plugin"


def test_inline_plugin_and_option_validation():
    """A plugin registered at run time is found; its options are validated by its own model."""
    plugins = Plugins(load_entry_points=False)
    plugins.register(EchoPlugin(), name="echo-plugin")
    strategy = plugins["strategy"].create("echo", {"threshold": 0.2})
    assert strategy.options.threshold == 0.2
    assert plugins["strategy"].source("echo") == "local"
    with pytest.raises(ConfigError) as error:
        plugins["strategy"].options("echo", {"threshold": 3, "colour": "red"})
    lines = str(error.value).splitlines()
    assert len(lines) == 2
    assert any("threshold" in line and "less than or equal to 1" in line for line in lines)
    assert any("colour" in line and "Extra inputs are not permitted" in line for line in lines)
    plugins.unregister("echo-plugin")
    assert "echo" not in plugins["strategy"].names()


def test_a_name_clash_blocks_only_that_name():
    """Two plugins registering one name: the clash is recorded, using the name is an error naming both, and
    every other name keeps working."""
    registry = Registry("strategy", Strategy)
    registry.add(EchoStrategy, Origin("one", "pkg-one"))
    registry.add(EchoStrategy, Origin("two", "pkg-two"))
    registry.add(QuietStrategy, Origin("two", "pkg-two"))
    assert registry.names() == ["quiet"] and list(registry.clashes) == ["echo"]
    with pytest.raises(PluginError, match="'echo' is registered twice: by pkg-one .* and by pkg-two"):
        registry.get("echo")
    assert registry.get("quiet") is QuietStrategy


class QuietStrategy(EchoStrategy):
    name = "quiet"


def test_kind_checks_name_the_plugin_the_class_and_the_kind():
    """A class that is no Strategy, or a strategy given to the benchmark hook, is a one-line PluginError."""
    with pytest.raises(PluginError, match=r"from pkg .*class .*EchoOptions is not a strategy"):
        Registry("strategy", Strategy).add(EchoOptions, Origin("p", "pkg"))
    with pytest.raises(PluginError, match=r"class .*EchoStrategy is not a benchmark \(subclass harness.Benchmark"):
        Registry("benchmark", Benchmark).add(EchoStrategy, Origin("p", "pkg"))


def test_lazy_registration_imports_on_first_use_and_checks_the_kind():
    """"module:Class" entries validate options without importing; the import and kind check come at get()."""
    registry = Registry("strategy", Strategy)
    registry.add("tests.test_registry:EchoStrategy", name="echo", options=EchoOptions)
    registry.add("tests.test_registry:EchoOptions", name="wrong")
    registry.add("no_such_module_xyz:Thing", name="missing")
    assert registry.options("echo", {"threshold": 0.2}).threshold == 0.2
    assert registry.get("echo") is EchoStrategy
    with pytest.raises(PluginError, match="is not a strategy"):
        registry.get("wrong")
    with pytest.raises(PluginError, match="cannot import no_such_module_xyz:Thing"):
        registry.get("missing")


class RaisingPlugin:
    @hookimpl
    def register_strategies(self, register):
        raise RuntimeError("bug in the plugin")


class MisspeltPlugin:
    @hookimpl
    def register_strategy(self, register):  # no such hookspec: register_strategies
        register(EchoStrategy)


class NoArgumentPlugin:
    @hookimpl
    def register_benchmarks(self):  # pluggy passes only the arguments an implementation names
        NoArgumentPlugin.called = True


class OrderedPlugins:
    """Two plugins whose order pluggy decides: tryfirst runs before the default."""

    calls: list[str] = []

    class First:
        @hookimpl(tryfirst=True)
        def register_strategies(self, register):
            OrderedPlugins.calls.append("first")

    class Later:
        @hookimpl
        def register_strategies(self, register):
            OrderedPlugins.calls.append("later")


def test_hooks_go_through_pluggy_and_a_raising_plugin_is_a_load_failure(capsys):
    """A plugin whose hook raises is listed as failed (one warning line) and drops out; the others work. A
    misspelt hook is a one-line failure naming plugin and hook; a no-argument hookimpl is called; tryfirst
    orders the calls."""
    plugins = Plugins(load_entry_points=False)
    plugins.register(EchoPlugin(), "echo-plugin")
    plugins.register(RaisingPlugin(), "raising")
    plugins.register(MisspeltPlugin(), "misspelt")
    plugins.register(NoArgumentPlugin(), "no-argument")
    OrderedPlugins.calls.clear()
    plugins.register(OrderedPlugins.Later(), "later")
    plugins.register(OrderedPlugins.First(), "first")
    failures = {f.name: f.error for f in plugins.failures}
    assert failures["raising"] == "register_strategies raised RuntimeError: bug in the plugin"
    assert failures["misspelt"].startswith("implements hook 'register_strategy', which no hookspec defines; "
                                           "did you mean register_strategies?")
    assert "echo" in plugins["strategy"].names() and "majority" in plugins["strategy"].names()
    assert NoArgumentPlugin.called
    assert OrderedPlugins.calls[-2:] == ["first", "later"]
    err = capsys.readouterr().err
    assert "warning: plugin 'raising' from local failed to load: register_strategies raised RuntimeError" in err
    assert "Traceback" not in err


def write_distribution(folder: Path, dist: str, module: str, body: str) -> None:
    """What pip leaves for a one-module plugin distribution: its dist-info with the entry point, the module."""
    info = folder / f"{dist}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[ttrl_harness]\n{dist.split('_')[0]} = {module}\n")
    (folder / f"{module}.py").write_text(textwrap.dedent(body))


@pytest.fixture
def fake_distributions(tmp_path, monkeypatch):
    """Two installed distributions on sys.path: one plugin that works, one that raises at import."""
    for dist, module, body in (
        ("good_plugin", "good_plugin_mod", """
            from harness import hookimpl
            from tests.test_registry import EchoStrategy
            @hookimpl
            def register_strategies(register):
                register(EchoStrategy)
        """),
        ("broken_plugin", "broken_plugin_mod", "raise RuntimeError('boom at import')"),
    ):
        write_distribution(tmp_path, dist, module, body)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    for module in ("good_plugin_mod", "broken_plugin_mod"):
        sys.modules.pop(module, None)


def test_entry_points_load_and_a_broken_one_is_reported(fake_distributions, monkeypatch, capsys):
    """Entry-point plugins load; one that raises is named with its distribution and the rest still load."""
    monkeypatch.delenv(ALLOWLIST_ENV, raising=False)
    plugins = Plugins()
    assert plugins["strategy"].source("echo") == "good_plugin"
    assert [(f.name, f.distribution) for f in plugins.failures] == [("broken", "broken_plugin")]
    assert "boom at import" in plugins.failures[0].error
    assert "plugin 'broken' from broken_plugin failed to load" in capsys.readouterr().err
    assert "majority" in plugins["strategy"].names()


def test_allowlist_restricts_third_party_plugins(fake_distributions, monkeypatch):
    """TTRL_HARNESS_PLUGINS limits which entry points load; built-ins always load."""
    monkeypatch.setenv(ALLOWLIST_ENV, "")
    plugins = Plugins()
    assert "echo" not in plugins["strategy"].names() and not plugins.failures
    assert "majority" in plugins["strategy"].names()
    monkeypatch.setenv(ALLOWLIST_ENV, "good_plugin")
    plugins = Plugins()
    assert "echo" in plugins["strategy"].names() and not plugins.failures
    monkeypatch.setenv(ALLOWLIST_ENV, "Good-Plugin")  # any spelling pip accepts for the distribution
    assert "echo" in Plugins()["strategy"].names()
    monkeypatch.setenv(ALLOWLIST_ENV, "other")
    with pytest.raises(UnknownPluginError, match=r"TTRL_HARNESS_PLUGINS='other'"):
        Plugins()["strategy"].get("echo")


def test_each_test_gets_the_builtin_plugin_set_only_whatever_is_installed(fake_distributions, monkeypatch,
                                                                         request):
    """Without asking for it, a test's get_plugins() is the fixture's set even with a plugin distribution on
    sys.path (one that loads, one that fails): the built-ins only, no entry point loaded, nothing failed."""
    monkeypatch.delenv(ALLOWLIST_ENV, raising=False)
    assert "builtin_plugins" in request.fixturenames  # autouse: every test has it
    plugins = get_plugins()
    assert plugins is request.getfixturevalue("builtin_plugins")
    assert "echo" not in plugins["strategy"].names() and not plugins.failures
    assert set(plugins.sources) == set(DEFAULT_PLUGINS)
    assert Plugins()["strategy"].source("echo") == "good_plugin"  # the distribution is there to be loaded


# An installed plugin distribution (on sys.path before any fixture runs) that registers "quiet".
INNER_CONFTEST = """
    import sys
    sys.path.insert(0, {site!r})
    from tests.conftest import builtin_plugins  # noqa: F401
"""
INNER_TESTS = """
    from harness.plugins import Plugins, get_plugins
    from tests.test_registry import EchoPlugin

    def test_an_installed_plugin_is_not_in_the_set():
        assert Plugins()["strategy"].source("quiet") == "quiet_plugin"  # installed: a plain Plugins() loads it
        assert "quiet" not in get_plugins()["strategy"].names() and not get_plugins().failures

    def test_registers_its_own_plugin(builtin_plugins):
        builtin_plugins.register(EchoPlugin(), "echo-plugin")
        assert get_plugins()["strategy"].get("echo").name == "echo"

    def test_the_next_test_does_not_see_it():
        assert "echo" not in get_plugins()["strategy"].names()
        assert "majority" in get_plugins()["strategy"].names()
"""


def test_a_plugin_one_test_registers_is_gone_in_the_next_and_the_set_is_reset_after(pytester, monkeypatch):
    """A session of its own with this conftest's fixture and a plugin distribution installed before it
    starts: no test's set holds the installed plugin; one test adds its own plugin object and code that
    calls get_plugins() sees it, the next does not. After the last test the set is forgotten, so code run
    later loads afresh."""
    monkeypatch.delenv(ALLOWLIST_ENV, raising=False)
    site = pytester.path / "site"
    write_distribution(site, "quiet_plugin", "quiet_plugin_mod", """
        from harness import hookimpl
        from tests.test_registry import QuietStrategy
        @hookimpl
        def register_strategies(register):
            register(QuietStrategy)
    """)
    pytester.makeconftest(textwrap.dedent(INNER_CONFTEST.format(site=str(site))))
    pytester.makepyfile(test_inner=textwrap.dedent(INNER_TESTS))
    pytester.runpytest_inprocess("-p", "no:cacheprovider").assert_outcomes(passed=3)
    assert use_plugins(None) is None
