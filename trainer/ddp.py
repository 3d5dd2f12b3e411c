"""More than one process: the same training entry under torchrun with DistributedDataParallel.

torchrun sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT; with those present the
process group starts (NCCL on GPUs, gloo on CPUs). Every rank assembles the same dataset and split
(both are deterministic); the training batches are sharded with a DistributedSampler; rank 0 alone
logs, evaluates, writes the run folder and exports, and tells the others what it decided.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def broadcast(self, value: Any) -> Any:
        """Rank 0's `value` on every rank (any picklable object)."""
        if not self.enabled:
            return value
        box = [value if self.is_main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def device(self, requested: str) -> torch.device:
        if requested.startswith("cuda") and self.enabled:
            return torch.device("cuda", self.local_rank)
        return torch.device(requested)


def from_environment(requested_device: str = "cpu") -> DistContext:
    """A started process group when torchrun launched us with WORLD_SIZE > 1, else single-process."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistContext()
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    backend = "nccl" if requested_device.startswith("cuda") and torch.cuda.is_available() else "gloo"
    if not dist.is_initialized():
        if backend == "nccl":
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend=backend, timeout=timedelta(minutes=30))
    log.info("distributed: rank %d of %d (%s)", rank, world_size, backend)
    return DistContext(rank=rank, world_size=world_size, local_rank=local_rank, backend=backend)


def shutdown(context: DistContext) -> None:
    if context.enabled and dist.is_initialized():
        dist.destroy_process_group()
