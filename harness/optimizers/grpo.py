"""GRPO in plain torch + transformers: the `grpo` optimizer plugin.

One `step` = group-baseline advantages (advantages.py), PPO-clip loss (+ KL to a frozen reference, in the
loss or in the reward) over length-sorted micro-batches with gradient accumulation, normalised over the
whole batch, gradient clipping, one AdamW update per PPO epoch. Log-probs are computed at the sampling
temperature. Speed: logits only at completion positions, through a chunked LM head fused with the loss
(losses.py); groups whose rewards are all equal are not run where their loss is exactly 0; with
ppo_epochs == 1 the old log-probs are the current ones detached (TRL does the same).
"""

from __future__ import annotations

import copy
import math
import time
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor, nn

from harness.errors import ConfigError, DataError
from harness.interfaces import Optimizer
from harness.optimizers.advantages import compute_advantages, groups_with_signal
from harness.optimizers.batching import MicroBatch, build_micro_batches, validate_rollouts, with_advantages
from harness.optimizers.losses import (
    HeadWorkspace,
    chunked_token_logprobs,
    clipped_policy_loss,
    fused_head_loss,
    kl_estimate,
    token_weights,
)
from harness.optimizers.options import GRPOOptions
from harness.optimizers.schedule import lr_at
from harness.types import Rollout, RolloutBatch

STATE_FORMAT = 1


