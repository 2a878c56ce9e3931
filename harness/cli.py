"""The `harness` command: run, plugins, grade, eval, lm-eval, bench."""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from pathlib import Path

from pydantic import ValidationError

from harness import interrupts, quiet
from harness.config import RunConfig, parse_option_pairs
from harness.errors import ConfigError, HarnessError
from harness.flags import RUN_FLAGS, add_eval_flags, add_run_flags, config_from_args
from harness.plugin_listing import cmd_plugins
from harness.plugins import validate_plugins
from harness.registry import format_validation_error


def cmd_run(args: argparse.Namespace) -> int:
    from harness import distributed
    from harness.loop import check_processes, run
    from harness.report import evaluations, table, write_report
    from harness.rundir import RunDir

    world = distributed.launched_world()
    if args.resume:
        run_dir = RunDir.open(args.resume)
        config = read_run_config(run_dir)
    elif world > 1:  # `accelerate launch -m harness run ...`: rank 0 creates the folder, the others open it
        config, run_dir = start_on_ranks(args, distributed.current())
    else:
        config, run_dir = start_run(args)
    if world == 1 and config.processes > 1:  # this process only starts the ranks, which run --resume
        from harness.launch import launch

        check_processes(config, config.processes)  # before any rank starts
        return launch(config.processes, run_dir.path, args.verbose)
    main_rank = distributed.current().is_main
    if main_rank:
        print(f"run directory: {run_dir.path}", file=sys.stderr)
    result = run(config, run_dir, log=lambda msg: print(msg, file=sys.stderr))
    if main_rank:
        report = write_report(run_dir)
        print(table(*evaluations(run_dir)))
        print(f"\nreport: {report}")
    return 130 if result.interrupted else 0


def read_run_config(run_dir) -> RunConfig:
    try:
        return RunConfig.model_validate(run_dir.read_config())
    except ValidationError as error:
        raise ConfigError(format_validation_error(error, prefix=f"{run_dir.config_path}: ")) from None


def start_run(args: argparse.Namespace, launched: int = 1):
    """A new run's checked config and its folder (config.json written); the plan goes to stderr."""
    from harness.loop import check_processes, load_problems
    from harness.rundir import RunDir

    config = config_from_args(args)
    if launched > 1 and args.processes is None:
        config.processes = launched  # started by a launcher: its process count is the run's
    validate_plugins(config)
    if launched > 1:
        check_processes(config, launched)
    problems = load_problems(config)  # bad data fails here, before a run directory is left behind
    if config.name is None:
        config.name = f"{config.strategy}-{config.optimizer}-{config.benchmark}-{time.strftime('%Y%m%d-%H%M%S')}"
    run_dir = RunDir.create(config.output or Path("runs") / config.name, config.model_dump(mode="json"))
    print(plan(config, len(problems)), file=sys.stderr)
    return config, run_dir


def start_on_ranks(args: argparse.Namespace, processes):
    """Under a launcher: rank 0 starts the run, the others open the folder it names (its name may hold a
    timestamp only rank 0 chose)."""
    from harness.rundir import RunDir

    run_dir = start_run(args, processes.world)[1] if processes.is_main else None
    path = processes.broadcast(str(run_dir.path) if run_dir is not None else None)
    run_dir = RunDir.open(Path(path))
    return read_run_config(run_dir), run_dir


def cmd_compare(args: argparse.Namespace) -> int:
    """A grid of matched runs: each strategy x each seed, then the leaderboard and the plot."""
    from harness.compare import cell_config, cells, run_cell, write_leaderboard
    from harness.loop import load_problems

    strategies = list(dict.fromkeys(s.strip() for s in (args.strategy or "majority").split(",") if s.strip()))
    optimizers = list(dict.fromkeys(o.strip() for o in (args.optimizer or "").split(",") if o.strip()))
    if args.seed is not None:
        raise ConfigError("compare takes --seeds 0,1,2 (a list), not --seed")
    try:
        seeds = list(dict.fromkeys(int(seed) for seed in args.seeds.split(",") if seed.strip()))
    except ValueError:
        raise ConfigError(f"--seeds {args.seeds!r}: give whole numbers separated by commas, e.g. 0,1,2") from None
    args.strategy = strategies[0]
    args.optimizer = optimizers[0] if optimizers else None
    base = config_from_args(args)
    output = Path(args.output or "runs/compare")
    grid = cells(strategies, seeds or [0], output, optimizers)
    configs = [cell_config(base, cell) for cell in grid]
    for config in configs:
        validate_plugins(config)  # every strategy's name and options, before any model loads
    problems = load_problems(base)
    axes = ", ".join(strategies) + (f" x {', '.join(optimizers)}" if len(optimizers) > 1 else "")
    print(f"compare: {axes} x seeds {', '.join(map(str, seeds))} = {len(grid)} runs into "
          f"{output}/\n" + plan(configs[0], len(problems)).replace("plan: ", "each: ", 1), file=sys.stderr)
    for index, (cell, config) in enumerate(zip(grid, configs, strict=True), start=1):
        print(f"[{index}/{len(grid)}] {cell.path.name}", file=sys.stderr)
        verb, interrupted = run_cell(config, verbose=args.verbose)
        print(f"[{index}/{len(grid)}] {cell.path.name}: {verb}", file=sys.stderr)
        if interrupted:
            print("interrupted: run the same command again to continue the grid", file=sys.stderr)
            return 130
    text, plot_path = write_leaderboard(grid, seeds, output)
    print(text)
    print(f"\nleaderboard: {output / 'leaderboard.md'} and leaderboard.json; plot: {plot_path}")
    return 0


