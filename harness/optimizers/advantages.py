"""Advantages of outcome rewards: GRPO's group baseline, RLOO's leave-one-out baseline, and the scaling.

Conventions and sources (docs/optimizers.md has the table): the std is the unbiased one, as in verl's
`compute_grpo_outcome_advantage` and TRL's `nanstd`; `batch` scaling divides by the std of every reward of the
batch, as TRL's `scale_rewards="batch"`; RLOO is verl's `compute_rloo_outcome_advantage`. One deliberate
difference from verl: a group of one sample gets advantage 0 (it has no baseline), where verl passes its raw
reward through.
"""

from __future__ import annotations

import torch
from torch import Tensor


def compute_advantages(
    rewards: Tensor, group_index: Tensor, estimator: str = "grpo", scaling: str = "group", eps: float = 1e-6
) -> Tensor:
    """One advantage per sample (fp32). Groups are the samples sharing a `group_index` (any integers, order).

    grpo: reward minus its group's mean; rloo: reward minus the mean of the group's other samples, which is
    (reward - mean) * n / (n - 1). Then divided by std + eps, where std is the group's (`group`), the batch's
    (`batch`), or not at all (`none`). A group whose rewards are all equal, or of one sample, gets exactly 0.
    """
    rewards = rewards.to(torch.float64)
    advantages = torch.zeros_like(rewards)
    for value in torch.unique(group_index):
        members = group_index == value
        group = rewards[members]
        if group.numel() < 2 or bool((group == group[0]).all()):
            continue  # no baseline to compare against: zero advantage
        centered = group - group.mean()
        if estimator == "rloo":
            centered = centered * group.numel() / (group.numel() - 1)
        elif estimator != "grpo":
            raise ValueError(f"unknown advantage estimator {estimator!r}; use grpo or rloo")
        if scaling == "group":
            centered = centered / (group.std() + eps)
        advantages[members] = centered
    if scaling == "batch" and rewards.numel() > 1:
        advantages = advantages / (rewards.std() + eps)
    elif scaling not in ("group", "batch", "none"):
        raise ValueError(f"unknown reward scaling {scaling!r}; use group, batch or none")
    return advantages.to(torch.float32)


def groups_with_signal(rewards: Tensor, group_index: Tensor) -> set[int]:
    """The groups whose rewards are not all equal: the only ones with a nonzero advantage."""
    return {
        int(value)
        for value in torch.unique(group_index)
        if bool((rewards[group_index == value] != rewards[group_index == value][0]).any())
    }
