"""The TTRL loop, top to bottom: sample -> extract -> label -> reward -> optimize -> sync -> evaluate -> log.

Each phase is one call into an interface (harness.interfaces); engines (vLLM, transformers, torch) stay
behind them. Only this loop and the metrics see the gold; strategies other than `oracle` never do.
"""

from __future__ import annotations

import os
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from harness import distributed, interrupts
from harness.config import RunConfig
from harness.errors import ConfigError, HarnessError, PluginError
from harness.evaluation import evaluate
from harness.grouping import build_group, gold_flags
from harness.interfaces import AnswerParser, Optimizer, Sampler, SamplingParams, Strategy
from harness.metrics import aggregate, problem_diagnostics
from harness.models import resolve_model
from harness.plugins import get_plugins
from harness.prompts import format_prompts
from harness.rundir import RunDir, read_jsonl
from harness.types import REWARD_RANGE, Problem, Rollout, RolloutBatch, Verdict
from harness.watch import Watch, replay


@dataclass
class RunResult:
    run_dir: Path
    steps_done: int
    before: dict | None = None
    after: dict | None = None
    best: dict | None = None  # the collapse watch's best step, evaluated (watch.keep_best)
    interrupted: bool = False
    history: list[dict] = field(default_factory=list)


def epoch_order(count: int, epoch: int, per_step: int, seed: int) -> list[int]:
    """Problem indices in the order epoch `epoch` visits them: a seeded permutation, except that when a step
    straddles the end of the previous epoch, the problems that step already holds move out of its part of
    this epoch (to just after it), so no step holds a problem twice and every epoch still visits each once."""
    order = list(range(count))
    random.Random(seed * 100_003).shuffle(order)
    for later in range(1, epoch + 1):
        previous, order = order, list(range(count))
        random.Random(seed * 100_003 + later).shuffle(order)
        held = (later * count) % per_step  # problems of the straddling step that come from `previous`
        if held:
            tail = set(previous[count - held:])
            head = [index for index in order if index not in tail][: per_step - held]
            taken = set(head)
            order = head + [index for index in order if index not in taken]
    return order


def problems_for_step(problems: list[Problem], step: int, per_step: int, seed: int) -> list[Problem]:
    """Deterministic schedule (resume-safe): epochs of seeded permutations, sliced `per_step` at a time; a
    step never holds the same problem twice, also across an epoch boundary (epoch_order)."""
    count = len(problems)
    per_step = min(per_step, count)
    epoch, offset = divmod(step * per_step, count)
    chosen = epoch_order(count, epoch, per_step, seed)[offset : offset + per_step]
    if len(chosen) < per_step:
        chosen += epoch_order(count, epoch + 1, per_step, seed)[: per_step - len(chosen)]
    return [problems[index] for index in chosen]


def load_problems(config: RunConfig) -> list[Problem]:
    problems = get_plugins()["benchmark"].create(config.benchmark, config.benchmark_options).load()
    return problems[: config.limit] if config.limit else problems


def instruction_for(config: RunConfig) -> str:
    """The run's instruction, or its benchmark's own when the run names none."""
    if config.instruction is not None:
        return config.instruction
    return get_plugins()["benchmark"].get(config.benchmark).instruction


def model_prompts(config: RunConfig, model_path: str, problems: list[Problem]) -> list[str]:
    """Chat-formatted prompts; a tokenizer that cannot load (a wrong or uncached hub id) is a ConfigError."""
    try:
        return format_prompts(model_path, problems, instruction_for(config))
    except OSError as error:
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise ConfigError(f"--model {config.model!r}: cannot load its tokenizer ({first}); use an embedded "
                          "model, a local folder, or a hub id that is cached or downloadable") from None


def label_group(strategy: Strategy, strategy_name: str, group) -> Verdict:
    """The strategy's verdict on one group, checked where it is returned: a strategy that raises, or returns
    the wrong number of rewards or a reward that is not a finite number in REWARD_RANGE, is a one-line
    PluginError naming the strategy and the problem (the traceback shows with --verbose)."""
    where = f"strategy '{strategy_name}' on problem {group.problem_id!r}"
    try:
        verdict = strategy.label(group)
    except HarnessError:  # already one line that says what to change (a grader that cannot start, ...)
        raise
    except Exception as error:
        raise PluginError(f"{where} raised {type(error).__name__}: {error}") from error
    if not isinstance(verdict, Verdict):
        raise PluginError(f"{where} returned {type(verdict).__name__}, not a harness.Verdict")
    expected = len(group.completions)
    if len(verdict.rewards) != expected:
        raise PluginError(f"{where} returned {len(verdict.rewards)} rewards for {expected} samples; "
                          "return exactly one reward per completion")
    low, high = REWARD_RANGE
    for index, reward in enumerate(verdict.rewards):
        if isinstance(reward, bool) or not isinstance(reward, int | float) or not low <= reward <= high:
            raise PluginError(f"{where} returned reward {reward!r} for sample {index}; rewards must be finite "
                              f"numbers in [{low:g}, {high:g}]")
    return verdict


