"""The measurements behind `harness bench`. Every figure is a ratio (or a share) of two things timed in the
same process, close together, because the machine is shared and absolute speeds swing with its load."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from harness.interfaces import SamplingParams
from harness.plugins import get_plugins
from harness.samplers.vllm import TIED_ALIASES
from harness.types import Rollout, RolloutBatch

MODEL = "smollm2-135m"


@dataclass(frozen=True)
class BenchSize:
    """How much work each measurement does (quick: the CI subset)."""

    prompts: int  # prompts per sampling call (vLLM, raw vLLM and hf alike)
    n: int  # samples per prompt
    max_tokens: int
    rounds: int  # alternating timed rounds per side (sampling) or timed steps (training)
    train_sequences: int
    train_completion: int  # completion tokens per training sequence
    loop_steps: int  # TTRL iterations of the real loop (then pass@1 is measured "after K steps")
    loop_problems: int  # problems per iteration (the TRL peer gets the same prompts)
    loop_n: int  # samples per problem, all of them trained on (as TRL trains every sample)
    loop_max_tokens: int
    eval_problems: int  # the loop's problem set, evaluated before and after with avg@eval_k
    eval_k: int
    peer_steps: int  # TRL GRPOTrainer steps timed (its first step is no slower than the next)
    scaling: bool  # also time one iteration against N and the problem count (minutes)


QUICK = BenchSize(prompts=2, n=4, max_tokens=32, rounds=2, train_sequences=8, train_completion=64,
                  loop_steps=3, loop_problems=4, loop_n=8, loop_max_tokens=64, eval_problems=16, eval_k=4,
                  peer_steps=1, scaling=False)
# The loop and peer sizes match the TRL baseline recorded in ../shared/docs/ENVIRONMENT.md (8 x 8 x 96).
FULL = BenchSize(prompts=8, n=8, max_tokens=64, rounds=3, train_sequences=16, train_completion=128,
                 loop_steps=3, loop_problems=8, loop_n=8, loop_max_tokens=96, eval_problems=32, eval_k=8,
                 peer_steps=1, scaling=True)


def arith_prompts(model_path: str, count: int) -> list[str]:
    """Chat-formatted two-digit `arith` stories with the paper's instruction (the generator needs no files);
    pinned, so that throughput figures stay comparable with older baselines."""
    from harness.prompts import DEFAULT_INSTRUCTION, format_prompts

    options = {"count": count, "digits": 2, "operations": "+-*", "word_problems": True}
    problems = get_plugins()["benchmark"].create("arith", options).load()
    return format_prompts(model_path, problems, DEFAULT_INSTRUCTION)


def _tokens(groups: list[list[Any]]) -> int:
    return sum(len(c.token_ids) for group in groups for c in group)


def _timed(call) -> tuple[float, Any]:
    started = time.perf_counter()
    value = call()
    return time.perf_counter() - started, value


def harness_vs_raw(sampler: Any, prompts: list[str], size: BenchSize, seed: int) -> dict[str, float]:
    """VLLMSampler.generate vs the engine's own LLM.generate (same engine, prompts, n, log-probs)."""
    from vllm import SamplingParams as VLLMSamplingParams

    params = SamplingParams(n=size.n, temperature=1.0, top_p=1.0, max_tokens=size.max_tokens, seed=seed)
    raw_params = VLLMSamplingParams(n=size.n, temperature=1.0, top_p=1.0, max_tokens=size.max_tokens, logprobs=0)
    sampler.generate(prompts[:1], params)  # warm-up: first-call allocations and the prefix cache
    ours = [0.0, 0]
    raw = [0.0, 0]
    for _ in range(size.rounds):  # alternate, so a load spike hits both sides alike
        seconds, groups = _timed(lambda: sampler.generate(prompts, params))
        ours[0] += seconds
        ours[1] += _tokens(groups)
        seconds, outputs = _timed(lambda: sampler._llm.generate(prompts, raw_params, use_tqdm=False))
        raw[0] += seconds
        raw[1] += sum(len(s.token_ids) for o in outputs for s in o.outputs)
    return {"harness_tokens_per_s": ours[1] / ours[0], "raw_tokens_per_s": raw[1] / raw[0]}


def hf_tokens_per_s(model_path: str, prompts: list[str], size: BenchSize, seed: int) -> float:
    """The transformers sampler on the same prompts and budget (one timed call after a tiny warm-up)."""
    sampler = get_plugins()["sampler"].create("hf", {}, model_path=model_path, seed=seed)
    try:
        params = SamplingParams(n=size.n, temperature=1.0, top_p=1.0, max_tokens=size.max_tokens, seed=seed)
        sampler.generate(prompts[:1], SamplingParams(n=1, temperature=1.0, top_p=1.0, max_tokens=4, seed=seed))
        seconds, groups = _timed(lambda: sampler.generate(prompts, params))
        return _tokens(groups) / seconds
    finally:
        sampler.close()