def resolve_device(name: str) -> torch.device:
    """`auto` -> cuda when available, else cpu; an explicit cuda without a GPU is a ConfigError."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"optimizer device {name!r} needs a CUDA GPU and none is visible; use device=auto")
    return torch.device(name)


def load_causal_lm(
    model_path: str, dtype: torch.dtype, device: torch.device, trainable: bool, attention: str = "auto"
) -> nn.Module:
    """The HF causal LM at `model_path`, on `device`, dropout off (RL log-probs must be deterministic)."""
    from transformers import AutoModelForCausalLM  # slow import: only when a model is really loaded

    from harness.quiet import quiet_transformers

    quiet_transformers()

    try:
        if attention == "auto":
            attention = "sdpa" if device.type == "cuda" else "eager"
        model = AutoModelForCausalLM.from_pretrained(model_path, dtype=dtype, attn_implementation=attention)
    except (OSError, ValueError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ConfigError(f"cannot load model {model_path!r} for training: {first_line}") from None
    for attr in ("final_logit_softcapping", "logit_scale", "logits_scaling"):
        if getattr(model.config, attr, None) not in (None, 1, 1.0):
            raise ConfigError(
                f"model {model_path!r} scales its logits ({attr}); the grpo optimizer's fused LM head "
                "supports models whose logits are lm_head(hidden) only (Llama, Qwen2, Mistral, ...)"
            )
    model.to(device)
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0
        if hasattr(module, "attention_dropout"):
            module.attention_dropout = 0.0
    model.train(trainable)  # train mode only matters for gradient checkpointing; dropout is zeroed
    model.requires_grad_(trainable)
    return model


def _cpu_clone(value: Any) -> Any:
    """A deep copy with every tensor cloned onto the CPU (a snapshot later steps cannot change)."""
    if isinstance(value, Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, dict):
        return {key: _cpu_clone(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_cpu_clone(item) for item in value)
    return copy.deepcopy(value)


class GRPOOptimizer(Optimizer):
    """Group Relative Policy Optimization on a transformers causal LM (TTRL's trainer)."""

    name = "grpo"
    Options = GRPOOptions

    def __init__(self, options: GRPOOptions, model_path: str, total_steps: int, seed: int = 0) -> None:
        super().__init__(options, model_path, total_steps, seed)
        self.options: GRPOOptions = options
        self.device = resolve_device(options.device)
        compute_dtype = torch.bfloat16 if options.bf16 else torch.float32
        bf16_weights = options.bf16_weights if options.bf16_weights is not None else self.device.type == "cpu"
        weights_dtype = compute_dtype if bf16_weights else torch.float32
        self.policy = load_causal_lm(
            model_path, weights_dtype, self.device, trainable=True, attention=options.attn_implementation
        )
        if options.gradient_checkpointing:
            self.policy.gradient_checkpointing_enable({"use_reentrant": False})
        # kl_coef == 0: no reference model exists at all (memory and a forward pass saved)
        self.reference = (
            load_causal_lm(model_path, compute_dtype, self.device, False, options.attn_implementation)
            if options.kl_coef > 0
            else None
        )
        self._autocast = options.bf16 and not bf16_weights
        self._names = [name for name, _ in self.policy.named_parameters()]
        self._model_params = [param for _, param in self.policy.named_parameters()]
        # The optimizer always updates fp32 masters; with bf16 weights they are separate copies.
        if self._model_params[0].dtype == torch.float32:
            self._master = self._model_params
        else:
            self._master = [nn.Parameter(p.detach().float().clone()) for p in self._model_params]
        self.adamw = torch.optim.AdamW(
            self._master,
            lr=options.lr,
            betas=options.adam_betas,
            eps=options.adam_eps,
            weight_decay=options.weight_decay,
            fused=True,  # one kernel for all parameters, on CPU and CUDA
        )
        self._workspace = HeadWorkspace()
        self._grads_pending = False
        self._temperature = 1.0
        self.step_count = 0
        config = self.policy.config
        self._vocab_size = int(config.vocab_size)
        self._max_positions = int(getattr(config, "max_position_embeddings", 1 << 30))

    # ---- the update -------------------------------------------------------------------------------

    def step(self, batch: RolloutBatch) -> dict[str, float]:
        started = time.perf_counter()
        opts = self.options
        rollouts = list(batch.rollouts)
        validate_rollouts(rollouts, self._vocab_size, self._max_positions)
        if not (math.isfinite(batch.temperature) and batch.temperature > 0):
            raise DataError(f"batch temperature {batch.temperature!r} must be a positive number (the sampling one)")
        self._temperature = float(batch.temperature)
        rewards = torch.tensor([float(r.reward) for r in rollouts], dtype=torch.float64)
        groups = torch.tensor([int(r.group_index) for r in rollouts], dtype=torch.long)
        run = self._rollouts_to_run(rewards, groups)
        micro_batches = [mb.to(self.device) for mb in build_micro_batches(rollouts, run, opts.micro_batch_size)]
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
        lr = lr_at(self.step_count, self.total_steps, opts.warmup_ratio, opts.lr)
        for group in self.adamw.param_groups:
            group["lr"] = lr
        if micro_batches:
            self._train(micro_batches, reference, old, self._normalisers(rollouts, batch), sums)
        self.step_count += 1
        return self._step_metrics(sums, micro_batches, rewards, advantages, groups, run, lr, started)

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

    def _normalisers(self, rollouts: list[Rollout], batch: RolloutBatch) -> tuple[float, float, float]:
        """(completion tokens, sequences, Dr. GRPO scale) of the whole batch: skipped groups count too, as in
        TRL and verl, so the step size does not depend on how many groups agreed."""
        lengths = [len(r.completion_token_ids) for r in rollouts if r.completion_token_ids]
        scale = self.options.loss_scale_factor or batch.max_tokens or max(lengths)
        return float(sum(lengths)), float(len(lengths)), float(scale)

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
        sums["reward_kl"] = sums["reward_kl"] / tokens if tokens else 0.0
        return totals

    def _step_metrics(
        self, sums: dict[str, float], micro_batches: list[MicroBatch], rewards: Tensor, advantages: Tensor,
        groups: Tensor, run: list[int], lr: float, started: float,
    ) -> dict[str, float]:
        seconds = time.perf_counter() - started
        tokens = sum(mb.num_tokens for mb in micro_batches)
        epochs = self.options.ppo_epochs if micro_batches else 1
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
            tokens=float(tokens),
            trained_sequences=float(sum(len(mb.rollout_indices) for mb in micro_batches)),
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
        clip = (opts.clip_eps, opts.clip_eps_high, opts.clip_ratio_c)

        def token_loss(logp: Tensor, entropy: Tensor, chunk: slice) -> Tensor:
            # on-policy (old_logp None): ratio = exp(logp - logp.detach()) = 1 with the right gradient
            old = logp.detach() if old_logp is None else old_logp[chunk]
            loss, _ = clipped_policy_loss(logp, old, mb.advantages[chunk], *clip)
            if ref_logp is not None:
                loss = loss + opts.kl_coef * kl_estimate(logp, ref_logp[chunk], opts.kl_estimator)
            if opts.entropy_coef != 0.0:
                loss = loss - opts.entropy_coef * entropy
            return loss * weights[chunk]

        with self._precision():
            hidden = self._completion_hidden(self.policy, mb)
            head = self.policy.get_output_embeddings().weight
            loss, logp, entropy = fused_head_loss(
                hidden, head, mb.targets, token_loss, opts.logits_chunk_size, self._workspace
            )
        loss.backward()
        self._accumulate_master_grads()
        # metrics from the detached log-probs: cheap [n]-sized recomputation of the loss pieces
        old = logp if old_logp is None else old_logp
        per_token, clipped = clipped_policy_loss(logp, old, mb.advantages, *clip)
        sums["loss"] += float(loss.detach())
        sums["pg_loss"] += float((per_token * weights).sum())
        if ref_logp is not None:
            sums["kl"] += float(kl_estimate(logp, ref_logp, opts.kl_estimator).sum()) / num_tokens
        sums["entropy"] += float(entropy.sum()) / num_tokens
        sums["clip_fraction"] += float(clipped.sum()) / num_tokens

    def _completion_hidden(self, model: nn.Module, mb: MicroBatch) -> Tensor:
        """Final hidden states at the positions that predict completion tokens, flat [n, d]."""
        hidden = model.get_decoder()(input_ids=mb.input_ids, use_cache=False).last_hidden_state
        hidden = hidden.reshape(-1, hidden.shape[-1]).index_select(0, mb.gather_index)
        # logits / T (TRL and verl): the ratio and the KL compare the distributions the samples came from
        return hidden if self._temperature == 1.0 else hidden / self._temperature

    @torch.no_grad()
    def _frozen_logprobs(self, model: nn.Module, micro_batches: list[MicroBatch]) -> list[Tensor]:
        head = model.get_output_embeddings().weight
        with self._precision():
            return [
                chunked_token_logprobs(
                    self._completion_hidden(model, mb),
                    head,
                    mb.targets,
                    self.options.logits_chunk_size,
                    self._workspace,
                )[0]
                for mb in micro_batches
            ]

    def _precision(self) -> torch.autocast:
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self._autocast)

    def _accumulate_master_grads(self) -> None:
        """With bf16 weights, move this micro-batch's gradients into fp32 master grads (fp32 accumulation).

        The fp32 grad buffers persist across steps: re-allocating 4 bytes per parameter every step costs
        page faults on CPU. The first micro-batch of an update overwrites them, later ones add.
        """
        if self._master is self._model_params:
            return
        first = not self._grads_pending
        for master, param in zip(self._master, self._model_params, strict=True):
            if master.grad is None:
                master.grad = torch.zeros_like(master)
            if param.grad is None:
                if first:
                    master.grad.zero_()
                continue
            if first:
                master.grad.copy_(param.grad)
            else:
                master.grad.add_(param.grad)
            param.grad = None
        self._grads_pending = True

    def _apply_update(self) -> float:
        """Clip, AdamW step, sync bf16 copies. A non-finite gradient norm skips the update (weights kept)."""
        norm = float(torch.nn.utils.clip_grad_norm_(self._master, self.options.max_grad_norm, foreach=True))
        if torch.isfinite(torch.tensor(norm)):
            self.adamw.step()
            self._sync_model_weights()
        if self._master is self._model_params:
            self.adamw.zero_grad(set_to_none=True)
        self._grads_pending = False  # the next micro-batch overwrites the persistent master grads
        return norm

    @torch.no_grad()
    def _sync_model_weights(self) -> None:
        if self._master is not self._model_params:
            torch._foreach_copy_(self._model_params, self._master)

    # ---- weights and checkpoints --------------------------------------------------------------------

    def named_weights(self) -> Iterator[tuple[str, Tensor]]:
        """(HF name, bf16 tensor) per parameter, on the training device; tied lm_head is not repeated.

        The tensors may alias the live weights: a consumer that keeps them must copy.
        """
        for name, param in self.policy.named_parameters():
            yield name, param.detach().to(torch.bfloat16)

    def state_dict(self) -> dict[str, Any]:
        return {
            "format": STATE_FORMAT,
            "step": self.step_count,
            "policy": {
                name: master.detach().to("cpu", copy=True)
                for name, master in zip(self._names, self._master, strict=True)
            },
            "optimizer": _cpu_clone(self.adamw.state_dict()),
            "rng": {
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            },
            "options": self.options.model_dump(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a `state_dict()`. A checkpoint that does not fit raises DataError before anything changes."""
        if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
            raise DataError(f"optimizer checkpoint is not a grpo state (format {STATE_FORMAT}); resume from another")
        absent = [key for key in ("step", "policy", "optimizer", "rng") if key not in state]
        if absent:
            raise DataError(f"optimizer checkpoint has no {absent[0]!r} entry; it is incomplete: resume from another")
        weights = state["policy"]
        self._check_checkpoint_weights(weights)
        try:  # torch checks the parameter groups before it changes anything
            self.adamw.load_state_dict(state["optimizer"])
        except (KeyError, TypeError, ValueError) as error:
            first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise DataError(
                f"optimizer checkpoint's AdamW state does not fit this model ({first_line}); "
                "resume with the same --model and optimizer"
            ) from None
        with torch.no_grad():
            for name, master in zip(self._names, self._master, strict=True):
                master.copy_(weights[name])
        self._sync_model_weights()
        self.step_count = int(state["step"])
        torch.set_rng_state(state["rng"]["torch"])
        if state["rng"]["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])

    def _check_checkpoint_weights(self, weights: Any) -> None:
        """DataError unless `weights` holds a tensor of the right shape for exactly this model's parameters.

        Checked before any copy: `copy_` would broadcast a misshapen tensor silently (a [1] tensor fills a
        whole matrix), and a failure half-way would leave some parameters loaded and others not.
        """
        hint = "it was saved for a different model: resume with the same --model"
        if not isinstance(weights, dict):
            raise DataError(f"optimizer checkpoint's policy is a {type(weights).__name__}, not named tensors; {hint}")
        known = set(self._names)
        missing = [name for name in self._names if name not in weights]
        unexpected = [name for name in weights if name not in known]
        if missing or unexpected:
            what = f"missing {missing[0]!r}" if missing else f"unexpected {unexpected[0]!r}"
            raise DataError(f"optimizer checkpoint's policy does not match the model ({what}); {hint}")
        for name, master in zip(self._names, self._master, strict=True):
            tensor = weights[name]
            if not isinstance(tensor, Tensor) or tensor.shape != master.shape:
                found = f"shape {tuple(tensor.shape)}" if isinstance(tensor, Tensor) else type(tensor).__name__
                raise DataError(
                    f"optimizer checkpoint's {name!r} has {found}, the model's has shape {tuple(master.shape)}; {hint}"
                )

