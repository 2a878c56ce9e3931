"""From raw completions to a Group: extract each answer, then cluster answers by equivalence."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from harness.interfaces import AnswerParser
from harness.types import Completion, Group, Problem


def cluster_answers(
    answers: Sequence[str | None], equivalent: Callable[[str, str], bool]
) -> tuple[list[int | None], list[str]]:
    """Assign each answer the index of its equivalence class, in order of first appearance.

    Identical strings are merged without calling the grader; each new distinct string is compared
    with the representative of every class so far (classes stay few in practice).
    """
    representatives: list[str] = []
    by_string: dict[str, int] = {}
    clusters: list[int | None] = []
    for answer in answers:
        if answer is None:
            clusters.append(None)
            continue
        if answer not in by_string:
            match = next((i for i, rep in enumerate(representatives) if equivalent(answer, rep)), None)
            if match is None:
                representatives.append(answer)
                match = len(representatives) - 1
            by_string[answer] = match
        clusters.append(by_string[answer])
    return clusters, representatives


def build_group(
    problem: Problem, prompt: str, completions: list[Completion], parser: AnswerParser, show_gold: bool
) -> Group:
    """The Group a strategy sees; the gold is attached only when the strategy declares it needs it."""
    answers = [parser.extract(c.text) for c in completions]
    clusters, representatives = cluster_answers(answers, parser.equivalent)
    return Group(
        problem_id=problem.id,
        prompt=prompt,
        completions=completions,
        answers=answers,
        clusters=clusters,
        cluster_answers=representatives,
        equivalent=parser.equivalent,
        gold=problem.answer if show_gold else None,
    )


def gold_flags(group: Group, gold: str) -> list[bool]:
    """Per sample: is its answer equivalent to the gold? One grader call per cluster, not per sample."""
    return correct_flags(group.clusters, group.cluster_answers, group.equivalent, gold)


def correct_flags(clusters: Sequence[int | None], representatives: Sequence[str],
                  equivalent: Callable[[str, str], bool], gold: str) -> list[bool]:
    """Per sample, from its cluster: does the cluster's answer equal the gold (no answer: False)?"""
    cluster_correct = [equivalent(representative, gold) for representative in representatives]
    return [cluster is not None and cluster_correct[cluster] for cluster in clusters]