def to_rollouts(groups, verdicts, n_train: int) -> list[Rollout]:
    """The first n_train samples of each non-abstained group become trainable rollouts."""
    rollouts = []
    for index, (group, verdict) in enumerate(zip(groups, verdicts, strict=True)):
        if verdict.abstained:
            continue  # an abstained problem contributes no gradient
        for completion, reward in list(zip(group.completions, verdict.rewards, strict=True))[:n_train]:
            rollouts.append(Rollout(group.problem_id, completion.prompt_token_ids, completion.token_ids,
                                    reward, index, completion.logprobs))
    return rollouts


@dataclass
class Engines:
    """The plugins one run drives: the loop calls them only through harness.interfaces."""

    parser: AnswerParser
    strategy: Strategy
    optimizer: Optimizer
    sampler: Sampler
    processes: distributed.Processes = field(default_factory=distributed.Processes)

    def close(self) -> None:
        self.sampler.close()
        self.parser.close()
        self.strategy.close()


def open_engines(config: RunConfig, model_path: str,
                 processes: distributed.Processes | None = None) -> Engines:
    plugins = get_plugins()
    parser = plugins["answer_parser"].create(config.answer_parser, config.answer_parser_options)
    strategy = plugins["strategy"].create(config.strategy, config.strategy_options, seed=config.seed)
    optimizer = plugins["optimizer"].create(config.optimizer, config.optimizer_options,
                                            model_path=model_path, total_steps=config.steps, seed=config.seed)
    processes = processes or distributed.Processes()
    # one engine per rank, each seeded apart: an engine-wide random stream (vLLM) must not repeat across ranks
    sampler = plugins["sampler"].create(config.sampler, config.sampler_options, model_path=model_path,
                                        seed=distributed.rank_seed(config.seed, processes.rank))
    return Engines(parser, strategy, optimizer, sampler, processes)


def collect(engines: Engines, config: RunConfig, step: int, problems: list[Problem], prompts: list[str],
            timer: PhaseTimer) -> tuple[RolloutBatch, dict]:
    """Sample, extract, label and reward one step's problems: its rollouts and its record so far."""
    # sample: n_votes answers per problem from the current policy (with several processes, each samples its
    # share of the problems and every rank then holds all groups, each whole)
    processes = engines.processes
    with timer("sample"):
        outputs = processes.gather_shards(engines.sampler.generate(processes.shard(prompts), SamplingParams(
            n=config.n_votes, temperature=config.temperature, top_p=config.top_p,
            max_tokens=config.max_tokens, seed=config.seed * 1_000_003 + step)))

    # extract + label + reward: the strategy sees answers, never the gold (unless it is the oracle)
    with timer("label"):
        strategy = engines.strategy
        groups = [build_group(p, prompt, completions, engines.parser, show_gold=strategy.needs_gold)
                  for p, prompt, completions in zip(problems, prompts, outputs, strict=True)]
        strategy.start_step(step)
        verdicts = [label_group(strategy, config.strategy, group) for group in groups]
        correct = [gold_flags(g, p.answer) for g, p in zip(groups, problems, strict=True)]
        diagnostics = aggregate([problem_diagnostics(g, v, c, p.answer) for g, v, c, p in
                                 zip(groups, verdicts, correct, problems, strict=True)])

    lengths = [len(c.token_ids) for group in groups for c in group.completions]
    record = {"step": step, **diagnostics, "response_length": sum(lengths) / len(lengths),
              "sampled_tokens": sum(lengths),
              "pseudo_labels": {g.problem_id: v.pseudo_label for g, v in zip(groups, verdicts, strict=True)}}
    rollouts = to_rollouts(groups, verdicts, config.train_samples)
    return RolloutBatch(rollouts, temperature=config.temperature, max_tokens=config.max_tokens), record