def plan(config: RunConfig, problems: int) -> str:
    """What the run will do, in two lines, before any model loads."""
    k = config.evaluation.k
    evaluation = (f"evaluation avg@{k} / maj@{k} at T={config.evaluation.temperature:g} before and after"
                  if config.evaluation.enabled else "no evaluation")
    return (f"plan: {config.model} on {config.benchmark} ({problems} problems), strategy {config.strategy}, "
            f"optimizer {config.optimizer}, sampler {config.sampler}"
            + (f", {config.processes} processes (data-parallel)" if config.processes > 1 else "") + "\n"
            f"      {config.steps} steps x {config.problems_per_step} problems x {config.n_votes} votes "
            f"(first {config.train_samples} trained), {config.max_tokens} tokens, T={config.temperature:g}; "
            f"{evaluation}" + _watch_plan(config))


def _watch_plan(config: RunConfig) -> str:
    watch = config.watch
    if not watch.active:
        return ""
    parts = [f"best step by {watch.mode} {watch.metric}" + (f" over {watch.window} steps" if watch.window > 1 else "")]
    if watch.keep_best:
        parts.append("its policy kept and evaluated")
    if watch.patience:
        parts.append(f"stop after {watch.patience} steps without a new best")
    return "\n      collapse watch: " + ", ".join(parts)


def cmd_grade(args: argparse.Namespace) -> int:
    from harness.answer_parsers.grade_file import grade_lines
    from harness.plugins import get_plugins

    options = parse_option_pairs(args.parser_opt, "--parser-opt")
    if args.answer_parser == "boxed":  # graders read "The final answer is $X$" too; TTRL votes keep boxed-first
        from harness.answer_parsers.parser import GRADE_FALLBACKS

        options.setdefault("fallbacks", GRADE_FALLBACKS)
    parser = get_plugins()["answer_parser"].create(args.answer_parser, options)
    try:
        if args.file == "-":
            summary = grade_lines(sys.stdin, parser, sys.stdout)
        else:
            try:
                handle = open(args.file, encoding="utf-8")  # noqa: SIM115 - closed below
            except OSError as error:
                raise HarnessError(f"cannot read {args.file}: {error.strerror}") from None
            with handle:
                summary = grade_lines(handle, parser, sys.stdout)
    finally:
        parser.close()
    print(json.dumps(summary), file=sys.stderr)
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from harness.evaluation import evaluate
    from harness.loop import load_problems, model_prompts
    from harness.models import resolve_model
    from harness.plugins import get_plugins

    config = config_from_args(args)
    validate_plugins(config)
    plugins = get_plugins()
    model_path = resolve_model(config.model)
    problems = load_problems(config)
    prompts = model_prompts(config, model_path, problems)
    parser = plugins["answer_parser"].create(config.answer_parser, config.answer_parser_options)
    sampler = plugins["sampler"].create(config.sampler, config.sampler_options, model_path=model_path, seed=config.seed)
    try:
        scores = evaluate(sampler, parser, problems, prompts, config.evaluation, config.max_tokens, seed=config.seed)
    finally:
        sampler.close()
        parser.close()
    print(json.dumps(scores, indent=2))
    return 0


