"""Data-parallel fine-tuning under ``torchrun``: one process per GPU (or per CPU worker, gloo).

``torchrun --nproc_per_node N -m shared.cli train sentiment ...`` sets ``WORLD_SIZE``,
``RANK`` and ``LOCAL_RANK``; without them training runs in one process as before. Every
rank sees the same batch order and takes its own share of each epoch, and DDP averages
the gradients. Rank 0 evaluates, checkpoints and registers; whatever depends on the
clock or on dev scores (the re-planned schedule, stopping) is decided there and
broadcast, so the ranks never disagree on how many gradient all-reduces remain.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Ranks:
    """This process's place in the job; the defaults are a plain single-process run."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1

    def shard(self, batches: list[T]) -> list[T]:
        """This rank's batches: every ``world``-th one, the same count on every rank."""
        usable = len(batches) // self.world * self.world
        return batches[self.rank:usable:self.world] if self.active else batches

    def broadcast(self, value: T) -> T:
        """Rank 0's ``value`` on every rank (a no-op in a single process)."""
        if not self.active:
            return value
        import torch.distributed as dist

        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def wrap(self, model: Any, device: str) -> Any:
        """The model DDP-wrapped for the forward/backward pass (itself when not distributed)."""
        if not self.active:
            return model
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(model, device_ids=[self.local_rank] if device == "cuda" else None)

    def close(self) -> None:
        if self.active:
            import torch.distributed as dist

            dist.destroy_process_group()


def init_ranks(device: str) -> Ranks:
    """Join the torchrun job when there is one: NCCL on CUDA, gloo on CPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Ranks()
    import torch
    import torch.distributed as dist

    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device == "cuda":
        torch.cuda.set_device(local_rank)  # "cuda" now means this rank's GPU
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device == "cuda" else "gloo")
    return Ranks(dist.get_rank(), dist.get_world_size(), local_rank)


class Silent:
    """Stands in for rank 0's TensorBoard writer on the other ranks."""

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None
