"""GRPO in plain torch + transformers: the `grpo` optimizer plugin.

One `step` = group-baseline advantages (advantages.py), PPO-clip loss (+ KL to a frozen reference, in the
loss or in the reward) over length-sorted micro-batches with gradient accumulation, normalised over the
whole batch, gradient clipping, one AdamW update per PPO epoch. Log-probs are computed at the sampling
temperature. Speed: logits only at completion positions, through a chunked LM head fused with the loss
(losses.py); groups whose rewards are all equal are not run where their loss is exactly 0; with
ppo_epochs == 1 the old log-probs are the current ones detached (TRL does the same).
"""

from __future__ import annotations

import time
from collections import defaultdict

import torch
from torch import Tensor

from harness.optimizers.advantages import compute_advantages, groups_with_signal
from harness.optimizers.batching import MicroBatch, build_micro_batches, with_advantages
from harness.optimizers.losses import fused_head_loss, kl_estimate, token_weights
from harness.optimizers.options import GRPOOptions
from harness.optimizers.policy import PolicyOptimizer
from harness.types import RolloutBatch


class GRPOOptimizer(PolicyOptimizer):
    """Group Relative Policy Optimization on a transformers causal LM (TTRL's trainer)."""

    name = "grpo"
    Options = GRPOOptions
    data_parallel = True  # micro-batches shared out across ranks, gradients summed (harness.distributed)
    options: GRPOOptions

    # ---- the update -------------------------------------------------------------------------------

    def step(self, batch: RolloutBatch) -> dict[str, float]:
        started = time.perf_counter()
        opts = self.options
        rollouts, lr = self._start_step(batch)
        rewards = torch.tensor([float(r.reward) for r in rollouts], dtype=torch.float64)
        groups = torch.tensor([int(r.group_index) for r in rollouts], dtype=torch.long)
        run = self._rollouts_to_run(rewards, groups)
        # every rank holds the whole batch; in a data-parallel run each trains on its share of the micro-batches
        every_micro_batch = build_micro_batches(rollouts, run, opts.micro_batch_size)
        micro_batches = [mb.to(self.device) for mb in self.processes.shard(every_micro_batch)]
        reference = self._frozen_logprobs(self.reference, micro_batches) if self.reference else None
        # Old log-probs need their own pass only off-policy or for a KL in the reward; on-policy they are the
        # current ones detached (TRL does the same), so no extra forward pass.
        old = self._frozen_logprobs(self.policy, micro_batches) if opts.ppo_epochs > 1 or opts.kl_in_reward else None
        sums: dict[str, float] = defaultdict(float)
        if opts.kl_in_reward and reference is not None and old is not None:
            rewards = rewards - opts.kl_coef * self._sequence_kl(micro_batches, old, reference, len(rollouts), sums)
        advantages = compute_advantages(rewards, groups, opts.advantage_estimator, opts.reward_scaling,
                                        opts.advantage_eps)
        micro_batches = [with_advantages(mb, advantages) for mb in micro_batches]
        if every_micro_batch:
            self._train(micro_batches, reference, old, self._normalisers(rollouts, batch), sums)
        sums = self._summed_over_processes(sums, micro_batches, ("grad_norm", "reward_kl"))
        self.step_count += 1
        return self._step_metrics(sums, bool(every_micro_batch), rewards, advantages, groups, run, lr, started)

    def _rollouts_to_run(self, rewards: Tensor, groups: Tensor) -> list[int]:
        """Indices of the rollouts that get a forward pass. A group whose rewards are all equal has advantage
        0; it is skipped only where that changes nothing (no KL or entropy term in the loss) or where
        `skip_equal_reward_groups` says so. A KL in the reward needs every sequence's log-probs."""
        opts = self.options
        loss_moves_all = opts.kl_in_loss or opts.entropy_coef != 0.0
        if opts.kl_in_reward or (loss_moves_all and not opts.skip_equal_reward_groups):
            return list(range(len(rewards)))
        signal = groups_with_signal(rewards, groups)
        return [i for i in range(len(rewards)) if int(groups[i]) in signal]

    def _sequence_kl(
        self, micro_batches: list[MicroBatch], old: list[Tensor], reference: list[Tensor], size: int,
        sums: dict[str, float],
    ) -> Tensor:
        """Per-rollout sum of the per-token KL(old policy || reference) (verl's KL-in-reward penalty)."""
        totals = torch.zeros(size, dtype=torch.float64)
        tokens = 0
        for mb, old_k, ref_k in zip(micro_batches, old, reference, strict=True):
            kl = kl_estimate(old_k, ref_k, self.options.kl_estimator).double().cpu()
            per_row = torch.zeros(len(mb.rollout_indices), dtype=torch.float64).index_add_(0, mb.seq_ids.cpu(), kl)
            totals[mb.rollout_indices] = per_row
            sums["reward_kl"] += float(kl.sum())
            tokens += int(kl.numel())
        # each rank computed its own micro-batches' rows (zeros elsewhere): the sums are the whole batch's
        self.processes.sum_tensors([totals])
        whole = self.processes.sum_values({"kl": sums["reward_kl"], "tokens": float(tokens)})
        sums["reward_kl"] = whole["kl"] / whole["tokens"] if whole["tokens"] else 0.0
        return totals

    def _step_metrics(
        self, sums: dict[str, float], trained: bool, rewards: Tensor, advantages: Tensor,
        groups: Tensor, run: list[int], lr: float, started: float,
    ) -> dict[str, float]:
        seconds = time.perf_counter() - started
        tokens = sums["tokens"]
        epochs = self.options.ppo_epochs if trained else 1
        metrics = {key: sums[key] / epochs for key in ("loss", "pg_loss", "kl", "entropy", "clip_fraction")}
        if self.options.kl_in_reward:
            metrics["kl"] = sums["reward_kl"]  # computed once per step, before the update
        ran_groups = {int(groups[i]) for i in run}
        metrics.update(
            grad_norm=sums["grad_norm"] / epochs,
            lr=lr,
            advantage_mean=float(advantages.mean()) if len(rewards) else 0.0,
            advantage_std=float(advantages.std(unbiased=False)) if len(rewards) else 0.0,
            reward_mean=float(rewards.mean()) if len(rewards) else 0.0,
            tokens=tokens,
            trained_sequences=sums["trained_sequences"],
            skipped_groups=float(len(set(groups.tolist())) - len(ran_groups)),
            seconds=seconds,
            tokens_per_second=tokens / seconds if seconds > 0 else 0.0,
        )
        return metrics

    def _train(
        self, micro_batches: list[MicroBatch], reference: list[Tensor] | None, old: list[Tensor] | None,
        normalisers: tuple[float, float, float], sums: dict[str, float],
    ) -> None:
        for _ in range(self.options.ppo_epochs):
            for k, mb in enumerate(micro_batches):
                ref_k = reference[k] if reference is not None and self.options.kl_in_loss else None
                old_k = old[k] if old is not None else None
                self._train_micro_batch(mb, ref_k, old_k, normalisers, sums)
            sums["grad_norm"] += self._apply_update()

    def _train_micro_batch(
        self,
        mb: MicroBatch,
        ref_logp: Tensor | None,
        old_logp: Tensor | None,
        normalisers: tuple[float, float, float],
        sums: dict[str, float],
    ) -> None:
        opts = self.options
        num_tokens, num_seqs, scale = normalisers
        weights = token_weights(mb.seq_ids, opts.aggregation, num_tokens, num_seqs, scale)
        token_loss = self._token_loss(mb.advantages, old_logp, ref_logp, weights)

        with self._precision():
            hidden = self._tempered(self._completion_hidden(self.policy, mb))
            head = self.policy.get_output_embeddings().weight
            loss, logp, entropy = fused_head_loss(
                hidden, head, mb.targets, token_loss, opts.logits_chunk_size, self._workspace
            )
        loss.backward()
        self._accumulate_master_grads()
        sums["loss"] += float(loss.detach())
        self._record_policy_metrics(mb.advantages, logp, old_logp, ref_logp, entropy, weights, num_tokens, sums)
