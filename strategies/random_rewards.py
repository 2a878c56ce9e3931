"""The random-reward control: each sample's reward is a coin flip, whatever it answered.

"Spurious Rewards" (Shao et al., 2025, arXiv 2506.10947) found that a Qwen2.5-Math model gained 21 points
on MATH-500 from random rewards alone, so a gain that random rewards also give was not taught by the votes.
The strategy sees no gold and uses no answer: it trains without a pseudo-label (`Verdict.train=True`).
Its coin is seeded by the run's seed and saved with each checkpoint, so a resumed run flips the same coins.
"""

from __future__ import annotations

import random

from pydantic import BaseModel, ConfigDict, Field

from harness.interfaces import Strategy
from harness.types import Group, Verdict


class RandomOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    p: float = Field(0.5, ge=0.0, le=1.0, description="Probability that a sample's reward is 1 (else 0).")


class RandomStrategy(Strategy):
    """Bernoulli(p) rewards, independent of the answers: the control that votes teach nothing by chance."""

    name = "random"
    Options = RandomOptions

    def __init__(self, options: RandomOptions, seed: int = 0) -> None:
        super().__init__(options, seed=seed)
        self.rng = random.Random(f"random-rewards-{seed}")

    def label(self, group: Group) -> Verdict:
        rewards = [1.0 if self.rng.random() < self.options.p else 0.0 for _ in group.completions]
        return Verdict(None, rewards, info={"reward_rate": sum(rewards) / max(len(rewards), 1)}, train=True)

    def state_dict(self) -> dict:
        return {"rng": self.rng.getstate()}

    def load_state_dict(self, state: dict) -> None:
        if "rng" in state:
            self.rng.setstate(state["rng"])
