"""The plugin manager: built-ins from DEFAULT_PLUGINS, then installed `ttrl_harness` entry points.

Built-ins are registered exactly like third-party plugins, and every hook is called through pluggy's hook
caller, one plugin at a time (in pluggy's call order, so `tryfirst`/`trylast` hold), so that a plugin whose
hook raises becomes a load failure that `harness plugins` lists while every other plugin keeps working.
`TTRL_HARNESS_PLUGINS` restricts which third-party plugins load: a comma-separated list of entry-point or
distribution names, in any spelling pip accepts ("" loads none).
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import os
import re
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pluggy

from harness import hookspecs
from harness.interfaces import AnswerParser, Benchmark, Optimizer, Sampler, Strategy
from harness.registry import Origin, Registry

if TYPE_CHECKING:
    from harness.config import RunConfig

ENTRY_POINT_GROUP = "ttrl_harness"
ALLOWLIST_ENV = "TTRL_HARNESS_PLUGINS"
DISTRIBUTION = "ttrl-harness"

DEFAULT_PLUGINS = (
    "harness.strategies.plugin",
    "harness.answer_parsers.plugin",
    "harness.benchmarks.plugin",
    "harness.optimizers.plugin",
    "harness.samplers.plugin",
)

# kind -> (hook, the interface its classes implement)
KINDS = {
    "strategy": ("register_strategies", Strategy),
    "optimizer": ("register_optimizers", Optimizer),
    "answer_parser": ("register_answer_parsers", AnswerParser),
    "benchmark": ("register_benchmarks", Benchmark),
    "sampler": ("register_samplers", Sampler),
}


@dataclass(frozen=True)
class LoadFailure:
    """A plugin that could not be loaded, kept for `harness plugins` and the warning line."""

    name: str
    distribution: str
    error: str

    def __str__(self) -> str:
        return f"plugin '{self.name}' from {self.distribution} failed to load: {self.error}"


def normalize(name: str) -> str:
    """PEP 503 spelling: `TTRL_Controls`, `ttrl.controls` and `ttrl-controls` are one distribution."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return ""


