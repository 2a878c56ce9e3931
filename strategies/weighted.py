"""Confidence-weighted vote: each sample votes with its own confidence instead of 1.

Confidence is the sample's geometric-mean token probability, exp(mean token log-prob), raised to
`power`. This is the "average trace confidence" weighting of DeepConf (Fu et al., 2025, arXiv 2508.15260)
and the sequence-level special case of SCOPE's step-wise confidence; it needs only the sampler's log-probs.
"""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, Field

from harness.errors import PluginError
from harness.interfaces import Strategy
from harness.strategies.voting import rewards_for, tally, winner
from harness.types import Completion, Group, Verdict


class WeightedOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    power: float = Field(1.0, ge=0.0, description="Sharpening exponent on confidence (0 = plain majority).")
    min_agreement: float = Field(
        0.0, ge=0.0, le=1.0, description="Abstain when the winner's share of the total weight is below this."
    )


def confidence(completion: Completion) -> float:
    """exp(mean token log-prob); 0 for an empty completion or non-finite log-probs."""
    logprobs = completion.logprobs
    if not logprobs:
        return 0.0
    mean = sum(logprobs) / len(logprobs)
    return math.exp(mean) if math.isfinite(mean) else 0.0


class WeightedStrategy(Strategy):
    """Reward 1 for samples equal to the confidence-weighted winner, else 0."""

    name = "weighted"
    Options = WeightedOptions
    needs_logprobs = True  # the TRL reward bridge has no sampler log-probs, so it refuses this strategy

    def label(self, group: Group) -> Verdict:
        if any(not c.logprobs for c in group.completions if c.token_ids):
            raise PluginError("the weighted vote needs the sampler's per-token log-probs, and this caller "
                              "passed none; use the majority strategy here")
        weights = [confidence(c) ** self.options.power for c in group.completions]
        totals = tally(group.clusters, weights)
        best = winner(totals)
        size = len(group.completions)
        share = totals[best] / sum(totals.values()) if best is not None and sum(totals.values()) > 0 else 0.0
        counts = tally(group.clusters)
        ratio = counts[best] / size if best is not None else 0.0
        if best is None or share < self.options.min_agreement:
            return Verdict(None, [0.0] * size, {"majority_ratio": ratio, "weighted_share": share})
        rewards = rewards_for(group.clusters, best)
        return Verdict(group.cluster_answers[best], rewards, {"majority_ratio": ratio, "weighted_share": share})

