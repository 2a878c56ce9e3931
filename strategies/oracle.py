"""The RL-with-labels upper bound: the hidden gold is the label. The only strategy that sees the gold."""

from __future__ import annotations

from harness.interfaces import Strategy
from harness.types import Group, Verdict


class OracleStrategy(Strategy):
    """Reward 1 for samples equivalent to the gold answer, else 0."""

    name = "oracle"
    needs_gold = True

    def label(self, group: Group) -> Verdict:
        if group.gold is None:
            raise ValueError("the oracle strategy needs the gold answer, but the loop passed none")
        correct = [group.equivalent(answer, group.gold) for answer in group.cluster_answers]
        rewards = [1.0 if c is not None and correct[c] else 0.0 for c in group.clusters]
        return Verdict(group.gold, rewards)

