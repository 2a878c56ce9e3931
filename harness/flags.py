"""The flags of `harness run` and `harness eval`, and how they become a RunConfig (flags win over --config).

Each subcommand shows only its own flags: `eval` takes the model, data, sampler, parser and evaluation
flags; `run` adds the training ones. Plugin flags list the plugins actually installed.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.config import RunConfig, build_config, parse_option_pairs, read_toml
from harness.watch import WatchConfig

# flag -> type, for flags that map one to one onto a RunConfig field
SHARED_FLAGS = {"model": str, "seed": int, "benchmark": str, "limit": int, "sampler": str, "answer_parser": str,
                "max_tokens": int}
TRAIN_FLAGS = {"name": str, "output": str, "strategy": str, "optimizer": str, "steps": int,
               "problems_per_step": int, "n_votes": int, "n_train": int, "temperature": float, "top_p": float,
               "processes": int}
RUN_FLAGS = {**SHARED_FLAGS, **TRAIN_FLAGS}
SHARED_OPTIONS = {"benchmark_opt": "benchmark_options", "sampler_opt": "sampler_options",
                  "parser_opt": "answer_parser_options"}
TRAIN_OPTIONS = {"strategy_opt": "strategy_options", "optimizer_opt": "optimizer_options", "watch": "watch"}
EVAL_FLAGS = {"eval_k": ("k", int), "eval_every": ("every", int), "eval_temperature": ("temperature", float),
              "eval_max_tokens": ("max_tokens", int)}
PLUGIN_FLAGS = {"benchmark", "strategy", "optimizer", "sampler", "answer_parser"}  # flag name == plugin kind


def _installed(kind: str) -> str:
    """' Installed: a, b, c.' from the plugin set (loading it imports no engine)."""
    from harness.plugins import get_plugins

    names = get_plugins()[kind].names()
    return f" Installed: {', '.join(names)}." if names else ""


def _add_flags(parser: argparse.ArgumentParser, flags: dict, options: dict) -> None:
    for flag, kind in flags.items():
        help_text = RunConfig.model_fields[flag].description
        if flag in PLUGIN_FLAGS:
            help_text = help_text.split(" (")[0].rstrip(".") + "." + _installed(flag)
        parser.add_argument("--" + flag.replace("_", "-"), type=kind, default=None, help=help_text)
    for flag, field in options.items():
        help_text = (f"one of the {field.replace('_', ' ')} (repeatable; `harness plugins NAME` lists a "
                     "plugin's options)")
        if field == "watch":
            help_text = ("a collapse-watch setting, e.g. --watch keep_best=true --watch patience=3 (repeatable; "
                         f"keys: {', '.join(WatchConfig.model_fields)})")
        parser.add_argument("--" + flag.replace("_", "-"), action="append", default=[], metavar="KEY=VALUE",
                            help=help_text)


def add_eval_flags(parser: argparse.ArgumentParser) -> None:
    """What `harness eval` takes: model, data, sampler, parser, evaluation protocol."""
    _add_flags(parser, SHARED_FLAGS, SHARED_OPTIONS)
    parser.add_argument("--level", type=int, default=None, help="math500 only: MATH-500 level 1..5")
    for flag, (field, kind) in EVAL_FLAGS.items():
        if flag == "eval_every":
            continue
        parser.add_argument("--" + flag.replace("_", "-"), type=kind, default=None,
                            help=RunConfig.model_fields["evaluation"].annotation.model_fields[field].description)
    parser.add_argument("--config", type=Path, default=None, help="a TOML file of run settings")


def add_run_flags(parser: argparse.ArgumentParser) -> None:
    """What `harness run` takes: everything `eval` takes, plus the training flags."""
    add_eval_flags(parser)
    _add_flags(parser, TRAIN_FLAGS, TRAIN_OPTIONS)
    parser.add_argument("--lr", type=float, default=None, help="optimizer learning rate (optimizer option lr)")
    parser.add_argument("--eval-every", type=int, default=None,
                        help=RunConfig.model_fields["evaluation"].annotation.model_fields["every"].description)
    parser.add_argument("--no-eval", action="store_true", help="skip the before/after evaluation")


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """The RunConfig of these flags over the --config file (an eval's namespace has no training flags)."""
    flags = {k: getattr(args, k) for k in RUN_FLAGS if getattr(args, k, None) is not None}
    for flag, field in {**SHARED_OPTIONS, **TRAIN_OPTIONS}.items():
        flags[field] = parse_option_pairs(getattr(args, flag, []), "--" + flag.replace("_", "-"))
    if args.level is not None:
        flags["benchmark_options"]["level"] = args.level
    if getattr(args, "lr", None) is not None:
        flags["optimizer_options"]["lr"] = args.lr
    evaluation = {field: getattr(args, flag) for flag, (field, _) in EVAL_FLAGS.items()
                  if getattr(args, flag, None) is not None}
    if getattr(args, "no_eval", False):
        evaluation["enabled"] = False
    if evaluation:
        flags["evaluation"] = evaluation
    file_values = read_toml(args.config) if args.config else {}
    return build_config(file_values, flags)
