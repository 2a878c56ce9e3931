"""The real TTRL loop under the bench: its phase shares, accuracy after K steps, and how one iteration scales.

The loop runs on an easy `arith` set (one-digit sums), where the 135M model scores about 20% pass@1, so the
accuracy figures carry signal; on one machine kind the engine seed makes them repeat exactly.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from harness.config import RunConfig
from harness.errors import HarnessError
from harness.perf.measures import MODEL, BenchSize
from harness.prompts import DEFAULT_INSTRUCTION
from harness.types import Problem

# Pinned (not the run defaults), so that the figures stay comparable with baselines saved before the defaults
# changed: one-digit sums as stories, the paper's instruction, rollouts at T=1.0, lr 5e-6.
ACCURACY_SET = {"digits": 1, "operations": "+", "word_problems": True}
LOOP_SETTINGS = {"instruction": DEFAULT_INSTRUCTION, "temperature": 1.0, "top_p": 1.0,
                 "optimizer_options": {"lr": 5e-6}}
# The 135M model seldom writes \boxed{} within a short budget: the parser also takes "answer is" and the last
# number, so that fewer problems abstain (a step where all abstain trains and syncs nothing).
PARSER_OPTIONS = {"fallbacks": ["answer_is", "last_number"]}
SCALING_N = (8, 16, 32, 64)
SCALING_PROBLEMS = (1, 2, 4, 8)


def loop_config(size: BenchSize, seed: int, output: Path | None = None) -> RunConfig:
    return RunConfig(model=MODEL, seed=seed, benchmark="arith",
                     benchmark_options={**ACCURACY_SET, "count": size.eval_problems}, sampler="vllm",
                     steps=size.loop_steps, problems_per_step=size.loop_problems, n_votes=size.loop_n,
                     n_train=size.loop_n, max_tokens=size.loop_max_tokens, checkpoint_every=size.loop_steps,
                     evaluation={"k": size.eval_k}, answer_parser_options=PARSER_OPTIONS, output=output,
                     **LOOP_SETTINGS)


def step_problems(size: BenchSize, seed: int, steps: int) -> list[list[Problem]]:
    """The problems of the loop's first `steps` iterations, in its order (the TRL peer gets the same)."""
    from harness.loop import load_problems, problems_for_step

    config = loop_config(size, seed)
    problems = load_problems(config)
    return [problems_for_step(problems, step, config.problems_per_step, config.seed) for step in range(steps)]


def iteration_seconds(record: dict) -> float:
    """One iteration: sample + label + optimize + sync (the checkpoint is optional and not in the record)."""
    return sum(record.get(f"seconds/{phase}", 0.0) for phase in ("sample", "label", "optimize", "sync"))


def loop_figures(size: BenchSize, seed: int) -> dict[str, float]:
    """Run `harness.loop.run` (vLLM, GRPO, majority vote, evaluation before and after) and read its records."""
    from harness.loop import run
    from harness.rundir import RunDir

    with tempfile.TemporaryDirectory(prefix="harness-bench-") as folder:
        config = loop_config(size, seed, Path(folder) / "run")
        result = run(config, RunDir.create(config.output, config.model_dump(mode="json")), log=lambda *_: None)
    if result.interrupted:  # run() turned Ctrl-C into a partial result: the bench stops, as on any Ctrl-C
        raise KeyboardInterrupt
    history = result.history
    if all("train/skipped" in r for r in history):
        raise HarnessError("bench: every loop step abstained, so no weights were synced; the sync share "
                           "cannot be measured (raise loop_max_tokens in harness/perf/measures.py)")
    total = sum(iteration_seconds(r) for r in history)
    return {
        "label_share": sum(r.get("seconds/label", 0.0) for r in history) / total,
        "sync_share": sum(r.get("seconds/sync", 0.0) for r in history) / total,
        "iteration_seconds": total / len(history),
        "label_accuracy": sum(r["label_accuracy"] for r in history) / len(history),
        "labels": float(size.loop_steps * size.loop_problems),
        "pass_at_1_before": result.before["pass_at_1"],
        "pass_at_1_after": result.after["pass_at_1"],
        "eval_answers": float(size.eval_problems * size.eval_k),
    }


def scaling_points(size: BenchSize, seed: int, log=print) -> dict[str, list[dict[str, float]]]:
    """Time one iteration (`harness.loop.ttrl_step`) at each N and at each problem count, on one engine."""
    from harness.loop import load_problems, model_prompts, open_engines, ttrl_step
    from harness.models import resolve_model

    config = loop_config(size, seed).model_copy(update={"n_train": None})  # the loop's default: train N / 2
    model_path = resolve_model(config.model)
    problems = load_problems(config)
    prompts = model_prompts(config, model_path, problems)
    engines = open_engines(config, model_path)
    curves: dict[str, list[dict[str, float]]] = {"n": [], "problems": []}
    plan = [("n", n, SCALING_PROBLEMS[1], n) for n in SCALING_N]
    plan += [("problems", p, p, SCALING_N[0]) for p in SCALING_PROBLEMS]
    try:
        ttrl_step(engines, config.model_copy(update={"n_votes": 4}), 0, problems[:1], prompts[:1])  # warm-up
        for step, (curve, x, count, n) in enumerate(plan, start=1):
            log(f"bench: scaling {curve}={x} ...")
            record = ttrl_step(engines, config.model_copy(update={"n_votes": n}), step, problems[:count],
                               prompts[:count])
            curves[curve].append({"x": float(x), "seconds": iteration_seconds(record),
                                  "sample": record["seconds/sample"], "optimize": record.get("seconds/optimize", 0.0),
                                  "tokens": float(record["sampled_tokens"]),
                                  "trained": record.get("train/trained_sequences", 0.0)})
    finally:
        engines.close()
    return curves
