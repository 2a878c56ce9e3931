"""The evaluation protocol: avg@k (pass@1), maj@k and pass@k at the paper's sampling settings."""

from __future__ import annotations

from statistics import fmean

from harness.config import EvalConfig
from harness.grouping import build_group, gold_flags
from harness.interfaces import AnswerParser, Sampler, SamplingParams
from harness.metrics import majority_is_correct
from harness.types import Problem


def evaluate(
    sampler: Sampler,
    parser: AnswerParser,
    problems: list[Problem],
    prompts: list[str],
    settings: EvalConfig,
    max_tokens: int,
    seed: int,
) -> dict[str, float]:
    """Sample k answers per problem; score them against the gold."""
    params = SamplingParams(
        n=settings.k,
        temperature=settings.temperature,
        top_p=settings.top_p,
        max_tokens=settings.max_tokens or max_tokens,
        seed=seed,
    )
    outputs = sampler.generate(prompts, params)
    pass_at_1, maj_at_k, pass_at_k, lengths = [], [], [], []
    for problem, prompt, completions in zip(problems, prompts, outputs, strict=True):
        group = build_group(problem, prompt, completions, parser, show_gold=False)
        correct = gold_flags(group, problem.answer)
        pass_at_1.append(fmean(correct))
        maj_at_k.append(float(majority_is_correct(group.clusters, correct)))
        pass_at_k.append(float(any(correct)))
        lengths.extend(len(c.token_ids) for c in completions)
    k = settings.k
    return {
        f"avg_at_{k}": fmean(pass_at_1),
        f"maj_at_{k}": fmean(maj_at_k),
        f"pass_at_{k}": fmean(pass_at_k),
        "pass_at_1": fmean(pass_at_1),
        "response_length": fmean(lengths),
        "problems": len(problems),
    }