def matmul_gflops(dim: int = 2048, repeats: int = 8) -> float:
    """This machine's bf16 matmul rate right now: the mean over `repeats` dim^3 products. The mean, not the
    best: the training step it is divided into lasts seconds and sees the machine's average load too."""
    import torch

    a = torch.randn(dim, dim, dtype=torch.bfloat16)
    b = torch.randn(dim, dim, dtype=torch.bfloat16)
    torch.mm(a, b)  # warm-up
    seconds = sum(_timed(lambda: torch.mm(a, b))[0] for _ in range(repeats))
    return 2 * dim**3 * repeats / seconds / 1e9


def synthetic_batch(size: BenchSize, vocab: int = 49152, prompt_len: int = 48) -> RolloutBatch:
    """Fixed-length rollouts with mixed rewards in groups of 4, so every group carries a gradient."""
    import random

    rng = random.Random(0)
    rollouts = []
    for index in range(size.train_sequences):
        prompt = [rng.randrange(1000, vocab) for _ in range(prompt_len)]
        completion = [rng.randrange(1000, vocab) for _ in range(size.train_completion)]
        rollouts.append(Rollout(f"p{index // 4}", prompt, completion, float(index % 2), index // 4,
                                [-2.0] * len(completion)))
    return RolloutBatch(rollouts)


class PlainStep:
    """The reference the GRPO step is gated against: a plain supervised step of the same model as anyone
    would write it (bf16 weights, eager attention, full logits, cross-entropy, backward, fused AdamW) on the
    same sequences in micro-batches of the same size. Both sides run torch's own bf16 kernels, so their
    ratio means the same on an AVX512-BF16 host and on an AMX host; losing the fused LM head, the skipped
    prompt logits or the master-weight scheme moves it, a faster CPU does not."""

    def __init__(self, model_path: str, micro_batch_size: int) -> None:
        import torch

        from harness.optimizers.policy import load_causal_lm

        self.model = load_causal_lm(model_path, torch.bfloat16, torch.device("cpu"), trainable=True,
                                    attention="eager")
        self.adamw = torch.optim.AdamW(self.model.parameters(), lr=1e-6, fused=True)
        self.micro_batch_size = micro_batch_size

    def step(self, batch: RolloutBatch) -> int:
        """One update over the batch; returns the prompt + completion tokens it trained on."""
        import torch

        sequences = [r.prompt_token_ids + r.completion_token_ids for r in batch.rollouts]
        for start in range(0, len(sequences), self.micro_batch_size):
            ids = torch.tensor(sequences[start:start + self.micro_batch_size], dtype=torch.long)
            self.model(input_ids=ids, labels=ids, use_cache=False).loss.backward()
        self.adamw.step()
        self.adamw.zero_grad(set_to_none=True)
        return sum(len(ids) for ids in sequences)


def training_figures(model_path: str, size: BenchSize, seed: int) -> dict[str, float]:
    """GRPO (default options) training tokens/s against the plain step's (gated), and its FLOP rate
    (6 * params * tokens) over this CPU's bf16 matmul rate (reported only: it is a physical limit).

    GRPO steps, plain steps and matmul probes alternate (probe, grpo, plain, probe, ...), so a load spike
    during the run lowers every side alike; the ceiling is the mean of every probe."""
    from transformers import AutoConfig

    tied = bool(getattr(AutoConfig.from_pretrained(model_path), "tie_word_embeddings", False))
    optimizer = get_plugins()["optimizer"].create("grpo", {}, model_path=model_path, total_steps=100, seed=seed)
    plain = PlainStep(model_path, optimizer.options.micro_batch_size)
    # named_weights() may yield fresh tensors (ids are reused), and a tied head is sent under two names
    params = sum(t.numel() for name, t in optimizer.named_weights() if name not in TIED_ALIASES or not tied)
    batch = synthetic_batch(size)
    optimizer.step(batch)  # warm-up: allocations, the fused AdamW state
    plain.step(batch)
    probes = [matmul_gflops()]
    seconds = tokens = plain_seconds = plain_tokens = 0.0
    for _ in range(size.rounds):
        step_seconds, stats = _timed(lambda: optimizer.step(batch))
        seconds += step_seconds
        tokens += stats["tokens"]
        step_seconds, trained = _timed(lambda: plain.step(batch))
        plain_seconds += step_seconds
        plain_tokens += trained
        probes.append(matmul_gflops())
    tokens_per_s = tokens / seconds
    achieved = 6 * params * tokens_per_s / 1e9
    return {"train_tokens_per_s": tokens_per_s, "plain_tokens_per_s": plain_tokens / plain_seconds,
            "train_gflops": achieved, "matmul_bf16_gflops": sum(probes) / len(probes), "params": float(params)}


def sampling_figures(model_path: str, size: BenchSize, seed: int) -> dict[str, float]:
    prompts = arith_prompts(model_path, size.prompts)
    sampler = get_plugins()["sampler"].create("vllm", {}, model_path=model_path, seed=seed)
    try:
        values = harness_vs_raw(sampler, prompts, size, seed)
    finally:
        sampler.close()
    values["hf_tokens_per_s"] = hf_tokens_per_s(model_path, prompts, size, seed)
    return values