def learn(engines: Engines, batch: RolloutBatch, timer: PhaseTimer) -> dict:
    """Optimize on the step's rollouts, then sync the sampler; the train figures for the record."""
    # optimize: one GRPO (or other) update on the first n_train samples of each labeled problem
    with timer("optimize"):
        train_stats = engines.optimizer.step(batch) if len(batch) else {"skipped": 1.0}

    # sync: the sampler gets the new weights in memory (nothing changed if every problem abstained)
    with timer("sync"):
        if len(batch):
            engines.sampler.load_weights(engines.optimizer.named_weights())
    return {f"train/{k}": v for k, v in train_stats.items()}


def ttrl_step(engines: Engines, config: RunConfig, step: int, problems: list[Problem], prompts: list[str],
              watch: Watch | None = None, run_dir: RunDir | None = None) -> dict:
    """One TTRL iteration on `problems`; returns the step's record (diagnostics, train stats, phase seconds).
    With a collapse watch that keeps the best policy, a new best step saves the policy that sampled it."""
    timer = PhaseTimer()
    batch, record = collect(engines, config, step, problems, prompts, timer)
    if watch is not None and watch.observe(record) and watch.config.keep_best and run_dir is not None:
        with timer("keep_best"):
            run_dir.save_best(step, dict(engines.optimizer.named_weights()), best_info(watch))
    record.update(learn(engines, batch, timer))
    return {**record, **timer.seconds}


def best_info(watch: Watch) -> dict:
    return {"metric": watch.config.metric, "mode": watch.config.mode, "value": watch.best_value}


def check_processes(config: RunConfig, world: int) -> None:
    """A one-line ConfigError unless `world` processes can run this config: the count it was started with
    (a resume keeps it: the step's problems are shared out by rank) and an optimizer that trains data-parallel."""
    if world != config.processes:
        raise ConfigError(f"this run is configured for {config.processes} process(es) and {world} were started; "
                          f"start it with --processes {config.processes} (harness run --resume starts them itself)")
    if world > 1 and not get_plugins()["optimizer"].get(config.optimizer).data_parallel:
        raise ConfigError(f"optimizer {config.optimizer!r} does not train data-parallel; use --processes 1, or "
                          "an optimizer that does (grpo, ppo)")


def run(config: RunConfig, run_dir: RunDir, log=print) -> RunResult:
    """Run (or resume) TTRL as configured, writing everything into `run_dir` (with several processes, each
    runs this and rank 0 alone writes: the others see the folder read-only)."""
    processes = distributed.current()
    check_processes(config, processes.world)
    if not processes.is_main:
        run_dir, log = run_dir.read_only(), _silent
    checkpoint = run_dir.load_checkpoint()  # a corrupt checkpoint is refused before any model loads
    problems = load_problems(config)  # bad data is reported before the model is resolved or converted
    model_path = resolve_model(config.model)
    prompts_by_id = dict(zip((p.id for p in problems), model_prompts(config, model_path, problems), strict=True))
    interrupts.install()  # idempotent; the CLI installs it before start-up
    engines = open_engines(config, model_path, processes)
    if interrupts.pressed():  # a Ctrl-C swallowed during start-up: stop as an interrupted start-up does
        engines.close()
        raise KeyboardInterrupt
    result = RunResult(run_dir.path, 0)
    start_step = resume_state(run_dir, checkpoint, engines, log)
    del checkpoint  # ~1.6 GB for the 135M model: not kept for the whole run
    processes.barrier()  # rank 0 has cut the records back to the checkpoint before any rank reads them
    watch = replay(config.watch, read_jsonl(run_dir.metrics_path)) if config.watch.active else None
    if watch is not None:
        run_dir.settle_best(watch.best_step, best_info(watch))  # drop what a discarded step kept

    def run_eval(phase: str, step: int) -> dict:
        scores = evaluate(engines.sampler, engines.parser, problems, [prompts_by_id[p.id] for p in problems],
                          config.evaluation, config.max_tokens, seed=config.seed + 7919 * (step + 1),
                          processes=processes)
        run_dir.append(run_dir.eval_path, {"step": step, "phase": phase, **scores})
        log(f"eval[{phase}] step {step}: " + ", ".join(f"{k}={v:.3f}" for k, v in scores.items()))
        return scores

    try:
        if config.evaluation.enabled and start_step == 0:
            result.before = run_eval("before", 0)
        bar = tqdm(range(start_step, config.steps), desc="TTRL steps", unit="step", initial=start_step,
                   total=config.steps, disable=not processes.is_main)
        for step in bar:
            if watch is not None and watch.should_stop():
                log(watch.stop_message())
                break
            batch_problems = problems_for_step(problems, step, config.problems_per_step, config.seed)
            record = ttrl_step(engines, config, step, batch_problems, [prompts_by_id[p.id] for p in batch_problems],
                               watch, run_dir)
            interrupts.check()  # a Ctrl-C during the step discards it, even if Python swallowed it

            # log
            run_dir.append(run_dir.labels_path, {"step": step, "pseudo_labels": record.pop("pseudo_labels")})
            run_dir.append(run_dir.metrics_path, record)
            result.history.append(record)
            bar.set_postfix(label_acc=f"{record['label_accuracy']:.2f}", pass1=f"{record['pass_at_1']:.3f}")

            # evaluate every K steps, then checkpoint (the checkpoint marks the step as done); a run the watch
            # stops checkpoints at once, so that its resume finds it finished
            stopping = watch is not None and watch.should_stop()
            if config.evaluation.enabled and config.evaluation.every and (step + 1) % config.evaluation.every == 0 \
                    and step + 1 < config.steps:
                run_eval("during", step + 1)
            if (step + 1) % config.checkpoint_every == 0 or step + 1 == config.steps or stopping:
                trace("checkpoint")
                run_dir.save_checkpoint(step + 1, checkpoint_state(engines))
                if watch is not None:
                    run_dir.settle_best(watch.best_step, best_info(watch))
            result.steps_done = step + 1
            interrupts.check()
        evals = read_jsonl(run_dir.eval_path)
        last_step = result.steps_done or start_step
        if config.evaluation.enabled and not any(e["phase"] == "after" for e in evals):
            result.after = run_eval("after", last_step)  # resuming a finished run does not evaluate twice
        if config.evaluation.enabled and watch is not None and config.watch.keep_best \
                and not any(e["phase"] == "best" for e in evals):
            result.best = evaluate_best(engines, run_dir, run_eval, log)
    except KeyboardInterrupt:
        result.interrupted = True
        log(f"interrupted: the last checkpoint is kept; continue with: harness run --resume {run_dir.path}")
    finally:
        engines.close()
    return result


