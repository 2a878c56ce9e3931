"""TTRL's diagnostics against the hidden gold, and the evaluation scores (avg@k, maj@k, pass@k)."""

from __future__ import annotations

from collections.abc import Sequence
from statistics import fmean

from harness.strategies.voting import tally, winner
from harness.types import Group, Verdict


def majority_is_correct(clusters: Sequence[int | None], correct: Sequence[bool]) -> bool:
    """Whether the plain majority answer (ties: first seen; no answer never wins) matches the gold."""
    majority = winner(tally(clusters))
    return majority is not None and correct[clusters.index(majority)]


def label_is_correct(group: Group, pseudo_label: str | None, correct: Sequence[bool], gold: str) -> bool:
    """Whether the pseudo-label equals the gold; reuses the per-sample verdicts when it is a voted answer."""
    if pseudo_label is None:
        return False
    if pseudo_label in group.cluster_answers:
        cluster = group.cluster_answers.index(pseudo_label)
        return correct[group.clusters.index(cluster)]
    return group.equivalent(pseudo_label, gold)


def problem_diagnostics(group: Group, verdict: Verdict, correct: Sequence[bool], gold: str) -> dict:
    """Per-problem figures; `correct[i]` says whether sample i matches the gold."""
    gold_rewards = [1.0 if ok else 0.0 for ok in correct]
    totals = tally(group.clusters)
    majority = winner(totals)
    return {
        "label_correct": float(label_is_correct(group, verdict.pseudo_label, correct, gold)),
        # 1 - |reward - gold reward|, rewards clipped to [0, 1]: exact agreement for 0/1 rewards, and a graded
        # agreement for a strategy whose rewards are confidences (0.7 for a right answer counts 0.7)
        "reward_accuracy": fmean(1.0 - abs(min(max(r, 0.0), 1.0) - g)
                                 for r, g in zip(verdict.rewards, gold_rewards, strict=True)),
        "majority_ratio": (totals[majority] / len(group.clusters)) if majority is not None else 0.0,
        "maj_correct": float(majority_is_correct(group.clusters, correct)),
        "pass_at_1": fmean(gold_rewards),
        "pass_at_n": float(any(correct)),
        "mean_reward": fmean(verdict.rewards),
        "abstained": float(verdict.abstained),
        "no_answer_rate": fmean(float(a is None) for a in group.answers),
        # collapse watch, label-free: how many different answers, how sure the policy is of its tokens
        # (mean -log p of the sampled tokens: an estimate of the per-token entropy), how many hit max_tokens
        "distinct_answers": float(len(group.cluster_answers)),
        "entropy": fmean(_token_nll(c.logprobs) for c in group.completions),
        "truncated": fmean(float(c.finish_reason == "length") for c in group.completions),
        **{f"strategy/{key}": float(value) for key, value in verdict.info.items()},
    }


LOGGED_NAMES = {
    "label_correct": "label_accuracy",
    "reward_accuracy": "reward_accuracy",
    "majority_ratio": "majority_ratio",
    "maj_correct": "maj_at_n",
    "pass_at_1": "pass_at_1",
    "pass_at_n": "pass_at_n",
    "mean_reward": "mean_reward",
    "abstained": "abstain_rate",
    "no_answer_rate": "no_answer_rate",
    "distinct_answers": "distinct_answers",
    "entropy": "entropy",
    "truncated": "truncation_rate",
}
# Figures a rule may act on without seeing the gold (early stopping, choosing the best checkpoint).
LABEL_FREE = ("majority_ratio", "distinct_answers", "entropy", "truncation_rate", "response_length",
              "mean_reward", "abstain_rate", "no_answer_rate")


def _token_nll(logprobs: Sequence[float]) -> float:
    return -fmean(logprobs) if logprobs else 0.0


def aggregate(rows: Sequence[dict]) -> dict[str, float]:
    """Mean of each per-problem figure over problems, under the names TTRL logs."""
    if not rows:
        return {}
    figures = {logged: fmean(row[key] for row in rows) for key, logged in LOGGED_NAMES.items()}
    reported = sorted({key for row in rows for key in row if key.startswith("strategy/")})
    figures.update({key: fmean(row[key] for row in rows if key in row) for key in reported})
    return figures
