"""The data that flows through one TTRL step (see docs/architecture in the README)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Problem(BaseModel):
    """One benchmark problem. `answer` is the hidden gold: only the loop, metrics and `oracle` see it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, description="Stable identifier, unique within its benchmark.")
    prompt: str = Field(min_length=1, description="The problem text shown to the model.")
    answer: str = Field(description="The gold answer as published (quirks kept).")
    source: str = Field(description="Benchmark or file the problem came from.")
    metadata: dict[str, Any] = Field(default_factory=dict, description="Anything else (level, subject).")


@dataclass
class Completion:
    """One sampled answer to one prompt."""

    text: str
    token_ids: list[int]
    logprobs: list[float]  # sampler's log-prob of each generated token (behaviour policy)
    prompt_token_ids: list[int]
    finish_reason: str = "stop"


@dataclass
class Group:
    """The samples of one problem, as a strategy sees them.

    `answers[i]` is the extracted answer of `completions[i]` (None: no answer). `clusters[i]` is the index
    into `cluster_answers` of the equivalence class of `answers[i]` (grouped by the grader, not by raw
    string), None where there is no answer. `gold` is set only for strategies that declare
    `needs_gold = True` (the oracle); everyone else gets None.
    """

    problem_id: str
    prompt: str
    completions: list[Completion]
    answers: list[str | None]
    clusters: list[int | None]
    cluster_answers: list[str]
    equivalent: Callable[[str, str], bool]
    gold: str | None = None


@dataclass
class Verdict:
    """A strategy's decision for one group: a pseudo-label and one reward per sample.

    `rewards` are finite numbers in [-1, 1] (REWARD_RANGE), one per completion, in completion order.
    `train` says whether the group is trained on: None (the default) trains when there is a pseudo-label
    and abstains when it is None; True trains without a label (a control that ignores answers, such as
    random rewards); False abstains whatever the label. `info` is logged per step as `strategy/<key>`
    (the mean over the problems that report the key)."""

    pseudo_label: str | None
    rewards: list[float]
    info: dict[str, float] = field(default_factory=dict)
    train: bool | None = None

    @property
    def abstained(self) -> bool:
        return not self.train if self.train is not None else self.pseudo_label is None


REWARD_RANGE = (-1.0, 1.0)


@dataclass
class Rollout:
    """One trainable sample: prompt and completion tokens with its advantage-ready reward."""

    problem_id: str
    prompt_token_ids: list[int]
    completion_token_ids: list[int]
    reward: float
    group_index: int  # samples with the same group_index are normalized together (GRPO)
    sampler_logprobs: list[float] = field(default_factory=list)


@dataclass
class RolloutBatch:
    """Everything one optimizer step trains on, and how it was sampled (training log-probs are computed at
    the sampling temperature; `max_tokens` is the completion budget, Dr. GRPO's normaliser)."""

    rollouts: list[Rollout]
    temperature: float = 1.0
    max_tokens: int | None = None

    def __len__(self) -> int:
        return len(self.rollouts)
