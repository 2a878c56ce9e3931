"""Optimizer steps on fixed batches, run by tests/test_processes.py once in this process (no launcher) and once
under `accelerate launch --multi_gpu --num_processes 2`, on the tiny Llama: grpo (KL in the reward, batch
scaling, 2 epochs) and ppo (GAE whitened over the batch) in fp32; and grpo with bf16 weights (separate fp32
master gradients, kept between steps) whose second step has one micro-batch, so rank 1 runs none and must
add zeros, not the previous step's gradients. Rank 0 writes each case's metrics and weights after its
steps to OUT/<world>-<name>.pt."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from harness import distributed
from harness.optimizers.grpo import GRPOOptimizer
from harness.optimizers.options import GRPOOptions, PPOOptions
from harness.optimizers.ppo import PPOOptimizer
from harness.types import Rollout, RolloutBatch

COMMON = {"lr": 1e-3, "kl_coef": 0.05, "ppo_epochs": 2, "micro_batch_size": 3, "bf16": False, "device": "cpu",
          "attn_implementation": "eager", "warmup_ratio": 0.0}
BF16 = {**COMMON, "bf16": True, "kl_coef": 0.0, "ppo_epochs": 1}


def batch(seed: int, size: int = 12) -> RolloutBatch:
    """`size` rollouts in groups of 4; 12 make 4 micro-batches of 3, so each of 2 ranks trains on 2."""
    rng = torch.Generator().manual_seed(seed)
    rollouts = [Rollout(f"p{i // 4}", torch.randint(1, 61, (5,), generator=rng).tolist(),
                        torch.randint(1, 61, (3 + i % 4,), generator=rng).tolist(), float(i % 3 == 0), i // 4)
                for i in range(12)]
    return RolloutBatch(rollouts[:size], temperature=0.7, max_tokens=8)


# name -> (optimizer, options, its two batches)
OPTIMIZERS = {
    "grpo": (GRPOOptimizer, GRPOOptions(**COMMON, kl_in_reward=True, scale_rewards="batch"), (12, 12)),
    "ppo": (PPOOptimizer, PPOOptions(**COMMON), (12, 12)),
    "grpo-bf16": (GRPOOptimizer, GRPOOptions(**BF16), (9, 3)),  # 3 micro-batches (2 + 1), then 1 (1 + 0)
}


def main(model: str, out: Path) -> None:
    torch.set_num_threads(1)  # the same float sums in every process
    processes = distributed.current()
    for name, (cls, options, sizes) in OPTIMIZERS.items():
        optimizer = cls(options, model, total_steps=4, seed=0)
        metrics = [optimizer.step(batch(seed, size)) for seed, size in enumerate(sizes)]
        if processes.is_main:
            weights = {k: v.detach().clone() for k, v in optimizer.state_dict()["policy"].items()}
            torch.save({"metrics": metrics, "weights": weights}, out / f"{processes.world}-{name}.pt")


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
