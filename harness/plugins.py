"""The plugin manager: built-ins from DEFAULT_PLUGINS, then installed `ttrl_harness` entry points.

Built-ins are registered exactly like third-party plugins. `TTRL_HARNESS_PLUGINS` restricts which
third-party plugins load: a comma-separated list of entry-point or distribution names ("" loads none).
A plugin that fails to import is reported (name, distribution, error) and the others still load.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import sys
from dataclasses import dataclass
from functools import cache

import pluggy

from harness import hookspecs
from harness.registry import Registry

ENTRY_POINT_GROUP = "ttrl_harness"
ALLOWLIST_ENV = "TTRL_HARNESS_PLUGINS"

DEFAULT_PLUGINS = (
    "strategies.majority",
    "strategies.weighted",
    "strategies.oracle",
    "answer_parsers.plugin",
    "benchmarks.plugin",
    "harness.optimizers.plugin",
    "harness.samplers.plugin",
)

KINDS = {
    "strategy": "register_strategies",
    "optimizer": "register_optimizers",
    "answer_parser": "register_answer_parsers",
    "benchmark": "register_benchmarks",
    "sampler": "register_samplers",
}


@dataclass(frozen=True)
class LoadFailure:
    """A plugin that could not be loaded, kept for `harness plugins` and the warning line."""

    name: str
    distribution: str
    error: str

    def __str__(self) -> str:
        return f"plugin '{self.name}' from {self.distribution} failed to load: {self.error}"


class Plugins:
    """The loaded plugin manager and one Registry per kind."""

    def __init__(self, load_entry_points: bool = True) -> None:
        self.manager = pluggy.PluginManager("ttrl_harness")
        self.manager.add_hookspecs(hookspecs)
        self.sources: dict[str, str] = {}  # plugin name -> "builtin" or distribution name
        self.failures: list[LoadFailure] = []
        for module_name in DEFAULT_PLUGINS:
            self.manager.register(importlib.import_module(module_name), name=module_name)
            self.sources[module_name] = "builtin"
        if load_entry_points:
            self._load_entry_points()
        self.registries = {kind: self._collect(kind, hook) for kind, hook in KINDS.items()}

    def _load_entry_points(self) -> None:
        allow = os.environ.get(ALLOWLIST_ENV)
        allowed = None if allow is None else {n.strip() for n in allow.split(",") if n.strip()}
        for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            dist = entry_point.dist.name if entry_point.dist else "(unknown distribution)"
            if allowed is not None and entry_point.name not in allowed and dist not in allowed:
                continue
            try:
                plugin = entry_point.load()
                self.manager.register(plugin, name=entry_point.name)
            except Exception as error:  # a broken plugin must not take the others down
                failure = LoadFailure(entry_point.name, dist, f"{type(error).__name__}: {error}")
                self.failures.append(failure)
                print(f"warning: {failure}", file=sys.stderr)
                continue
            self.sources[entry_point.name] = dist

    def register(self, plugin: object, name: str, source: str = "local") -> None:
        """Add a plugin object at run time (tests, notebooks) and rebuild the registries."""
        self.manager.register(plugin, name=name)
        self.sources[name] = source
        self.registries = {kind: self._collect(kind, hook) for kind, hook in KINDS.items()}

    def unregister(self, name: str) -> None:
        self.manager.unregister(name=name)
        self.sources.pop(name, None)
        self.registries = {kind: self._collect(kind, hook) for kind, hook in KINDS.items()}

    def _collect(self, kind: str, hook_name: str) -> Registry:
        registry = Registry(kind.replace("_", " "))
        for impl in getattr(self.manager.hook, hook_name).get_hookimpls():
            source = self.sources.get(impl.plugin_name, impl.plugin_name)
            impl.function(register=lambda cls, _src=source: registry.add(cls, _src))
        return registry

    def __getitem__(self, kind: str) -> Registry:
        return self.registries[kind]


@cache
def get_plugins() -> Plugins:
    """The process-wide plugin set (loaded once)."""
    return Plugins()


def registry(kind: str) -> Registry:
    """Shortcut: `registry("strategy").get("majority")`."""
    return get_plugins()[kind]
