"""pytest-benchmark timings of the two heavy phases (run with `pytest -m bench`; excluded by default).

Absolute times, so compare runs on the same machine: `pytest -m bench --benchmark-autosave`, later
`pytest -m bench --benchmark-compare`. The ratio figures that survive a noisy machine are `harness bench`.
"""

from __future__ import annotations

import pytest

from harness.interfaces import SamplingParams
from harness.models import resolve_model
from harness.perf.measures import QUICK, arith_prompts, synthetic_batch
from harness.plugins import get_plugins

pytestmark = [pytest.mark.bench, pytest.mark.slow]


@pytest.fixture(scope="module")
def model_path() -> str:
    return resolve_model("smollm2-135m")


@pytest.fixture(scope="module")
def prompts(model_path) -> list[str]:
    return arith_prompts(model_path, 4)


def test_vllm_sampling(benchmark, model_path, prompts):
    """4 arith prompts x n=4 x 32 tokens through VLLMSampler.generate."""
    sampler = get_plugins()["sampler"].create("vllm", {}, model_path=model_path, seed=0)
    params = SamplingParams(n=4, temperature=1.0, top_p=1.0, max_tokens=32, seed=0)
    try:
        groups = benchmark.pedantic(sampler.generate, args=(prompts, params), rounds=3, warmup_rounds=1)
    finally:
        sampler.close()
    tokens = sum(len(c.token_ids) for group in groups for c in group)
    benchmark.extra_info["tokens"] = tokens
    assert len(groups) == 4 and all(len(group) == 4 for group in groups) and tokens > 0


def test_grpo_step(benchmark, model_path):
    """One GRPO step (default options) on the quick bench's synthetic batch (48 prompt tokens per sequence)."""
    optimizer = get_plugins()["optimizer"].create("grpo", {}, model_path=model_path, total_steps=100, seed=0)
    batch = synthetic_batch(QUICK)
    stats = benchmark.pedantic(optimizer.step, args=(batch,), rounds=3, warmup_rounds=1)
    benchmark.extra_info["tokens"] = stats["tokens"]
    assert stats["tokens"] == QUICK.train_sequences * (48 + QUICK.train_completion)


def test_ttrl_iteration(benchmark, model_path):
    """One iteration of the real loop (`harness.loop.ttrl_step`): 4 one-digit sums x n=8 x 64 tokens through
    vLLM, majority vote, a GRPO step on every sample, and the in-memory weight sync."""
    from harness.loop import load_problems, model_prompts, open_engines, ttrl_step
    from harness.perf.loopbench import loop_config

    config = loop_config(QUICK, seed=0)
    problems = load_problems(config)[: config.problems_per_step]
    prompts = model_prompts(config, model_path, problems)
    engines = open_engines(config, model_path)
    steps = iter(range(100))
    try:
        record = benchmark.pedantic(lambda: ttrl_step(engines, config, next(steps), problems, prompts),
                                    rounds=3, warmup_rounds=1)
    finally:
        engines.close()
    benchmark.extra_info.update(sampled_tokens=record["sampled_tokens"],
                                trained=record.get("train/trained_sequences", 0.0))
    assert record["sampled_tokens"] > 0 and "seconds/sync" in record
