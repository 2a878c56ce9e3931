"""All `harness bench` sections, their figures (goals from the throughput issue) and the raw numbers behind them."""

from __future__ import annotations

import math

from harness.perf.compare import Figure

SECTIONS = ("sampling", "training", "loop", "peer", "scaling", "grader")


def measure(quick: bool, sections: tuple[str, ...] = SECTIONS, seed: int = 0,
            log=print) -> tuple[list[Figure], dict[str, float], dict[str, list[dict[str, float]]]]:
    """Run the chosen sections; returns the figures, the raw numbers, and the scaling curves (full mode)."""
    from harness.models import resolve_model
    from harness.perf import gradebench, loopbench, measures, peer

    size = measures.QUICK if quick else measures.FULL
    # only the sampling and training sections load the model here: `--only grader` needs none
    model_path = resolve_model(measures.MODEL) if {"sampling", "training"} & set(sections) else ""
    raw: dict[str, float] = {}
    curves: dict[str, list[dict[str, float]]] = {}
    if "sampling" in sections:
        log("bench: sampling (vLLM harness vs raw vLLM vs hf) ...")
        raw.update(measures.sampling_figures(model_path, size, seed))
    if "training" in sections:
        log("bench: training (GRPO vs a plain transformers step; vs the bf16 matmul ceiling) ...")
        raw.update(measures.training_figures(model_path, size, seed))
    if "loop" in sections or "peer" in sections:
        log(f"bench: the real loop, {size.loop_steps} steps of {size.loop_problems} problems x n={size.loop_n} ...")
        raw.update(loopbench.loop_figures(size, seed))
    if "peer" in sections:
        log("bench: the peer baseline, TRL GRPOTrainer + majority-vote reward, same prompts/N/tokens ...")
        raw.update(peer.trl_grpo_seconds(size, seed))
    if "scaling" in sections and size.scaling:
        curves = loopbench.scaling_points(size, seed, log)
    if "grader" in sections:
        log("bench: the grader against math-verify on the peer suites' cases ...")
        raw.update(gradebench.grader_figures(1 if quick else size.rounds, log=log))  # 477 cases: ~10 s a round
    return figures_from(raw), raw, curves


def sections_of(figure_names: list[str]) -> tuple[str, ...]:
    """The sections that measure these figures (the TRL speed-up needs the loop and the peer)."""
    needed: set[str] = set()
    for name in figure_names:
        if name == "loop/speedup_vs_trl_grpo":
            needed |= {"loop", "peer"}
        elif name.startswith(("loop/", "accuracy/")):
            needed.add("loop")
        else:
            needed.add(name.split("/", 1)[0])
    return tuple(section for section in SECTIONS if section in needed)


# name, numerator, denominator (None: the raw value itself), better, goal, gate (compare.Gate), meaning, and for
# accuracy figures the raw count of labels or graded answers behind it (its tolerance, see accuracy_tolerance).
FIGURES = (
    ("sampling/harness_vs_raw_vllm", "harness_tokens_per_s", "raw_tokens_per_s", "higher", 0.95, "portable",
     "VLLMSampler.generate tokens/s over LLM.generate tokens/s, same engine", None),
    # vLLM's CPU kernels against torch's generate, yet it read 2.13 on a Xeon/AMX host and 2.13-2.33 on AMD
    # EPYC hosts (../shared/docs/ENVIRONMENT.md): portable, and the figure that catches lost prefix caching
    ("sampling/vllm_vs_hf", "harness_tokens_per_s", "hf_tokens_per_s", "higher", 5.0, "portable",
     "vllm sampler tokens/s over hf sampler tokens/s, same prompts", None),
    ("training/grpo_vs_plain_step", "train_tokens_per_s", "plain_tokens_per_s", "higher", None, "portable",
     "GRPO step tokens/s over a plain bf16 transformers forward+backward+AdamW, same model and tokens", None),
    ("training/share_of_bf16_ceiling", "train_gflops", "matmul_bf16_gflops", "higher", 0.5, "report",
     "GRPO step 6*params*tokens FLOP/s over 2048^3 bf16 matmul FLOP/s", None),
    # TRL runs fp32 on CPU (it refuses bf16 there), we run bf16: AMX speeds only our side
    ("loop/speedup_vs_trl_grpo", "trl_step_seconds", "iteration_seconds", "higher", 3.0, "same-cpu",
     "TRL GRPOTrainer+majority reward seconds/step over ours, same model/prompts/N/tokens", None),
    ("loop/label_share", "label_share", None, "lower", 0.02, "portable",
     "extraction + voting + rewards, share of one iteration", None),
    ("loop/sync_share", "sync_share", None, "lower", 0.05, "portable", "weight sync, share of one iteration", None),
    # ours runs math-verify too, in its worker, where its fast paths do not decide: the ratio moves with the share
    # of such cases and with the IPC cost of this host, so it is shown, not gated
    ("grader/speed_vs_math_verify", "grader_answers_per_s", "math_verify_answers_per_s", "higher", 1.0, "report",
     "our grader's answers/s over math-verify parse+verify's, the peer suites' cases, cold caches", None),
    ("accuracy/label_accuracy", "label_accuracy", None, "higher", None, "tolerance",
     "majority label == gold, mean over the loop's steps", "labels"),
    ("accuracy/pass_at_1_after", "pass_at_1_after", None, "higher", None, "tolerance",
     "avg@k pass@1 after the loop's K steps", "eval_answers"),
)
GATES = {name: gate for name, _, _, _, _, gate, _, _ in FIGURES}
TOLERANCE_SIGMAS = 2.0


def accuracy_tolerance(value: float, count: float) -> float:
    """How far an accuracy may fall before it counts: TOLERANCE_SIGMAS binomial standard deviations at this
    value over `count` answers, and never less than one answer. Another CPU's numerics move the samples (a
    Xeon/AMX host read 0 of 12 labels and 10 of 64 answers where the AMD baseline read 1 and 13): that is
    sampling noise of this size, so the tolerance holds across hosts while a broken parser, vote or reward,
    which costs far more than 2 sigma, still fails."""
    count = max(count, 1.0)
    p = min(max(value, 0.0), 1.0)
    return max(1.0 / count, TOLERANCE_SIGMAS * math.sqrt(p * (1.0 - p) / count))


def figures_from(raw: dict[str, float]) -> list[Figure]:
    """The figures whose raw numbers were measured (a section left out leaves its figures out)."""
    figures = []
    for name, numerator, denominator, better, goal, gate, meaning, count in FIGURES:
        if any(key is not None and key not in raw for key in (numerator, denominator, count)):
            continue
        value = raw[numerator] / raw[denominator] if denominator else raw[numerator]
        tolerance = accuracy_tolerance(value, raw[count]) if count else 0.0
        figures.append(Figure(name, value, better, goal, meaning, tolerance, gate))
    return figures
