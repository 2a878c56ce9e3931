"""TTRL's labeler: the most common equivalent answer is the pseudo-label (arXiv 2504.16084)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from harness.interfaces import Strategy
from harness.strategies.voting import rewards_for, tally, winner
from harness.types import Group, Verdict


class MajorityOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    min_agreement: float = Field(
        0.0, ge=0.0, le=1.0, description="Abstain when the winner's share of all samples is below this."
    )


class MajorityStrategy(Strategy):
    """Reward 1 for samples equal to the majority answer, else 0."""

    name = "majority"
    Options = MajorityOptions

    def label(self, group: Group) -> Verdict:
        totals = tally(group.clusters)
        best = winner(totals)
        size = len(group.completions)
        ratio = totals[best] / size if best is not None else 0.0
        if best is None or ratio < self.options.min_agreement:
            return Verdict(None, [0.0] * size, {"majority_ratio": ratio})
        return Verdict(group.cluster_answers[best], rewards_for(group.clusters, best), {"majority_ratio": ratio})