class Plugins:
    """The loaded plugin manager and one Registry per kind."""

    def __init__(self, load_entry_points: bool = True) -> None:
        self.manager = pluggy.PluginManager("ttrl_harness")
        self.manager.add_hookspecs(hookspecs)
        self.origins: dict[str, Origin] = {}  # plugin name -> where it came from
        self.failures: list[LoadFailure] = []
        self.allowlist = os.environ.get(ALLOWLIST_ENV)
        builtin_version = _version(DISTRIBUTION)
        for module_name in DEFAULT_PLUGINS:
            self._add(importlib.import_module(module_name), Origin(module_name, DISTRIBUTION, builtin_version))
        if load_entry_points:
            self._load_entry_points()
        self._collect()

    @property
    def sources(self) -> dict[str, str]:
        """plugin name -> distribution."""
        return {name: origin.distribution for name, origin in self.origins.items()}

    def _load_entry_points(self) -> None:
        allowed = None if self.allowlist is None else {
            normalize(n) for n in self.allowlist.split(",") if n.strip()}
        for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            dist = entry_point.dist.name if entry_point.dist else "(unknown distribution)"
            if allowed is not None and normalize(entry_point.name) not in allowed and normalize(dist) not in allowed:
                continue
            origin = Origin(entry_point.name, dist, entry_point.dist.version if entry_point.dist else "")
            try:
                plugin = entry_point.load()
            except Exception as error:  # a broken plugin must not take the others down
                self._fail(origin, f"{type(error).__name__}: {error}")
                continue
            self._add(plugin, origin)

    def _add(self, plugin: object, origin: Origin) -> None:
        """Register with pluggy; a hook no spec defines (a typo) or a bad signature is a load failure."""
        try:
            self.manager.register(plugin, name=origin.plugin)
        except (ValueError, pluggy.PluginValidationError) as error:
            self._fail(origin, str(error).strip().splitlines()[0])
            return
        unknown = [caller.name for caller in self.manager.get_hookcallers(plugin) or [] if not caller.has_spec()]
        if unknown:
            self.manager.unregister(plugin)
            hooks = [hook for hook, _ in KINDS.values()]
            close = difflib.get_close_matches(unknown[0], hooks, n=1)
            hint = f"; did you mean {close[0]}?" if close else f"; hooks are {', '.join(hooks)}"
            self._fail(origin, f"implements hook '{unknown[0]}', which no hookspec defines{hint}")
            return
        self.origins[origin.plugin] = origin

    def _fail(self, origin: Origin, error: str) -> None:
        failure = LoadFailure(origin.plugin, origin.distribution, error)
        self.failures.append(failure)
        print(f"warning: {failure}", file=sys.stderr)

    def register(self, plugin: object, name: str, source: str = "local") -> None:
        """Add a plugin object at run time (tests, notebooks) and rebuild the registries."""
        self._add(plugin, Origin(name, source))
        self._collect()

    def unregister(self, name: str) -> None:
        self.manager.unregister(name=name)
        self.origins.pop(name, None)
        self._collect()

    def _collect(self) -> None:
        """Call every hook, plugin by plugin. A plugin whose hook raises is dropped and every registry is built
        again without it: what it registered before raising (in this kind or an earlier one) must not stay,
        least of all a name clash, which would block the other plugin's name (a built-in's too)."""
        while not self._collect_once():
            pass  # each pass that fails unregisters one plugin, so this ends

    def _collect_once(self) -> bool:
        """One pass over every hook into fresh registries; False as soon as a plugin is dropped."""
        hint = f" (only the plugins named in {ALLOWLIST_ENV}={self.allowlist!r} were loaded)" \
            if self.allowlist is not None else ""
        self.registries = {kind: Registry(kind.replace("_", " "), interface, hint)
                           for kind, (_, interface) in KINDS.items()}
        for kind, (hook_name, _) in KINDS.items():
            caller = getattr(self.manager.hook, hook_name)
            order = list(dict.fromkeys(impl.plugin_name for impl in reversed(caller.get_hookimpls())))
            for plugin_name in order:
                if plugin_name in self.origins and not self._call_one(kind, hook_name, plugin_name):
                    return False
        return True

    def _call_one(self, kind: str, hook_name: str, plugin_name: str) -> bool:
        """Call one plugin's hook; False when it raised (it is then listed as failed and unregistered)."""
        origin = self.origins[plugin_name]
        others = [p for name, p in self.manager.list_name_plugin() if name != plugin_name]
        registry = self.registries[kind]

        def register(target, name: str | None = None, options=None) -> None:
            registry.add(target, origin, name=name, options=options)

        try:
            self.manager.subset_hook_caller(hook_name, remove_plugins=others)(register=register)
        except Exception as error:  # the plugin's own bug: listed, and the plugin is dropped everywhere
            self._fail(origin, f"{hook_name} raised {type(error).__name__}: {error}")
            self.origins.pop(plugin_name)
            self.manager.unregister(name=plugin_name)
            return False
        return True

    def __getitem__(self, kind: str) -> Registry:
        return self.registries[kind]


_current: Plugins | None = None  # the process-wide set; None: load it on the next get_plugins()


def get_plugins() -> Plugins:
    """The process-wide plugin set (loaded once, on first use)."""
    global _current
    if _current is None:
        _current = Plugins()
    return _current


def use_plugins(plugins: Plugins | None) -> Plugins | None:
    """Make `plugins` the set get_plugins() returns, or with None forget it so that the next call loads
    afresh; returns the set it replaced. Tests use it to give each test the built-ins only, whatever this
    environment has installed (tests/conftest.py)."""
    global _current
    previous, _current = _current, plugins
    return previous


def registry(kind: str) -> Registry:
    """Shortcut: `registry("strategy").get("majority")`."""
    return get_plugins()[kind]


# the RunConfig fields that name a plugin of that kind (each with a `<kind>_options` table)
PLUGIN_KINDS = ("benchmark", "strategy", "answer_parser", "optimizer", "sampler")


def validate_plugins(config: RunConfig, kinds: tuple[str, ...] = PLUGIN_KINDS) -> None:
    """Look up every plugin and validate its options before any heavy work starts (no engine is imported).
    The config is resolved in place: each option table gets its defaults, and each plugin's distribution
    and version are recorded, so config.json says exactly what ran."""
    from harness.samplers import default_sampler_name

    if config.sampler == "auto":
        config.sampler = default_sampler_name()
    plugins = get_plugins()
    versions = {}
    for kind in kinds:
        name = getattr(config, kind)
        options = plugins[kind].options(name, getattr(config, f"{kind}_options"))
        setattr(config, f"{kind}_options", options.model_dump(mode="json"))
        origin = plugins[kind].entry(name).origin
        versions[f"{kind}/{name}"] = f"{origin.distribution} {origin.version}".strip()
    config.plugin_versions = versions
    if "benchmark" in kinds and config.instruction is None:
        from harness.loop import instruction_for

        config.instruction = instruction_for(config)  # config.json records the instruction the run used