def cmd_lm_eval(args: argparse.Namespace) -> int:
    """lm-eval's own `run`, with our models and tasks registered (harness/integrations/lm_eval_cli.py)."""
    from harness.integrations.lm_eval_cli import pretrained_of, run_cli

    # the answer parser and options `harness eval` would use for the model (the embedded model's fallback)
    scoring = RunConfig(model=pretrained_of(args.lm_eval_args), answer_parser=args.answer_parser,
                        answer_parser_options=parse_option_pairs(args.parser_opt, "--parser-opt"))
    validate_plugins(scoring)
    settings = {"data_dir": args.data_dir, "k": args.k, "limit": None, "max_tokens": args.max_tokens,
                "temperature": args.temperature, "top_p": args.top_p, "parser": scoring.answer_parser,
                "parser_options": scoring.answer_parser_options}
    return run_cli(args.lm_eval_args, settings)


def build_parser() -> argparse.ArgumentParser:
    verbose = argparse.ArgumentParser(add_help=False)  # every subcommand takes --verbose
    verbose.add_argument(
        "--verbose", action="store_true", help="show engine logs (vLLM, transformers, TRL) and full tracebacks"
    )
    parser = argparse.ArgumentParser(prog="harness", description="Test-Time Reinforcement Learning harness")
    commands = parser.add_subparsers(dest="command", required=True)

    run_parser = commands.add_parser("run", help="run TTRL (sample, vote, reinforce, measure)", parents=[verbose])
    add_run_flags(run_parser)
    run_parser.add_argument("--resume", type=Path, default=None, help="continue the run in this directory")
    run_parser.set_defaults(func=cmd_run)

    compare_parser = commands.add_parser(
        "compare", help="a grid of matched runs (strategies x optimizers x seeds), then a leaderboard and a plot; "
        "--strategy and --optimizer take comma-separated lists",
        parents=[verbose])
    add_run_flags(compare_parser)
    compare_parser.add_argument("--seeds", default="0", help="comma-separated run seeds, e.g. 0,1,2")
    compare_parser.set_defaults(func=cmd_compare)

    plugins_parser = commands.add_parser(
        "plugins", help="list registered plugins and where they come from", parents=[verbose]
    )
    plugins_parser.add_argument(
        "name", nargs="?", default=None, help="a plugin's name: print its options (name, type, default, description)"
    )
    plugins_parser.add_argument("--json", action="store_true", help="machine-readable output")
    plugins_parser.set_defaults(func=cmd_plugins)

    grade_parser = commands.add_parser(
        "grade", help="grade JSONL lines {completion, gold} (FILE or -)", parents=[verbose]
    )
    grade_parser.add_argument("file", help="a JSONL file, or - for stdin")
    grade_parser.add_argument("--answer-parser", default="boxed", help="answer parser plugin")
    grade_parser.add_argument("--parser-opt", action="append", default=[], metavar="KEY=VALUE",
                              help="a parser option; the boxed parser reads the last box, then 'answer is' "
                              "phrasings, then the last formula or number (fallbacks=answer_is,last_math) "
                              "unless --parser-opt fallbacks=... says otherwise")
    grade_parser.set_defaults(func=cmd_grade)

    eval_parser = commands.add_parser(
        "eval", help="evaluate a model: avg@k, maj@k, pass@k (no training)", parents=[verbose]
    )
    add_eval_flags(eval_parser)
    eval_parser.set_defaults(func=cmd_eval)

    lm_parser = commands.add_parser(
        "lm-eval", parents=[verbose], allow_abbrev=False, help="lm-evaluation-harness's own `run` (its flags "
        "pass through), with the models ttrl-harness and ttrl and our ttrl_<benchmark> tasks registered")
    from harness.integrations.lm_eval_cli import add_task_flags

    add_task_flags(lm_parser)
    lm_parser.set_defaults(func=cmd_lm_eval)

    from harness.perf.cli import add_bench_parser

    add_bench_parser(commands, parents=[verbose])
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown and args.command != "lm-eval":  # only lm-eval's own arguments pass through
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    args.lm_eval_args = unknown
    quiet.configure(args.verbose)  # before any engine is imported: engines read it at import time
    if getattr(args, "resume", None) and any(getattr(args, k, None) is not None for k in RUN_FLAGS):
        print("error: --resume takes no other run flags: the run's saved config is used", file=sys.stderr)
        return 2
    interrupts.install()  # Ctrl-C raises KeyboardInterrupt and is remembered even if a finalizer swallows it
    try:
        return args.func(args)
    except HarnessError as error:
        if args.verbose:  # the cause (a plugin's own traceback), then the one line
            traceback.print_exception(error.__cause__ or error, file=sys.stderr)
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:  # Ctrl-C outside the training loop, which handles its own (start-up, grading)
        print("error: interrupted (Ctrl-C)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
