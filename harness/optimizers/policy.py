"""What every policy-gradient optimizer here shares: the trainable HF policy with fp32 masters, the frozen
reference, AdamW, the completion-only forward pass at the sampling temperature, and checkpoints.

`grpo.py` and `ppo.py` subclass `PolicyOptimizer` and write only their `step`. Extra trainable modules (PPO's
value head) join through `_extra_modules`: their fp32 parameters are updated, clipped and checkpointed with
the policy's, and never sent to the sampler.
"""

from __future__ import annotations

import copy
import math
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor, nn

from harness import distributed
from harness.errors import ConfigError, DataError
from harness.interfaces import Optimizer
from harness.optimizers.batching import MicroBatch, validate_rollouts
from harness.optimizers.losses import (
    HeadWorkspace,
    TokenLoss,
    chunked_token_logprobs,
    clipped_policy_loss,
    kl_estimate,
)
from harness.optimizers.options import TrainingOptions
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


class PolicyOptimizer(Optimizer):
    """Base of the built-in optimizers; subclasses implement `step` (and may add `_extra_modules`)."""

    def __init__(self, options: TrainingOptions, model_path: str, total_steps: int, seed: int = 0) -> None:
        super().__init__(options, model_path, total_steps, seed)
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
        self.extra = nn.ModuleDict(self._extra_modules()).to(self.device, torch.float32)
        groups = [{"params": self._master, "lr": options.lr}, *self._extra_param_groups()]
        self.adamw = torch.optim.AdamW(
            groups,
            lr=options.lr,
            betas=options.adam_betas,
            eps=options.adam_eps,
            weight_decay=options.weight_decay,
            fused=True,  # one kernel for all parameters, on CPU and CUDA
        )
        for group in self.adamw.param_groups:
            group["peak_lr"] = group["lr"]
        self._workspace = HeadWorkspace()
        self.processes = distributed.current()  # one process, or the ranks of `harness run --processes N`
        self._grads_pending = False
        self._temperature = 1.0
        self.step_count = 0
        config = self.policy.config
        self._vocab_size = int(config.vocab_size)
        self._max_positions = int(getattr(config, "max_position_embeddings", 1 << 30))

    def _extra_modules(self) -> dict[str, nn.Module]:
        """Trainable modules beside the policy (none by default)."""
        return {}

    def _extra_param_groups(self) -> list[dict[str, Any]]:
        """AdamW parameter groups of `self.extra` (default: one group at the policy's learning rate)."""
        params = list(self.extra.parameters())
        return [{"params": params, "lr": self.options.lr}] if params else []

    # ---- shared pieces of a step ----------------------------------------------------------------------

    def _start_step(self, batch: RolloutBatch) -> tuple[list[Rollout], float]:
        """Validate the batch, adopt its sampling temperature, set this update's learning rate; (rollouts, lr)."""
        rollouts = list(batch.rollouts)
        validate_rollouts(rollouts, self._vocab_size, self._max_positions)
        if not (math.isfinite(batch.temperature) and batch.temperature > 0):
            raise DataError(f"batch temperature {batch.temperature!r} must be a positive number (the sampling one)")
        self._temperature = float(batch.temperature)
        lr = lr_at(self.step_count, self.total_steps, self.options.warmup_ratio, self.options.lr)
        for group in self.adamw.param_groups:
            group["lr"] = group["peak_lr"] * lr / self.options.lr
        return rollouts, lr

    def _normalisers(self, rollouts: list[Rollout], batch: RolloutBatch) -> tuple[float, float, float]:
        """(completion tokens, sequences, Dr. GRPO scale) of the whole batch: skipped groups count too, as in
        TRL and verl, so the step size does not depend on how many groups agreed."""
        lengths = [len(r.completion_token_ids) for r in rollouts if r.completion_token_ids]
        scale = self.options.loss_scale_factor or batch.max_tokens or max(lengths, default=1)
        return float(sum(lengths)), float(len(lengths)), float(scale)

    @property
    def _clip(self) -> tuple[float, float | None, float | None]:
        return self.options.clip_eps, self.options.clip_eps_high, self.options.clip_ratio_c

    def _token_loss(
        self, advantages: Tensor, old_logp: Tensor | None, ref_logp: Tensor | None, weights: Tensor
    ) -> TokenLoss:
        """The per-token loss the fused head differentiates: PPO-clip (clip-higher, dual clip) + kl_coef * KL
        when the KL is in the loss - entropy_coef * entropy, times the aggregation weight. `old_logp` None is
        on-policy: ratio = exp(logp - logp.detach()) = 1, with the right gradient."""
        opts = self.options

        def token_loss(logp: Tensor, entropy: Tensor, chunk: slice) -> Tensor:
            old = logp.detach() if old_logp is None else old_logp[chunk]
            loss, _ = clipped_policy_loss(logp, old, advantages[chunk], *self._clip)
            if ref_logp is not None:
                loss = loss + opts.kl_coef * kl_estimate(logp, ref_logp[chunk], opts.kl_estimator)
            if opts.entropy_coef != 0.0:
                loss = loss - opts.entropy_coef * entropy
            return loss * weights[chunk]

        return token_loss

    def _record_policy_metrics(
        self, advantages: Tensor, logp: Tensor, old_logp: Tensor | None, ref_logp: Tensor | None, entropy: Tensor,
        weights: Tensor, num_tokens: float, sums: dict[str, float],
    ) -> None:
        """Add one micro-batch's pg_loss, kl, entropy and clip_fraction to `sums`, from the detached log-probs:
        a cheap [n]-sized recomputation of the loss pieces. `old_logp` None is on-policy."""
        per_token, clipped = clipped_policy_loss(logp, logp if old_logp is None else old_logp, advantages,
                                                 *self._clip)
        sums["pg_loss"] += float((per_token * weights).sum())
        if ref_logp is not None:
            sums["kl"] += float(kl_estimate(logp, ref_logp, self.options.kl_estimator).sum()) / num_tokens
        sums["entropy"] += float(entropy.sum()) / num_tokens
        sums["clip_fraction"] += float(clipped.sum()) / num_tokens

    def _completion_hidden(self, model: nn.Module, mb: MicroBatch) -> Tensor:
        """Final hidden states at the positions that predict completion tokens, flat [n, d]."""
        hidden = model.get_decoder()(input_ids=mb.input_ids, use_cache=False).last_hidden_state
        return hidden.reshape(-1, hidden.shape[-1]).index_select(0, mb.gather_index)

    def _tempered(self, hidden: Tensor) -> Tensor:
        """The LM head's input for logits / T (TRL and verl): the ratio and the KL then compare the
        distributions the samples were drawn from. (hidden / T) @ W.T = (hidden @ W.T) / T."""
        return hidden if self._temperature == 1.0 else hidden / self._temperature

    @torch.no_grad()
    def _frozen_logprobs(self, model: nn.Module, micro_batches: list[MicroBatch]) -> list[Tensor]:
        head = model.get_output_embeddings().weight
        with self._precision():
            return [
                chunked_token_logprobs(
                    self._tempered(self._completion_hidden(model, mb)),
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

    def _sum_grads_across_processes(self) -> None:
        """Data-parallel runs: sum every rank's gradients, so that each rank holds the whole batch's (the loss
        terms are already divided by the whole batch's normalisers) and makes the same update. A rank that ran
        no micro-batch this update contributes zeros."""
        if self.processes.world == 1:
            return
        separate_masters = self._master is not self._model_params
        for master in self._master:
            if master.grad is None:
                master.grad = torch.zeros_like(master)
            elif separate_masters and not self._grads_pending:
                master.grad.zero_()  # the persistent fp32 buffers still hold the previous update's sums
        for param in self.extra.parameters():  # set to None after every update
            if param.grad is None:
                param.grad = torch.zeros_like(param)
        self.processes.sum_tensors([param.grad for param in [*self._master, *self.extra.parameters()]])

    def _summed_over_processes(
        self, sums: dict[str, float], micro_batches: list[MicroBatch], global_keys: tuple[str, ...]
    ) -> dict[str, float]:
        """The step's figures for the whole batch: each rank summed its own micro-batches' loss figures (weighted
        by the whole batch's normalisers) and counts; `global_keys` are already the whole batch's on every rank."""
        same_everywhere = {key: sums.pop(key) for key in global_keys if key in sums}
        sums["tokens"] = float(sum(mb.num_tokens for mb in micro_batches))
        sums["trained_sequences"] = float(sum(len(mb.rollout_indices) for mb in micro_batches))
        return defaultdict(float, {**self.processes.sum_values(sums), **same_everywhere})

    def _apply_update(self) -> float:
        """Clip, AdamW step, sync bf16 copies. A non-finite gradient norm skips the update (weights kept)."""
        self._sum_grads_across_processes()
        extra = list(self.extra.parameters())
        norm = float(torch.nn.utils.clip_grad_norm_(self._master + extra, self.options.max_grad_norm, foreach=True))
        if torch.isfinite(torch.tensor(norm)):
            self.adamw.step()
            self._sync_model_weights()
        if self._master is self._model_params:
            self.adamw.zero_grad(set_to_none=True)
        for param in extra:
            param.grad = None
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
            "extra": {name: tensor.detach().to("cpu", copy=True) for name, tensor in self.extra.state_dict().items()},
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
            raise DataError(
                f"optimizer checkpoint is not a {self.name} state (format {STATE_FORMAT}); resume from another"
            )
        absent = [key for key in ("step", "policy", "optimizer", "rng") if key not in state]
        if absent:
            raise DataError(f"optimizer checkpoint has no {absent[0]!r} entry; it is incomplete: resume from another")
        weights = state["policy"]
        self._check_checkpoint_weights(weights)
        extra = state.get("extra", {})
        expected = self.extra.state_dict()
        if not isinstance(extra, dict) or set(extra) != set(expected) or any(
            not isinstance(extra[k], Tensor) or extra[k].shape != v.shape for k, v in expected.items()
        ):
            raise DataError(
                f"optimizer checkpoint holds {sorted(extra) if isinstance(extra, dict) else extra!r} beside the "
                f"policy, this {self.name} optimizer needs {sorted(expected)}: resume with the same --optimizer"
            )
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
            self.extra.load_state_dict(extra)
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
