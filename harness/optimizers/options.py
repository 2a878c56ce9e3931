"""The GRPO optimizer's options (no torch import: the CLI validates configs without loading models)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# verl's `loss_agg_mode` values, then TRL's `loss_type` names for the same aggregations (TRL's `bnpo` normalises
# by the tokens of one micro-batch, which equals the whole batch's token mean when the batch is one micro-batch).
AGGREGATIONS = ("token-mean", "token-sum", "seq-mean-token-mean", "seq-mean-token-sum", "seq-mean-token-sum-norm")
TRL_LOSS_TYPES = {
    "grpo": "seq-mean-token-mean",
    "bnpo": "token-mean",
    "dapo": "token-mean",
    "dr_grpo": "seq-mean-token-sum-norm",
}
LossAggregation = Literal[
    "token-mean", "token-sum", "seq-mean-token-mean", "seq-mean-token-sum", "seq-mean-token-sum-norm",
    "grpo", "bnpo", "dapo", "dr_grpo",
]


class TrainingOptions(BaseModel):
    """Options every built-in policy optimizer (grpo, ppo) shares: AdamW, clipping, KL, batching, precision."""

    model_config = ConfigDict(extra="forbid")

    lr: float = Field(
        3e-5, gt=0, le=1, description="Peak AdamW learning rate (tuned for the 135M embedded model on the default "
        "arith run, docs/results.md; TTRL 7B: 5e-7)."
    )
    weight_decay: float = Field(0.01, ge=0, description="AdamW decoupled weight decay, on every parameter.")
    adam_betas: tuple[float, float] = Field((0.9, 0.999), description="AdamW (beta1, beta2), each in [0, 1).")
    adam_eps: float = Field(1e-8, gt=0, description="AdamW epsilon.")
    warmup_ratio: float = Field(
        0.03, ge=0, lt=1, description="Share of total_steps with linear warmup before the cosine decay."
    )
    max_grad_norm: float = Field(1.0, gt=0, description="Clip the global gradient norm to this value.")
    clip_eps: float = Field(0.2, gt=0, lt=1, description="PPO ratio clip: ratio kept in [1 - eps, 1 + eps].")
    clip_eps_high: float | None = Field(
        None, gt=0, description="Upper clip (ratio <= 1 + clip_eps_high, DAPO 'clip higher'); None: clip_eps."
    )
    clip_ratio_c: float | None = Field(
        3.0, gt=1, description="Dual clip (verl's clip_ratio_c): with a negative advantage the loss is at most "
        "-A * clip_ratio_c, however large the ratio; None: off (TRL has none)."
    )
    kl_coef: float = Field(
        0.001, ge=0, description="Weight of the KL to the frozen reference (in the loss, or in the reward with "
        "kl_in_reward); 0 loads no reference model."
    )
    kl_estimator: Literal["k1", "k2", "k3"] = Field(
        "k3", description="Per-token KL estimate (Schulman): k1 = log p - log ref, k2 = (log p - log ref)^2 / 2, "
        "k3 = exp(ref - p) - (ref - p) - 1, clamped to [-10, 10] as verl's low_var_kl."
    )
    kl_in_reward: bool = Field(
        False, description="Subtract kl_coef * (sum of the sequence's per-token KL) from its reward before the "
        "advantages (verl's use_kl_in_reward) instead of adding the KL to the loss."
    )
    entropy_coef: float = Field(
        0.0, description="Loss -= entropy_coef * entropy; positive rewards entropy, negative minimizes it."
    )
    loss_agg_mode: LossAggregation = Field(
        "token-mean", description="How per-token losses become one number: verl's loss_agg_mode values or TRL's "
        "loss_type names (grpo, bnpo, dapo, dr_grpo); TTRL: token-mean."
    )
    loss_scale_factor: int | None = Field(
        None, ge=1, description="Divisor of seq-mean-token-sum-norm (dr_grpo); None: the run's max_tokens, "
        "TRL's max_completion_length."
    )
    micro_batch_size: int = Field(
        8, ge=1, description="Sequences per forward/backward; gradients accumulate over micro-batches."
    )
    ppo_epochs: int = Field(
        1, ge=1, description="Optimizer updates per batch; > 1 computes old log-probs once, before the first."
    )
    bf16: bool = Field(True, description="bfloat16 compute (master weights and optimizer state stay fp32).")
    bf16_weights: bool | None = Field(
        None,
        description="With bf16: run the model on bf16 weight copies synced from fp32 masters (true) or on "
        "fp32 weights under torch.autocast (false). None: true on CPU (about 10% faster there), false on CUDA.",
    )
    logits_chunk_size: int = Field(
        1024, ge=1, description="Completion tokens per LM-head chunk; bounds the logits' memory."
    )
    gradient_checkpointing: bool = Field(
        False, description="Recompute decoder activations in backward (less activation memory, one more forward)."
    )
    attn_implementation: Literal["auto", "eager", "sdpa"] = Field(
        "auto",
        description="Attention kernel: auto = sdpa on CUDA, eager on CPU (faster there for short sequences, "
        "but its memory grows with length squared).",
    )
    device: str = Field("auto", description="auto (cuda if available, else cpu), cpu, cuda or cuda:N.")

    @field_validator("device")
    @classmethod
    def _known_device(cls, value: str) -> str:
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", value):
            raise ValueError("device must be auto, cpu, cuda or cuda:N")
        return value

    @field_validator("adam_betas")
    @classmethod
    def _betas_in_range(cls, value: tuple[float, float]) -> tuple[float, float]:
        if not all(0.0 <= beta < 1.0 for beta in value):
            raise ValueError("adam_betas must both lie in [0, 1), e.g. [0.9, 0.999]")
        return value

    @model_validator(mode="after")
    def _clip_high_not_below(self) -> GRPOOptions:
        if self.clip_eps_high is not None and self.clip_eps_high < self.clip_eps:
            raise ValueError(f"clip_eps_high ({self.clip_eps_high}) must be >= clip_eps ({self.clip_eps}) or unset")
        return self

    @property
    def aggregation(self) -> str:
        """The verl name of `loss_agg_mode` (TRL's names mapped)."""
        return TRL_LOSS_TYPES.get(self.loss_agg_mode, self.loss_agg_mode)

    @property
    def kl_in_loss(self) -> bool:
        return self.kl_coef > 0 and not self.kl_in_reward


class GRPOOptions(TrainingOptions):
    """Options of the `grpo` optimizer. Defaults follow the official TTRL recipe (see docs/optimizers.md)."""

    advantage_estimator: Literal["grpo", "rloo"] = Field(
        "grpo", description="Baseline of a sample's reward: its group's mean (grpo) or the mean of the other "
        "samples of its group (rloo, leave-one-out: A = (r - mean) * n / (n - 1))."
    )
    scale_rewards: Literal["group", "batch", "none"] | None = Field(
        None, description="Divide advantages by the reward std of the group, of the whole batch (TRL 'batch'), "
        "or not at all (Dr. GRPO); None: group for grpo, none for rloo. true/false read as group/none."
    )
    advantage_eps: float = Field(1e-6, gt=0, description="Added to the std before dividing (verl 1e-6, TRL 1e-4).")
    skip_equal_reward_groups: bool = Field(
        False, description="Skip the forward/backward of groups whose rewards are all equal even when a KL or "
        "entropy term in the loss would move them (faster; drops their KL and entropy gradients). They stay in "
        "the normaliser; with no such term they are always skipped, which changes nothing."
    )

    @field_validator("scale_rewards", mode="before")
    @classmethod
    def _bool_scale(cls, value: object) -> object:
        if isinstance(value, bool):  # the option's earlier boolean form
            return "group" if value else "none"
        return value

    @property
    def reward_scaling(self) -> str:
        """`scale_rewards` with its default resolved."""
        if self.scale_rewards is not None:
            return self.scale_rewards
        return "group" if self.advantage_estimator == "grpo" else "none"


class PPOOptions(TrainingOptions):
    """Options of the `ppo` optimizer: a value head on the policy's backbone, GAE, clipped value loss."""

    kl_in_reward: bool = Field(
        True, description="Subtract kl_coef * KL per token from the token rewards (classic RLHF PPO, verl's "
        "use_kl_in_reward) instead of adding the KL to the loss."
    )
    kl_estimator: Literal["k1", "k2", "k3"] = Field(
        "k1", description="Per-token KL estimate: k1 = log p - log ref (the classic PPO penalty), k2, k3."
    )
    gamma: float = Field(1.0, ge=0, le=1, description="GAE discount (1: the answer's reward reaches every token).")
    lam: float = Field(0.95, ge=0, le=1, description="GAE lambda (1: Monte-Carlo returns, 0: one-step TD).")
    vf_coef: float = Field(0.5, ge=0, description="Weight of the value loss in the shared backbone's loss.")
    cliprange_value: float = Field(
        0.5, gt=0, description="Value clip: a new value stays within old value +- this (verl's cliprange_value)."
    )
    whiten_advantages: bool = Field(
        True, description="Whiten the GAE advantages over the batch's tokens (mean 0, std 1), as verl and TRL."
    )
    value_lr: float = Field(
        1e-3, gt=0, le=1, description="Peak learning rate of the value head (it starts at zero, so it needs a "
        "larger step than the pretrained policy)."
    )
