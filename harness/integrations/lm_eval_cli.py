"""`harness lm-eval ARGS`: lm-eval's own command line, with this project's models and tasks registered first.

lm-eval has no entry-point discovery for models, so this is how its CLI learns `ttrl-harness` (answer with a
harness sampler) and `ttrl` (adapt with test-time RL, then answer). Every argument lm-eval's `run` takes passes
through unchanged (`--model_args`, `--gen_kwargs`, `--num_fewshot`, `--output_path`, `--log_samples`,
`--apply_chat_template`, `--limit`, ...), so lm-eval's documentation applies. Our tasks (`ttrl_aime24`,
`ttrl_amc`, `ttrl_math500`, `ttrl_math500_l1`..`_l5`, `ttrl_arith`, or `ttrl_<any benchmark>`) are written as
YAMLs into a temporary folder that is added with `--include_path`; the few flags that shape them are ours
(TASK_FLAGS below) and are taken out before lm-eval parses the rest.
"""

from __future__ import annotations

import argparse
import tempfile
from typing import Any

from harness.integrations import MODEL_NAME, TASK_PREFIX

DEFAULT_PRETRAINED = "smollm2-135m"


def add_task_flags(parser: argparse.ArgumentParser) -> None:
    """The flags that shape our task YAMLs; everything else on the command line goes to lm-eval."""
    parser.add_argument("--data-dir", default=None, help="folder of the benchmark files (else HARNESS_DATA_DIR)")
    parser.add_argument("--k", type=int, default=16, help="responses per problem: avg@k, maj@k, pass@k")
    parser.add_argument("--max-tokens", type=int, default=256, help="answer length of our tasks")
    parser.add_argument("--temperature", type=float, default=0.6)
    parser.add_argument("--top-p", type=float, default=0.95)
    parser.add_argument("--answer-parser", default="boxed", help="the parser that scores our tasks' responses")
    parser.add_argument("--parser-opt", action="append", default=[], metavar="KEY=VALUE",
                        help="an answer-parser option, as for `harness eval` (repeatable)")


def run_cli(lm_eval_args: list[str], task_settings: dict[str, Any]) -> int:
    """Run lm-eval's `run` on `lm_eval_args`, after registering our models and writing our tasks."""
    from lm_eval._cli import HarnessCLI

    from harness.integrations import lm_eval_ttrl  # noqa: F401 - registers the `ttrl` model
    from harness.integrations.lm_eval import write_tasks

    args = with_defaults(list(lm_eval_args))
    ours = [task[len(TASK_PREFIX):] for task in _value(args, "--tasks", "").split(",") if task.startswith(TASK_PREFIX)]
    with tempfile.TemporaryDirectory(prefix="ttrl-lm-eval-") as folder:
        if ours:
            write_tasks(folder, ours, **task_settings)
            args += ["--include_path", folder]
        cli = HarnessCLI()
        cli.execute(cli._parser.parse_args(["run", *args]))
    return 0


def with_defaults(args: list[str]) -> list[str]:
    """Our defaults where lm-eval's arguments say nothing: the `ttrl-harness` model on the embedded model,
    the chat template (our tasks' prompts are the training prompts), and, for `ttrl`, the adaptation's
    files inside --output_path."""
    if _value(args, "--model") is None:
        args += ["--model", MODEL_NAME]
    model_args = _value(args, "--model_args")
    if model_args is None:
        model_args = f"pretrained={DEFAULT_PRETRAINED}"
        args += ["--model_args", model_args]
    output = _value(args, "--output_path")
    if _value(args, "--model") == "ttrl" and output and "run_dir=" not in model_args:
        _replace(args, "--model_args", f"{model_args},run_dir={output.rstrip('/')}/ttrl-adaptation")
    if "--apply_chat_template" not in args and not any(a.startswith("--apply_chat_template=") for a in args):
        args.append("--apply_chat_template")
    return args


def pretrained_of(args: list[str]) -> str:
    """The `pretrained=` of --model_args (the model our defaults, such as the parser's fallback, depend on)."""
    for pair in (_value(args, "--model_args") or "").split(","):
        key, _, value = pair.partition("=")
        if key.strip() == "pretrained" and value.strip():
            return value.strip()
    return DEFAULT_PRETRAINED


def _value(args: list[str], flag: str, default: str | None = None) -> str | None:
    for index, arg in enumerate(args):
        if arg == flag and index + 1 < len(args):
            return args[index + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return default


def _replace(args: list[str], flag: str, value: str) -> None:
    for index, arg in enumerate(args):
        if arg == flag:
            args[index + 1] = value
            return
        if arg.startswith(flag + "="):
            args[index] = f"{flag}={value}"
            return
