"""Name -> plugin class, per kind, with "Did you mean" errors and duplicate detection."""

from __future__ import annotations

import difflib
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


class Registry:
    """The plugins of one kind (strategy, optimizer, answer parser, benchmark, sampler)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._classes: dict[str, type] = {}
        self._sources: dict[str, str] = {}

    def add(self, cls: type, source: str = "builtin") -> None:
        name = getattr(cls, "name", None)
        if not isinstance(name, str) or not name:
            raise PluginError(f"{self.kind} plugin {cls!r} from {source} has no `name` string attribute")
        if name in self._classes:
            raise PluginError(
                f"{self.kind} '{name}' is registered twice: by {self._sources[name]} and by {source}; "
                "uninstall one or restrict loading with TTRL_HARNESS_PLUGINS"
            )
        self._classes[name] = cls
        self._sources[name] = source

    def remove(self, name: str) -> None:
        self._classes.pop(name, None)
        self._sources.pop(name, None)

    def names(self) -> list[str]:
        return sorted(self._classes)

    def source(self, name: str) -> str:
        return self._sources[name]

    def get(self, name: str) -> type:
        if name in self._classes:
            return self._classes[name]
        close = difflib.get_close_matches(name, self.names(), n=1, cutoff=0.5)
        hint = f" Did you mean: {close[0]}?" if close else ""
        known = ", ".join(self.names()) or "(none)"
        raise UnknownPluginError(f"Unknown {self.kind} '{name}'.{hint} Known: {known}")

    def options(self, name: str, raw: dict[str, Any] | BaseModel | None) -> BaseModel:
        """Validate `raw` against the plugin's own `Options` model."""
        options_model: type[BaseModel] = getattr(self.get(name), "Options", NoOptions)
        if isinstance(raw, options_model):
            return raw
        try:
            return options_model.model_validate(dict(raw or {}))
        except ValidationError as error:
            raise ConfigError(format_validation_error(error, prefix=f"{self.kind} '{name}' option ")) from None

    def create(self, name: str, raw_options: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        """Look up, validate options, and instantiate: `cls(options, **kwargs)`."""
        cls = self.get(name)
        return cls(self.options(name, raw_options), **kwargs)
