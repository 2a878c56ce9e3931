"""PPO for language models: the `ppo` optimizer plugin.

The critic is a value head (one linear layer, zero-initialised) on the policy's own backbone: its cost is
d + 1 parameters and one matrix-vector product per token, where a separate critic model would double the
weights, the optimizer state and the forward passes. The price is that the value loss also moves the shared
backbone (weighted by `vf_coef`); verl and TRL's old PPOTrainer use a separate critic model instead.

One `step`: a frozen pass of the policy gives the old log-probs and values of every completion token; the
token rewards are 0 except the sequence's reward on its last token, minus kl_coef * KL(old || reference) on
every token when the KL is in the reward; GAE (gamma, lambda) gives advantages and returns, the advantages
are whitened over the batch; then per epoch, per micro-batch: the PPO-clip policy loss (dual clip, KL in the
loss if chosen, entropy bonus) plus vf_coef times verl's clipped value loss, one AdamW update per epoch.
"""

from __future__ import annotations

import time
from collections import defaultdict

import torch
from torch import Tensor, nn

from harness.optimizers.batching import MicroBatch, build_micro_batches
from harness.optimizers.losses import (
    chunked_token_logprobs,
    fused_head_loss,
    kl_estimate,
    token_weights,
)
from harness.optimizers.options import PPOOptions
from harness.optimizers.policy import PolicyOptimizer
from harness.types import RolloutBatch


def gae(rewards: Tensor, values: Tensor, mask: Tensor, gamma: float, lam: float) -> tuple[Tensor, Tensor]:
    """(advantages, returns) [b, T] by generalized advantage estimation over right-padded rows; padding
    (mask 0) neither receives nor passes anything back. As verl's `compute_gae_advantage_return`, unwhitened:
    delta_t = r_t + gamma V_{t+1} - V_t, A_t = delta_t + gamma lam A_{t+1}, returns = A + V."""
    advantages = torch.zeros_like(rewards)
    next_value = torch.zeros_like(rewards[:, 0])
    running = torch.zeros_like(rewards[:, 0])
    for t in reversed(range(rewards.shape[1])):
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        step = delta + gamma * lam * running
        next_value = torch.where(mask[:, t] > 0, values[:, t], next_value)
        running = torch.where(mask[:, t] > 0, step, running)
        advantages[:, t] = running
    return advantages * mask, (advantages + values) * mask


def value_loss(values: Tensor, old_values: Tensor, returns: Tensor, clip: float) -> tuple[Tensor, Tensor]:
    """Per-token clipped value loss 0.5 * max((v - R)^2, (clip(v, old +- clip) - R)^2) (verl's
    `compute_value_loss` before aggregation) and a 0/1 mask of tokens where the clipped branch is larger."""
    clipped = old_values + torch.clamp(values - old_values, -clip, clip)
    unclipped_loss, clipped_loss = (values - returns).square(), (clipped - returns).square()
    return 0.5 * torch.maximum(unclipped_loss, clipped_loss), (clipped_loss > unclipped_loss).float()


def _padded(flat: Tensor, seq_ids: Tensor, rows: int) -> tuple[Tensor, Tensor]:
    """Flat per-token values (rows contiguous, in order) -> ([rows, T] right-padded, its 0/1 mask)."""
    counts = torch.bincount(seq_ids, minlength=rows)
    starts = torch.cumsum(counts, 0) - counts
    positions = torch.arange(flat.numel(), device=flat.device) - starts[seq_ids]
    out = flat.new_zeros(rows, int(counts.max()))
    mask = flat.new_zeros(rows, int(counts.max()))
    out[seq_ids, positions] = flat
    mask[seq_ids, positions] = 1.0
    return out, mask


