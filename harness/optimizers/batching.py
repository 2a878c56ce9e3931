"""Rollouts -> validated, length-sorted, right-padded micro-batches with flat completion-token indices.

Right padding needs no attention mask: with causal attention a real token only sees earlier positions,
which are all real, so the model runs its fast causal path and padded positions are simply never read.
Only the hidden states that predict completion tokens are gathered (flat, no padding) for the LM head.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from harness.errors import DataError
from harness.types import Rollout

PAD_ID = 0  # any valid id: right padding is never attended by real tokens


@dataclass
class MicroBatch:
    """One forward/backward unit. Token tensors are flat over the micro-batch's completion tokens."""

    input_ids: Tensor  # [b, L]: prompt + completion[:-1], right-padded
    gather_index: Tensor  # [n]: index into the flattened [b * L] hidden states predicting each target
    targets: Tensor  # [n]: the completion tokens
    seq_ids: Tensor  # [n]: row of each target within the micro-batch
    advantages: Tensor  # [n]: the sequence advantage, repeated per token (set by `with_advantages`)
    rollout_indices: list[int]  # positions in the step's batch
    num_tokens: int  # prompt + completion tokens of the real (unpadded) sequences

    def to(self, device: torch.device) -> MicroBatch:
        return MicroBatch(
            self.input_ids.to(device),
            self.gather_index.to(device),
            self.targets.to(device),
            self.seq_ids.to(device),
            self.advantages.to(device),
            self.rollout_indices,
            self.num_tokens,
        )


def validate_rollouts(rollouts: list[Rollout], vocab_size: int, max_positions: int) -> None:
    """Raise DataError (one line, what to fix) for anything the model cannot train on."""
    for i, rollout in enumerate(rollouts):
        where = f"rollout {i} (problem {rollout.problem_id!r})"
        if not rollout.prompt_token_ids:
            raise DataError(f"{where} has no prompt tokens; every rollout needs its prompt token ids")
        if not math.isfinite(float(rollout.reward)):
            raise DataError(f"{where} has a non-finite reward {rollout.reward!r}; rewards must be numbers")
        ids = rollout.prompt_token_ids + rollout.completion_token_ids
        bad = next((t for t in ids if not isinstance(t, int) or not 0 <= t < vocab_size), None)
        if bad is not None:
            raise DataError(f"{where} has token id {bad!r} outside the vocabulary [0, {vocab_size})")
        if len(ids) > max_positions:
            raise DataError(
                f"{where} is {len(ids)} tokens, more than the model's {max_positions} positions; "
                "lower max_tokens or the prompt length"
            )


def build_micro_batches(rollouts: list[Rollout], indices: list[int], micro_batch_size: int) -> list[MicroBatch]:
    """Micro-batches of at most `micro_batch_size` sequences, longest first, to minimize padding.

    Rollouts without completion tokens carry no loss and are left out.
    """
    usable = [i for i in indices if rollouts[i].completion_token_ids]
    usable.sort(key=lambda i: len(rollouts[i].prompt_token_ids) + len(rollouts[i].completion_token_ids))
    usable.reverse()  # longest first: peak memory shows up on the first micro-batch, not mid-step
    return [
        _make_micro_batch(rollouts, usable[start : start + micro_batch_size])
        for start in range(0, len(usable), micro_batch_size)
    ]


def with_advantages(mb: MicroBatch, advantages: Tensor) -> MicroBatch:
    """`mb` with each token carrying its sequence's entry of `advantages` (indexed by position in the batch)."""
    per_sequence = advantages[mb.rollout_indices].to(device=mb.seq_ids.device, dtype=torch.float32)
    mb.advantages = per_sequence[mb.seq_ids]
    return mb


def _make_micro_batch(rollouts: list[Rollout], chosen: list[int]) -> MicroBatch:
    inputs = [rollouts[i].prompt_token_ids + rollouts[i].completion_token_ids[:-1] for i in chosen]
    width = max(len(ids) for ids in inputs)
    input_ids = torch.full((len(chosen), width), PAD_ID, dtype=torch.long)
    gather, targets, seq_ids = [], [], []
    num_tokens = 0
    for row, (i, ids) in enumerate(zip(chosen, inputs, strict=True)):
        input_ids[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        prompt_len, completion = len(rollouts[i].prompt_token_ids), rollouts[i].completion_token_ids
        # hidden state at position t predicts token t + 1: completion token k comes from prompt_len - 1 + k
        start = row * width + prompt_len - 1
        gather.append(torch.arange(start, start + len(completion)))
        targets.append(torch.tensor(completion, dtype=torch.long))
        seq_ids.append(torch.full((len(completion),), row, dtype=torch.long))
        num_tokens += prompt_len + len(completion)
    flat_targets = torch.cat(targets)
    return MicroBatch(
        input_ids,
        torch.cat(gather),
        flat_targets,
        torch.cat(seq_ids),
        torch.zeros(flat_targets.shape, dtype=torch.float32),
        list(chosen),
        num_tokens,
    )
