"""The GRPO optimizer's options (no torch import: the CLI validates configs without loading models)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class GRPOOptions(BaseModel):
    """Options of the `grpo` optimizer. Defaults follow the official TTRL recipe (see docs/optimizers.md)."""

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
    kl_coef: float = Field(
        0.001, ge=0, description="Weight of the low_var_kl (k3) loss to the frozen reference; 0 loads none."
    )
    entropy_coef: float = Field(
        0.0, description="Loss -= entropy_coef * entropy; positive rewards entropy, negative minimizes it."
    )
    scale_rewards: bool = Field(True, description="Divide advantages by the group's reward std (+ eps).")
    advantage_eps: float = Field(1e-6, gt=0, description="Added to the group std before dividing.")
    loss_agg_mode: Literal["token-mean", "seq-mean-token-mean"] = Field(
        "token-mean", description="How per-token losses become one number (TTRL: token-mean)."
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
