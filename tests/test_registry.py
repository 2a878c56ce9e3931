"""The plugin registry: lookups, errors, duplicates, entry points, the allowlist variable."""

from __future__ import annotations

import sys
import textwrap

import pytest
from pydantic import BaseModel, ConfigDict, Field

from harness import hookimpl
from harness.errors import ConfigError, PluginError, UnknownPluginError
from harness.interfaces import Strategy
from harness.plugins import ALLOWLIST_ENV, DEFAULT_PLUGINS, Plugins
from harness.registry import Registry
from harness.types import Verdict


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
    assert all(plugins.sources[m] == "builtin" for m in DEFAULT_PLUGINS)


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


def test_duplicate_names_fail_naming_both():
    """Two plugins registering one name is an error that names both sources."""
    registry = Registry("strategy")
    registry.add(EchoStrategy, "pkg-one")
    with pytest.raises(PluginError, match="'echo' is registered twice: by pkg-one and by pkg-two"):
        registry.add(EchoStrategy, "pkg-two")


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
        info = tmp_path / f"{dist}-0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
        (info / "entry_points.txt").write_text(f"[ttrl_harness]\n{dist.split('_')[0]} = {module}\n")
        (tmp_path / f"{module}.py").write_text(textwrap.dedent(body))
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
