"""`harness plugins [NAME]`: what is installed, from which distribution, and each plugin's options."""

from __future__ import annotations

import argparse
import difflib
import json

from harness.errors import ConfigError


def cmd_plugins(args: argparse.Namespace) -> int:
    from harness.plugins import get_plugins

    plugins = get_plugins()
    if args.name:
        return print_plugin_options(plugins, args.name, args.json)
    rows = [
        {
            "kind": kind,
            "name": name,
            "distribution": entry.origin.distribution,
            "version": entry.origin.version,
            "plugin": entry.origin.plugin,
        }
        for kind, reg in plugins.registries.items()
        for name in reg.names()
        for entry in [reg.entry(name)]
    ]
    clashes = [
        {"kind": kind, "name": name, "registered_by": [str(origin) for origin in origins]}
        for kind, reg in plugins.registries.items()
        for name, origins in reg.clashes.items()
    ]
    if args.json:
        print(
            json.dumps({"plugins": rows, "clashes": clashes, "failures": [vars(f) for f in plugins.failures]}, indent=2)
        )
        return 0
    width = max(len(r["name"]) for r in rows)
    for row in rows:
        print(f"{row['kind']:<14} {row['name']:<{width}}  {row['distribution']} {row['version']}".rstrip())
    for clash in clashes:
        print(
            f"CLASH          {clash['kind']} '{clash['name']}' is registered by "
            f"{' and by '.join(clash['registered_by'])}: runs that use it are refused"
        )
    for failure in plugins.failures:
        print(f"FAILED         {failure}")
    return 0


def print_plugin_options(plugins, name: str, as_json: bool) -> int:
    """`harness plugins NAME`: each option's name, type, default and description, from its pydantic model."""
    matches = [(kind, reg) for kind, reg in plugins.registries.items() if name in reg.names() or name in reg.clashes]
    if not matches:
        known = sorted({n for reg in plugins.registries.values() for n in reg.names()})
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
        hint = f" Did you mean: {close[0]}?" if close else ""
        raise ConfigError(f"Unknown plugin '{name}'.{hint} `harness plugins` lists them all")
    described = []
    for kind, reg in matches:
        entry = reg.entry(name)
        options = [
            {
                "option": field,
                "type": _type_name(info.annotation),
                "default": None if info.is_required() else info.get_default(call_default_factory=True),
                "required": info.is_required(),
                "description": info.description or "",
            }
            for field, info in entry.options.model_fields.items()
        ]
        described.append(
            {
                "kind": kind,
                "name": name,
                "distribution": entry.origin.distribution,
                "version": entry.origin.version,
                "options": options,
            }
        )
    if as_json:
        print(json.dumps(described, indent=2, default=repr))
        return 0
    for item in described:
        print(f"{item['kind']} '{name}' from {item['distribution']} {item['version']}".rstrip())
        if not item["options"]:
            print("  (no options)")
        for option in item["options"]:
            default = "required" if option["required"] else f"default {option['default']!r}"
            print(f"  {option['option']}: {option['type']}, {default}\n      {option['description']}")
    return 0


def _type_name(annotation) -> str:
    text = getattr(annotation, "__name__", None) if isinstance(annotation, type) else None
    return text or str(annotation).replace("typing.", "")