class PPOOptimizer(PolicyOptimizer):
    """Proximal Policy Optimization with a value head on the policy backbone (the paper's PPO ablation)."""

    name = "ppo"
    Options = PPOOptions
    data_parallel = True  # micro-batches shared out, gradients and whitening statistics summed across ranks
    options: PPOOptions

    def _extra_modules(self) -> dict[str, nn.Module]:
        head = nn.Linear(int(self.policy.config.hidden_size), 1)
        nn.init.zeros_(head.weight)  # V = 0 at the start: the first advantages are the discounted rewards
        nn.init.zeros_(head.bias)
        return {"value_head": head}

    def _extra_param_groups(self) -> list[dict]:
        return [{"params": list(self.extra.parameters()), "lr": self.options.value_lr, "weight_decay": 0.0}]

    def step(self, batch: RolloutBatch) -> dict[str, float]:
        started = time.perf_counter()
        opts = self.options
        rollouts, lr = self._start_step(batch)
        every = list(range(len(rollouts)))  # no group is skipped: each sample's value estimate matters
        # every rank holds the whole batch; in a data-parallel run each trains on its share of the micro-batches
        every_micro_batch = build_micro_batches(rollouts, every, opts.micro_batch_size)
        micro_batches = [mb.to(self.device) for mb in self.processes.shard(every_micro_batch)]
        sums: dict[str, float] = defaultdict(float)
        reference = self._frozen_logprobs(self.reference, micro_batches) if self.reference else None
        old_logp, old_values = self._frozen_policy(micro_batches)
        returns = self._advantages_and_returns(micro_batches, rollouts, old_logp, old_values, reference, sums)
        if every_micro_batch:
            normalisers = self._normalisers(rollouts, batch)
            for _ in range(opts.ppo_epochs):
                for k, mb in enumerate(micro_batches):
                    ref_k = reference[k] if reference is not None and opts.kl_in_loss else None
                    old = (old_logp[k], old_values[k], returns[k])
                    self._train_micro_batch(mb, ref_k, old, normalisers, sums)
                sums["grad_norm"] += self._apply_update()
        self.step_count += 1
        return self._step_metrics(sums, micro_batches, bool(every_micro_batch), rollouts, lr, started)

    def _step_metrics(
        self, sums: dict[str, float], micro_batches: list[MicroBatch], trained: bool, rollouts: list, lr: float,
        started: float,
    ) -> dict[str, float]:
        """The step's figures for the whole batch: each rank summed its micro-batches' (weighted by the whole
        batch's normalisers); grad_norm and the statistics of `_advantages_and_returns` are already global."""
        sums = self._summed_over_processes(sums, micro_batches, ("grad_norm", "reward_kl", "value_mean",
                                                                  "return_mean"))
        seconds = time.perf_counter() - started
        epochs = self.options.ppo_epochs if trained else 1
        keys = ("loss", "pg_loss", "vf_loss", "kl", "entropy", "clip_fraction", "vf_clip_fraction", "grad_norm")
        metrics = {key: sums[key] / epochs for key in keys}
        if self.options.kl_in_reward:
            metrics["kl"] = sums["reward_kl"]
        metrics.update(
            lr=lr, reward_mean=sum(r.reward for r in rollouts) / max(1, len(rollouts)),
            value_mean=sums["value_mean"], return_mean=sums["return_mean"], tokens=sums["tokens"],
            trained_sequences=sums["trained_sequences"], seconds=seconds,
            tokens_per_second=sums["tokens"] / seconds if seconds > 0 else 0.0,
        )
        return metrics

    @torch.no_grad()
    def _frozen_policy(self, micro_batches: list[MicroBatch]) -> tuple[list[Tensor], list[Tensor]]:
        """Old log-probs and old values of every completion token, from one no-grad pass of the policy."""
        head = self.policy.get_output_embeddings().weight
        logps, values = [], []
        with self._precision():
            for mb in micro_batches:
                hidden = self._completion_hidden(self.policy, mb)
                logps.append(chunked_token_logprobs(self._tempered(hidden), head, mb.targets,
                                                    self.options.logits_chunk_size, self._workspace)[0])
                values.append(self.extra["value_head"](hidden.float()).squeeze(-1))
        return logps, values

    def _advantages_and_returns(
        self, micro_batches: list[MicroBatch], rollouts: list, old_logp: list[Tensor], old_values: list[Tensor],
        reference: list[Tensor] | None, sums: dict[str, float],
    ) -> list[Tensor]:
        """Set each micro-batch's per-token advantages (GAE, whitened over the batch); return the returns."""
        opts = self.options
        advantages, returns, kl_total, tokens = [], [], 0.0, 0
        for k, mb in enumerate(micro_batches):
            rows = len(mb.rollout_indices)
            token_rewards = torch.zeros_like(old_values[k])
            last = torch.cumsum(torch.bincount(mb.seq_ids, minlength=rows), 0) - 1  # each row's last token
            token_rewards[last] = torch.tensor([float(rollouts[i].reward) for i in mb.rollout_indices],
                                               device=token_rewards.device)
            if opts.kl_in_reward and reference is not None:
                kl = kl_estimate(old_logp[k], reference[k], opts.kl_estimator).float()
                token_rewards = token_rewards - opts.kl_coef * kl
                kl_total, tokens = kl_total + float(kl.sum()), tokens + kl.numel()
            rewards_2d, mask = _padded(token_rewards, mb.seq_ids, rows)
            values_2d, _ = _padded(old_values[k], mb.seq_ids, rows)
            adv_2d, ret_2d = gae(rewards_2d, values_2d, mask, opts.gamma, opts.lam)
            advantages.append(adv_2d[mask > 0])
            returns.append(ret_2d[mask > 0])
        mean, std = self._batch_mean_std(advantages)
        for mb, adv in zip(micro_batches, advantages, strict=True):
            mb.advantages = (adv - mean) / (std + 1e-8) if self.options.whiten_advantages else adv
        whole = self.processes.sum_values({
            "values": sum(float(v.double().sum()) for v in old_values), "returns": sum(float(r.double().sum())
                                                                                       for r in returns),
            "tokens": float(sum(v.numel() for v in old_values)), "kl": kl_total, "kl_tokens": float(tokens)})
        sums["value_mean"] = whole["values"] / whole["tokens"] if whole["tokens"] else 0.0
        sums["return_mean"] = whole["returns"] / whole["tokens"] if whole["tokens"] else 0.0
        sums["reward_kl"] = whole["kl"] / whole["kl_tokens"] if whole["kl_tokens"] else 0.0
        return returns

    def _batch_mean_std(self, parts: list[Tensor]) -> tuple[float, float]:
        """Mean and unbiased std of every token's advantage in the whole batch (all ranks' micro-batches), in
        float64, from two rounds of sums: the mean, then the squared deviations from it."""
        first = self.processes.sum_values({"sum": sum(float(p.double().sum()) for p in parts),
                                           "count": float(sum(p.numel() for p in parts))})
        count = first["count"]
        mean = first["sum"] / count if count else 0.0
        squares = self.processes.sum_values({"sq": sum(float((p.double() - mean).square().sum()) for p in parts)})
        return mean, (squares["sq"] / (count - 1)) ** 0.5 if count > 1 else 0.0

    def _train_micro_batch(
        self, mb: MicroBatch, ref_logp: Tensor | None, old: tuple[Tensor, Tensor, Tensor],
        normalisers: tuple[float, float, float], sums: dict[str, float],
    ) -> None:
        opts = self.options
        old_logp, old_values, returns = old
        num_tokens, num_seqs, scale = normalisers
        weights = token_weights(mb.seq_ids, opts.aggregation, num_tokens, num_seqs, scale)
        token_loss = self._token_loss(mb.advantages, old_logp, ref_logp, weights)

        with self._precision():
            hidden = self._completion_hidden(self.policy, mb)
            head = self.policy.get_output_embeddings().weight
            pg_total, logp, entropy = fused_head_loss(
                self._tempered(hidden), head, mb.targets, token_loss, opts.logits_chunk_size, self._workspace
            )
        values = self.extra["value_head"](hidden.float()).squeeze(-1)
        vf, vf_clipped = value_loss(values, old_values, returns, opts.cliprange_value)
        vf_total = (vf * weights).sum()
        (pg_total + opts.vf_coef * vf_total).backward()
        self._accumulate_master_grads()
        self._record_policy_metrics(mb.advantages, logp, old_logp, ref_logp, entropy, weights, num_tokens, sums)
        sums["loss"] += float(pg_total.detach()) + opts.vf_coef * float(vf_total.detach())
        sums["vf_loss"] += float(vf_total.detach())
        sums["vf_clip_fraction"] += float(vf_clipped.sum()) / num_tokens
