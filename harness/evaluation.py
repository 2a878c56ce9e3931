"""The evaluation protocol: avg@k (pass@1), maj@k and pass@k at the paper's sampling settings."""

from __future__ import annotations

from collections.abc import Sequence
from statistics import fmean

from harness.config import EvalConfig
from harness.distributed import Processes
from harness.grouping import cluster_answers, correct_flags
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
    processes: Processes | None = None,
) -> dict[str, float]:
    """Sample k answers per problem; score them against the gold. With several processes each samples and
    scores its share of the problems, and every rank gets the scores of all."""
    processes = processes or Processes()
    params = SamplingParams(
        n=settings.k,
        temperature=settings.temperature,
        top_p=settings.top_p,
        max_tokens=settings.max_tokens or max_tokens,
        seed=seed,
    )
    outputs = sampler.generate(processes.shard(prompts), params)
    local = [(problem_scores([c.text for c in completions], problem.answer, parser),
              [len(c.token_ids) for c in completions])
             for problem, completions in zip(processes.shard(problems), outputs, strict=True)]
    scores = processes.gather_shards(local)
    pass_at_1 = [score["avg"] for score, _ in scores]
    maj_at_k = [score["maj"] for score, _ in scores]
    pass_at_k = [score["pass"] for score, _ in scores]
    lengths = [length for _, problem_lengths in scores for length in problem_lengths]
    k = settings.k
    return {
        f"avg_at_{k}": fmean(pass_at_1),
        f"maj_at_{k}": fmean(maj_at_k),
        f"pass_at_{k}": fmean(pass_at_k),
        "pass_at_1": fmean(pass_at_1),
        "response_length": fmean(lengths),
        "problems": len(problems),
    }


def problem_scores(texts: Sequence[str], gold: str, parser: AnswerParser) -> dict[str, float]:
    """One problem's k responses -> {"avg", "maj", "pass"} (k = len(texts)). The one scoring path: `harness
    eval`, the loop's evaluations and the lm-eval tasks all score here, with the run's parser and options.

    avg: the share of responses whose answer the parser finds equivalent to the gold; maj: the most common
    answer (answers clustered by the parser's equivalence, ties to the first seen, no answer never wins) is
    right; pass: any response is right.
    """
    answers = [parser.extract(text) for text in texts]
    clusters, representatives = cluster_answers(answers, parser.equivalent)
    correct = correct_flags(clusters, representatives, parser.equivalent, gold)
    return {
        "avg": fmean(correct) if correct else 0.0,
        "maj": float(majority_is_correct(clusters, correct)),
        "pass": float(any(correct)),
    }
