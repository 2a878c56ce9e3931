"""Learning-rate schedule: linear warmup, then cosine decay to zero over the run's steps."""

from __future__ import annotations

import math


def lr_at(step: int, total_steps: int, warmup_ratio: float, base_lr: float) -> float:
    """The learning rate of update number `step` (0-based) in a run of `total_steps` updates.

    Warmup lasts int(warmup_ratio * total_steps) updates (verl's rounding) and starts at base/warmup, not
    at zero, so no update is wasted. The cosine then falls from base to 0 at `total_steps` (the last
    update still moves); steps past the end keep lr 0.
    """
    total = max(1, total_steps)
    warmup = int(warmup_ratio * total)
    if step < warmup:
        return base_lr * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return base_lr * 0.5 * (1.0 + math.cos(math.pi * progress))