def _silent(message: str) -> None:
    """The log of ranks other than 0: rank 0 reports for all."""


def evaluate_best(engines: Engines, run_dir: RunDir, run_eval, log) -> dict | None:
    """Evaluate the policy the collapse watch kept (the last weights stay in the optimizer)."""
    info = run_dir.best_info()
    if info is None:
        log("collapse watch: no step reported the watched figure, so there is no best step to evaluate")
        return None
    engines.sampler.load_weights(run_dir.load_best().items())
    log(f"collapse watch: best step {info['step']} by {info['metric']} ({info['mode']}) = {info['value']:.3f}")
    return run_eval("best", info["step"])


def checkpoint_state(engines: Engines) -> dict:
    return {"optimizer": engines.optimizer.state_dict(), "strategy": engines.strategy.state_dict(),
            "python_random": random.getstate()}


def resume_state(run_dir: RunDir, loaded: tuple[int, dict] | None, engines: Engines, log) -> int:
    """Restore the loaded checkpoint (if any), push its weights into the sampler, drop later records."""
    if loaded is None:  # nothing finished yet: start clean
        for path in (run_dir.metrics_path, run_dir.labels_path, run_dir.eval_path):
            run_dir.truncate_after(path, 0)
        return 0
    step, state = loaded
    engines.optimizer.load_state_dict(state["optimizer"])
    engines.strategy.load_state_dict(state.get("strategy", {}))  # checkpoints before strategy state: none
    random.setstate(state["python_random"])
    engines.sampler.load_weights(engines.optimizer.named_weights())
    run_dir.truncate_after(run_dir.metrics_path, step)
    run_dir.truncate_after(run_dir.labels_path, step)
    run_dir.truncate_after(run_dir.eval_path, step + 1)
    log(f"resumed from step {step}")
    return step


def trace(phase: str) -> None:
    """With HARNESS_TRACE=1, announce each phase on stderr (crash tests kill the run at a chosen phase)."""
    if os.environ.get("HARNESS_TRACE") == "1":
        print(f"[trace] phase={phase}", file=sys.stderr, flush=True)


class PhaseTimer:
    """Accumulates wall seconds per phase: `with timer("sample"): ...`."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def __call__(self, phase: str):
        return _Phase(self, phase)


class _Phase:
    def __init__(self, timer: PhaseTimer, phase: str) -> None:
        self.timer, self.phase, self.key = timer, phase, f"seconds/{phase}"

    def __enter__(self):
        trace(self.phase)
        self.start = time.perf_counter()

    def __exit__(self, *exc):
        self.timer.seconds[self.key] = self.timer.seconds.get(self.key, 0.0) + time.perf_counter() - self.start
