"""The processes of one run: one by default, N when started by `accelerate launch` (`harness run --processes N`).

Data-parallel TTRL, as the loop and the optimizers use it:
- sample: each rank samples its share of a step's problems (`shard`); a problem's whole group stays on the
  rank that samples it;
- label: the shares are gathered (`gather_shards`), so every rank labels every group: the pseudo-labels and
  the strategy's state are the same on every rank, as in one process;
- optimize: each rank runs its share of the micro-batches with the whole batch's normalisers, the gradients
  are summed across ranks (`sum_tensors`, an all-reduce, DDP's job done once per update: the fused LM head
  bypasses the module's forward that DDP hooks, and ranks may hold different numbers of micro-batches) and
  every rank makes the same AdamW update;
- log: rank 0 writes the run folder; the figures it writes are the whole batch's.

The process group is torch.distributed's (gloo on CPU, NCCL on GPU), initialised through accelerate's
`PartialState` from the environment `accelerate launch` sets. Only this module imports torch.distributed.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, TypeVar

from harness.errors import ConfigError

T = TypeVar("T")
BUCKET_ELEMENTS = 1 << 24  # 64 MB of fp32 per all-reduce: large enough to amortise, small enough to copy


class Processes:
    """One process: every collective is the identity. The interface the loop and optimizers call."""

    rank = 0
    world = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, items: Sequence[T]) -> list[T]:
        """This rank's share: a contiguous block, the blocks' sizes differing by at most one, larger blocks
        first. Contiguous keeps each rank's partial sums in the order one process adds them; only the sum
        across ranks regroups them (2 ranks over 3 micro-batches: (mb0 + mb1) + mb2, one process's order)."""
        count = len(items)
        start, end = (-(-rank * count // self.world) for rank in (self.rank, self.rank + 1))  # ceilings
        return list(items[start:end])

    def gather_shards(self, local: Sequence[T]) -> list[T]:
        """Every rank's `shard` results, concatenated in rank order (the sharded list's order), on every rank."""
        return list(local)

    def sum_tensors(self, tensors: Sequence[Any]) -> None:
        """Sum the tensors in place across ranks (same shapes and dtypes on every rank)."""

    def sum_values(self, values: dict[str, float]) -> dict[str, float]:
        """Per-key sums across ranks (a key missing on a rank counts 0 there)."""
        return dict(values)

    def broadcast(self, value: T) -> T:
        """Rank 0's `value`, on every rank."""
        return value

    def barrier(self) -> None:
        """Wait until every rank gets here."""


class TorchProcesses(Processes):
    """`world` ranks in one torch.distributed process group."""

    def __init__(self) -> None:
        import torch
        from accelerate import PartialState

        from harness.interrupts import die_with_parent

        die_with_parent()  # the launcher's agent starts each rank in its own session: no orphan if it is killed
        state = PartialState(cpu=not torch.cuda.is_available())
        if state.num_processes < 2:
            raise ConfigError("the launcher set WORLD_SIZE > 1 but accelerate found one process; start the run "
                              "with `harness run --processes N` or `accelerate launch --num_processes N`")
        self.rank, self.world = state.process_index, state.num_processes

    def gather_shards(self, local: Sequence[T]) -> list[T]:
        import torch.distributed as dist

        parts: list[Any] = [None] * self.world
        dist.all_gather_object(parts, list(local))
        return [item for part in parts for item in part]

    def sum_tensors(self, tensors: Sequence[Any]) -> None:
        import torch
        import torch.distributed as dist

        bucket: list[Any] = []
        for tensor in [*tensors, None]:  # None flushes the last bucket
            if tensor is not None:
                bucket.append(tensor)
            if bucket and (tensor is None or sum(t.numel() for t in bucket) >= BUCKET_ELEMENTS):
                flat = torch.cat([t.reshape(-1) for t in bucket])
                dist.all_reduce(flat)  # grads live on the training device: gloo on CPU, NCCL on GPU
                offset = 0
                for t in bucket:
                    t.copy_(flat[offset : offset + t.numel()].view_as(t))
                    offset += t.numel()
                bucket = []

    def sum_values(self, values: dict[str, float]) -> dict[str, float]:
        import torch.distributed as dist

        parts: list[Any] = [None] * self.world
        dist.all_gather_object(parts, dict(values))
        keys = sorted({key for part in parts for key in part})
        return {key: sum(float(part.get(key, 0.0)) for part in parts) for key in keys}

    def broadcast(self, value: T) -> T:
        import torch.distributed as dist

        box = [value if self.is_main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        import torch.distributed as dist

        dist.barrier()


_current: Processes | None = None


def rank_seed(seed: int, rank: int) -> int:
    """A seed of its own for each rank's engine; rank 0 keeps the run seed (one process is rank 0). Below
    2**31: vLLM takes 32-bit seeds only."""
    from harness.samplers.common import mix_seed

    return seed if rank == 0 else mix_seed(seed, rank) % 2**31


def launched_world() -> int:
    """The process count a launcher (accelerate launch, torchrun) set for this process; 1 when none did."""
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        return 1


def current() -> Processes:
    """This process's group: TorchProcesses under a launcher with WORLD_SIZE > 1, else one process."""
    global _current
    if _current is None:
        _current = TorchProcesses() if launched_world() > 1 else Processes()
    return _current
