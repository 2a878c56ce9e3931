"""All `harness bench` sections, their figures (goals from the throughput issue) and the raw numbers behind them."""

from __future__ import annotations

from harness.bench.compare import Figure

SECTIONS = ("sampling", "training", "loop", "peer", "scaling")


def measure(quick: bool, sections: tuple[str, ...] = SECTIONS, seed: int = 0,
            log=print) -> tuple[list[Figure], dict[str, float], dict[str, list[dict[str, float]]]]:
    """Run the chosen sections; returns the figures, the raw numbers, and the scaling curves (full mode)."""
    from harness.bench import loopbench, measures, peer
    from harness.models import resolve_model

    size = measures.QUICK if quick else measures.FULL
    model_path = resolve_model(measures.MODEL)
    raw: dict[str, float] = {}
    curves: dict[str, list[dict[str, float]]] = {}
    if "sampling" in sections:
        log("bench: sampling (vLLM harness vs raw vLLM vs hf) ...")
        raw.update(measures.sampling_figures(model_path, size, seed))
    if "training" in sections:
        log("bench: training vs the bf16 matmul ceiling ...")
        raw.update(measures.training_share_of_ceiling(model_path, size, seed))
    if "loop" in sections or "peer" in sections:
        log(f"bench: the real loop, {size.loop_steps} steps of {size.loop_problems} problems x n={size.loop_n} ...")
        raw.update(loopbench.loop_figures(size, seed))
    if "peer" in sections:
        log("bench: the peer baseline, TRL GRPOTrainer + majority-vote reward, same prompts/N/tokens ...")
        raw.update(peer.trl_grpo_seconds(size, seed))
    if "scaling" in sections and size.scaling:
        curves = loopbench.scaling_points(size, seed, log)
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


def figures_from(raw: dict[str, float]) -> list[Figure]:
    """The figures whose raw numbers were measured (a section left out leaves its figures out)."""
    figures = []

    def add(needs: tuple[str, ...], name: str, value, better: str, goal: float | None, meaning: str,
            tolerance: float = 0.0) -> None:
        if all(key in raw for key in needs):
            figures.append(Figure(name, value(), better, goal, meaning, tolerance))

    add(("harness_tokens_per_s", "raw_tokens_per_s"), "sampling/harness_vs_raw_vllm",
        lambda: raw["harness_tokens_per_s"] / raw["raw_tokens_per_s"], "higher", 0.95,
        "VLLMSampler.generate tokens/s over LLM.generate tokens/s, same engine")
    add(("harness_tokens_per_s", "hf_tokens_per_s"), "sampling/vllm_vs_hf",
        lambda: raw["harness_tokens_per_s"] / raw["hf_tokens_per_s"], "higher", 5.0,
        "vllm sampler tokens/s over hf sampler tokens/s, same prompts")
    add(("train_gflops", "matmul_bf16_gflops"), "training/share_of_bf16_ceiling",
        lambda: raw["train_gflops"] / raw["matmul_bf16_gflops"], "higher", 0.5,
        "GRPO step 6*params*tokens FLOP/s over 2048^3 bf16 matmul FLOP/s")
    add(("trl_step_seconds", "iteration_seconds"), "loop/speedup_vs_trl_grpo",
        lambda: raw["trl_step_seconds"] / raw["iteration_seconds"], "higher", 3.0,
        "TRL GRPOTrainer+majority reward seconds/step over ours, same model/prompts/N/tokens")
    add(("label_share",), "loop/label_share", lambda: raw["label_share"], "lower", 0.02,
        "extraction + voting + rewards, share of one iteration")
    add(("sync_share",), "loop/sync_share", lambda: raw["sync_share"], "lower", 0.05,
        "weight sync, share of one iteration")
    # Accuracy at a fixed seed and model: no goal; a change of one label (or one graded answer) never fails
    add(("label_accuracy", "labels"), "accuracy/label_accuracy", lambda: raw["label_accuracy"], "higher", None,
        "majority label == gold, mean over the loop's steps", tolerance=1.0 / max(raw.get("labels", 1.0), 1.0))
    add(("pass_at_1_after", "eval_answers"), "accuracy/pass_at_1_after", lambda: raw["pass_at_1_after"], "higher",
        None, "avg@k pass@1 after the loop's K steps", tolerance=1.0 / max(raw.get("eval_answers", 1.0), 1.0))
    return figures
