"""Multi-process training under ``torchrun`` (torch.distributed; NCCL on GPUs, gloo on CPU).

``torchrun`` sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``; :func:`init_distributed` reads
them. Without them everything here is a no-op for a single process. Collective calls carry a
timeout, so a rank that dies makes the others fail within bounded time instead of hanging.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from reid.errors import ReidError


@dataclass(frozen=True)
class DistContext:
    """This process's place in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0 alone writes logs, metrics, checkpoints and summaries."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        """True when more than one process takes part."""
        return self.world_size > 1


def init_distributed(device: str = "auto", timeout_s: float | None = None) -> DistContext:
    """Join the process group that ``torchrun`` describes in the environment (or stay single-process).

    The backend is NCCL when the run uses CUDA and gloo otherwise. The collective timeout is
    ``timeout_s`` or ``$REID_DIST_TIMEOUT`` (default 120 s).
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = device != "cpu" and torch.cuda.is_available()
    if use_cuda:
        torch.cuda.set_device(local_rank)
    timeout = timedelta(seconds=timeout_s or float(os.environ.get("REID_DIST_TIMEOUT", "120")))
    if not dist.is_initialized():
        try:
            dist.init_process_group("nccl" if use_cuda else "gloo", timeout=timeout)
        except (RuntimeError, ValueError) as e:
            raise ReidError(f"could not join the process group ({e})".splitlines()[0], where="torchrun",
                            fix="check --nnodes/--rdzv-endpoint and that every node can reach the endpoint") from None
    return DistContext(rank=rank, world_size=world, local_rank=local_rank)


def shard_indices(n: int, ctx: DistContext) -> torch.Tensor:
    """This rank's contiguous, padded block of ``range(n)`` (every rank gets ``ceil(n / world)``).

    Padding repeats the last index; :func:`gather_rows` trims it again.

    Example:
        >>> shard_indices(5, DistContext(rank=1, world_size=2)).tolist()
        [3, 4, 4]
    """
    per_rank = -(-n // ctx.world_size)
    idx = torch.arange(ctx.rank * per_rank, (ctx.rank + 1) * per_rank)
    return idx.clamp(max=n - 1)


def gather_rows(local: torch.Tensor, n: int, ctx: DistContext) -> torch.Tensor:
    """Concatenate every rank's :func:`shard_indices` block in rank order and trim to ``n`` rows."""
    if not ctx.enabled:
        return local[:n]
    device = torch.device("cuda", ctx.local_rank) if dist.get_backend() == "nccl" else local.device
    mine = local.contiguous().to(device)
    parts = [torch.empty_like(mine) for _ in range(ctx.world_size)]
    dist.all_gather(parts, mine)
    return torch.cat(parts)[:n].to(local.device)


def barrier(ctx: DistContext) -> None:
    """Wait for every rank (no-op for one process)."""
    if ctx.enabled:
        dist.barrier()


def broadcast_flag(flag: bool, ctx: DistContext) -> bool:
    """True on every rank if ``flag`` is true on any rank (used to stop all ranks together)."""
    if not ctx.enabled:
        return flag
    t = torch.tensor([1.0 if flag else 0.0])
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def cleanup(ctx: DistContext) -> None:
    """Leave the process group."""
    if ctx.enabled and dist.is_initialized():
        dist.destroy_process_group()
