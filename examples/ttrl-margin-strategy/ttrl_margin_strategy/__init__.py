"""A ttrl-harness strategy plugin: majority vote, but only when the winner leads clearly.

Install it (`pip install ./examples/ttrl-margin-strategy`) and use `harness run --strategy margin
--strategy-opt min_margin=2`. Problems whose top answer leads the runner-up by fewer than `min_margin`
votes abstain, so they contribute no gradient: fewer wrong pseudo-labels early in training.
"""

from collections import Counter

from pydantic import BaseModel, ConfigDict, Field

from harness import hookimpl
from harness.interfaces import Strategy
from harness.types import Group, Verdict


class MarginOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    min_margin: int = Field(2, ge=0, description="Votes the winner must lead the runner-up by.")


class MarginStrategy(Strategy):
    name = "margin"
    Options = MarginOptions

    def label(self, group: Group) -> Verdict:
        votes = Counter(c for c in group.clusters if c is not None).most_common()
        lead = votes[0][1] - (votes[1][1] if len(votes) > 1 else 0) if votes else 0
        if not votes or lead < self.options.min_margin:
            return Verdict(None, [0.0] * len(group.clusters))
        label = votes[0][0]
        return Verdict(group.cluster_answers[label], [float(c == label) for c in group.clusters])


@hookimpl
def register_strategies(register):
    register(MarginStrategy)
