"""Name -> plugin class, per kind: typed (a class must implement its kind's interface), lazy (a class may be
registered as "module:Class" and is imported only when a run creates it), with "Did you mean" errors and
name clashes that block only the name that clashes."""

from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from harness.errors import ConfigError, PluginError, UnknownPluginError


class NoOptions(BaseModel):
    """Options model of a plugin that takes none."""

    model_config = ConfigDict(extra="forbid")


def format_validation_error(error: ValidationError, prefix: str = "") -> str:
    """One line per bad field: `field: what is wrong (got value)`."""
    lines = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or "(root)"
        got = item.get("input")
        shown = "" if isinstance(got, dict) else f" (got {got!r})"
        lines.append(f"{prefix}{where}: {item['msg']}{shown}")
    return "\n".join(lines)


@dataclass(frozen=True)
class Origin:
    """Where a registered class came from: the plugin (module or entry-point name) and its distribution."""

    plugin: str
    distribution: str
    version: str = ""

    def __str__(self) -> str:
        version = f" {self.version}" if self.version else ""
        return f"{self.distribution}{version} (plugin '{self.plugin}')"


LOCAL = Origin("local", "local")  # a class added by hand (tests, notebooks)


@dataclass
class Entry:
    """One registered plugin class, or a "module:Class" reference to it that is imported on first use."""

    name: str
    target: type | str
    options: type[BaseModel]
    origin: Origin


class Registry:
    """The plugins of one kind (strategy, optimizer, answer parser, benchmark, sampler)."""

    def __init__(self, kind: str, interface: type, unknown_hint: str = "") -> None:
        self.kind = kind
        self.interface = interface
        self.unknown_hint = unknown_hint  # e.g. why a name may be missing (TTRL_HARNESS_PLUGINS is set)
        self._entries: dict[str, Entry] = {}
        self.clashes: dict[str, list[Origin]] = {}  # name -> every origin that registered it

    def add(self, target: type | str, origin: Origin = LOCAL, name: str | None = None,
            options: type[BaseModel] | None = None) -> None:
        """`register(cls)`, or `register("pkg.module:Class", name=..., options=...)` for a class whose module
        is slow to import (torch, vllm): its name and options are known without importing it."""
        where = f"{self.kind} plugin from {origin}"
        if isinstance(target, str):
            if ":" not in target or not name:
                raise PluginError(f"{where}: a lazy registration needs 'module:Class' and name=..., got {target!r}")
            options = options or NoOptions
        elif isinstance(target, type):
            self._check_class(target, where)
            name, options = target.name, getattr(target, "Options", NoOptions)
        else:
            raise PluginError(f"{where}: register() takes a class or 'module:Class', got {type(target).__name__}")
        if not (isinstance(options, type) and issubclass(options, BaseModel)):
            raise PluginError(f"{where}: {name!r} Options must be a pydantic BaseModel subclass")
        if name in self.clashes:
            self.clashes[name].append(origin)
        elif name in self._entries:
            self.clashes[name] = [self._entries.pop(name).origin, origin]
        else:
            self._entries[name] = Entry(name, target, options, origin)

    def _check_class(self, cls: type, where: str) -> None:
        if not issubclass(cls, self.interface):
            raise PluginError(f"{where}: class {cls.__module__}.{cls.__qualname__} is not a {self.kind} "
                              f"(subclass harness.{self.interface.__name__})")
        name = getattr(cls, "name", None)
        if not isinstance(name, str) or not name:
            raise PluginError(f"{where}: class {cls.__qualname__} has no `name` string attribute")

    def names(self) -> list[str]:
        """Names a run can use (a clashing name is not among them)."""
        return sorted(self._entries)

    def entry(self, name: str) -> Entry:
        if name in self._entries:
            return self._entries[name]
        if name in self.clashes:
            both = " and by ".join(str(origin) for origin in self.clashes[name])
            raise PluginError(f"{self.kind} '{name}' is registered twice: by {both}; uninstall one, or pick "
                              "one with TTRL_HARNESS_PLUGINS")
        close = difflib.get_close_matches(name, self.names(), n=1, cutoff=0.5)
        hint = f" Did you mean: {close[0]}?" if close else ""
        known = ", ".join(self.names()) or "(none)"
        raise UnknownPluginError(f"Unknown {self.kind} '{name}'.{hint} Known: {known}{self.unknown_hint}")

    def source(self, name: str) -> str:
        return self.entry(name).origin.distribution

    def get(self, name: str) -> type:
        """The class (a lazy entry is imported and kind-checked here, once)."""
        entry = self.entry(name)
        if isinstance(entry.target, str):
            module_name, _, attr = entry.target.partition(":")
            where = f"{self.kind} plugin from {entry.origin}"
            try:
                cls = getattr(importlib.import_module(module_name), attr)
            except (ImportError, AttributeError) as error:
                raise PluginError(f"{where}: cannot import {entry.target} ({type(error).__name__}: {error})") from None
            self._check_class(cls, where)
            if cls.name != name:
                raise PluginError(f"{where}: {entry.target} is named {cls.name!r}, registered as {name!r}")
            entry.target = cls
        return entry.target

    def options(self, name: str, raw: dict[str, Any] | BaseModel | None) -> BaseModel:
        """Validate `raw` against the plugin's own `Options` model (no import of a lazy plugin)."""
        options_model = self.entry(name).options
        if isinstance(raw, options_model):
            return raw
        try:
            return options_model.model_validate(dict(raw or {}))
        except ValidationError as error:
            raise ConfigError(format_validation_error(error, prefix=f"{self.kind} '{name}' option ")) from None

    def create(self, name: str, raw_options: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        """Look up, validate options, and instantiate: `cls(options, **kwargs)`."""
        options = self.options(name, raw_options)
        return self.get(name)(options, **kwargs)
