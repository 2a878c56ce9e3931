"""Helpers for plugin authors' unit tests: a Group built by hand, with no sampler, model or grader worker.

    from harness.testing import make_group
    group = make_group(["4", "4", "5", None])
    verdict = MyStrategy(MyStrategy.Options()).label(group)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from harness.grouping import cluster_answers
from harness.types import Completion, Group


def same_text(answer: str, other: str) -> bool:
    """String equality after trimming: the grader a unit test needs (the run's grader is math-aware)."""
    return answer.strip() == other.strip()


def make_group(answers: Sequence[str | None], *, logprobs: Sequence[Sequence[float]] | None = None,
               gold: str | None = None, equivalent: Callable[[str, str], bool] = same_text,
               problem_id: str = "p0", prompt: str = "What is 2 + 2?") -> Group:
    """The Group a strategy would see for samples whose extracted answers are `answers` (None: no answer).
    Each completion's text is its answer; `logprobs[i]` are sample i's token log-probs (default: one token
    at log-prob -1). `gold` is set only for a test of a strategy with `needs_gold = True`."""
    completions = [Completion(text=answer or "", token_ids=[1] * max(1, len(lp)), logprobs=list(lp),
                              prompt_token_ids=[0])
                   for answer, lp in zip(answers, logprobs or [[-1.0]] * len(answers), strict=True)]
    clusters, representatives = cluster_answers(answers, equivalent)
    return Group(problem_id=problem_id, prompt=prompt, completions=completions, answers=list(answers),
                 clusters=clusters, cluster_answers=representatives, equivalent=equivalent, gold=gold)
