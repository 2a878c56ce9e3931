"""Collapse watch: follow one label-free figure of each step, remember the best step, stop when it stalls.

TTRL trains on its own votes, so a run can collapse: the policy agrees with itself more and more (majority
ratio up, distinct answers and entropy down) whether or not the agreed answer is right. No gold is available
at test time, so the rule that stops a run or picks its best checkpoint may only read label-free figures
(harness.metrics.LABEL_FREE); the gold-based ones stay diagnostics.

A step's figures come from samples of the policy as it was when the step began (before its update), so the
best step's policy is the one saved *before* that step's update. The watch holds no state of its own: on
resume it is rebuilt by replaying the finished steps' records.
"""

from __future__ import annotations

from statistics import fmean
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from harness.metrics import LABEL_FREE


class WatchConfig(BaseModel):
    """Which label-free figure decides the best step, and when a stalled run stops."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    metric: str = Field("majority_ratio", description="Label-free step figure that ranks steps: one of "
                        f"{', '.join(LABEL_FREE)}, or a strategy/<key> figure.")
    mode: Literal["max", "min"] = Field("max", description="Whether a larger or a smaller value is better.")
    window: int = Field(1, ge=1, description="Rank by the mean over this many recent steps (steps see "
                        "different problems; a window of one epoch compares like with like).")
    min_delta: float = Field(0.0, ge=0, description="A new best must beat the old one by more than this.")
    patience: int = Field(0, ge=0, description="Stop when the figure has not improved for this many steps "
                          "(0: never stop early).")
    keep_best: bool = Field(False, description="Save the best step's policy in best/ and evaluate it after "
                            "training, reported beside the last step's evaluation.")

    @field_validator("metric")
    @classmethod
    def _label_free(cls, value: str) -> str:
        if value not in LABEL_FREE and not value.startswith("strategy/"):
            raise ValueError(f"{value!r} is not a label-free step figure; pick one of {', '.join(LABEL_FREE)} "
                             "(figures such as label_accuracy or pass_at_1 read the gold, unknown at test time)")
        return value

    @property
    def active(self) -> bool:
        return self.keep_best or self.patience > 0


class Watch:
    """Feed it each step's record in order; it says whether that step is the best so far and when to stop."""

    def __init__(self, config: WatchConfig) -> None:
        self.config = config
        self.values: list[float] = []
        self.best_step: int | None = None
        self.best_value: float | None = None
        self.last_step: int | None = None

    def observe(self, record: dict) -> bool:
        """Take the record of one step (its label-free figures); True when this step is the new best."""
        if self.config.metric not in record:
            return False  # e.g. a step where every problem abstained reports no strategy/<key>
        self.values.append(float(record[self.config.metric]))
        self.last_step = record["step"]
        value = fmean(self.values[-self.config.window:])
        sign = 1.0 if self.config.mode == "max" else -1.0
        if self.best_value is None or sign * (value - self.best_value) > self.config.min_delta:
            self.best_step, self.best_value = record["step"], value
            return True
        return False

    def should_stop(self) -> bool:
        """Whether `patience` steps have passed since the best one."""
        if not self.config.patience or self.best_step is None or self.last_step is None:
            return False
        return self.last_step - self.best_step >= self.config.patience

    def stop_message(self) -> str:
        return (f"collapse watch: {self.config.metric} has not improved for {self.config.patience} steps "
                f"(best {self.best_value:.3f} at step {self.best_step}); stopping after step {self.last_step}")


def replay(config: WatchConfig, records: list[dict]) -> Watch:
    """The watch as it stood after the given finished steps (used on resume)."""
    watch = Watch(config)
    for record in records:
        watch.observe(record)
    return watch
