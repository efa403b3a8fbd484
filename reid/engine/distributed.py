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
    launched: bool = False  # started by torchrun (a process group is joined even for one process)

    @property
    def is_main(self) -> bool:
        """Rank 0 alone writes logs, metrics, checkpoints and summaries."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        """True when processes train together: more than one, or any number under torchrun.

        ``torchrun --nproc_per_node 1`` takes the multi-process path (DDP, collectives on NCCL)
        with one process: the way to exercise it on a single GPU.
        """
        return self.world_size > 1 or self.launched


def init_distributed(device: str = "auto", timeout_s: float | None = None) -> DistContext:
    """Join the process group that ``torchrun`` describes in the environment (or stay single-process).

    The backend is NCCL when the run uses CUDA and gloo otherwise. The collective timeout is
    ``timeout_s`` or ``$REID_DIST_TIMEOUT`` (default 120 s). Under torchrun the group is joined
    even for a single process (see :attr:`DistContext.enabled`).
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    launched = "TORCHELASTIC_RUN_ID" in os.environ  # set by torchrun for every process it starts
    if world <= 1 and not launched:
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
    return DistContext(rank=rank, world_size=world, local_rank=local_rank, launched=launched)


def collective_device(ctx: DistContext) -> torch.device:
    """The device the process group's collectives take tensors on: this rank's GPU under NCCL, else the CPU.

    NCCL accepts CUDA tensors only (a CPU tensor fails at the first collective); gloo takes CPU
    tensors. A mixed group (``"cpu:gloo,cuda:nccl"``) is served on the GPU.

    Example:
        >>> collective_device(DistContext())
        device(type='cpu')
    """
    if ctx.enabled and "nccl" in str(dist.get_backend()):
        return torch.device("cuda", ctx.local_rank)
    return torch.device("cpu")


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
    return torch.cat(_all_gather(local, ctx))[:n]


def gather_objects(obj, ctx: DistContext) -> list:
    """Every rank's picklable ``obj`` in rank order, on every rank (``[obj]`` for one process)."""
    if not ctx.enabled:
        return [obj]
    out: list = [None] * ctx.world_size
    dist.all_gather_object(out, obj)
    return out


def barrier(ctx: DistContext) -> None:
    """Wait for every rank (no-op for one process)."""
    if ctx.enabled:
        dist.barrier()


def broadcast_flag(flag: bool, ctx: DistContext) -> bool:
    """True on every rank if ``flag`` is true on any rank (used to stop all ranks together)."""
    if not ctx.enabled:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=collective_device(ctx))
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def broadcast_buffers(module: torch.nn.Module, ctx: DistContext) -> None:
    """Copy rank 0's buffers (BatchNorm running statistics) into ``module`` on every rank, in place.

    Under DDP each rank's BatchNorm statistics follow its own batches, and the last step's update
    stays local; rank 0's are the ones its checkpoint saves. Broadcasting them before evaluating makes
    every rank embed with the checkpoint's statistics. A no-op for one process.

    Example::

        broadcast_buffers(model, ctx)  # then evaluate_model(model, ...)
    """
    if not ctx.enabled:
        return
    device = collective_device(ctx)
    with torch.no_grad():
        for buffer in module.buffers():
            sent = buffer.to(device)  # the buffer itself when it already lives there
            dist.broadcast(sent, src=0)
            if sent is not buffer:
                buffer.copy_(sent)


def mining_gather(ctx: DistContext):
    """The ``gather`` that :func:`reid.losses.build_loss` takes: triplets mined over every rank's batch.

    Returns ``None`` for one process. Under torchrun the returned function maps this rank's
    ``(features, pids)`` to everyone's, in rank order (see :func:`gather_with_grad`). Every rank
    then computes the triplet loss of the whole global batch, as one process with the spec's
    batch would: hard positives and negatives come from all ``P`` identities, not ``P / W``.

    Example::

        criterion = build_loss(spec.loss, gather=mining_gather(ctx))
    """
    if not ctx.enabled:
        return None

    def gather(features: torch.Tensor, pids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return gather_with_grad(features, ctx), torch.cat(_all_gather(pids, ctx))

    return gather


def gather_with_grad(local: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """Every rank's ``local`` rows concatenated in rank order; gradients flow into this rank's rows.

    The other ranks' rows are constants here (their own processes back-propagate through them).
    This rank's rows carry the gradient of a loss computed on the whole concatenation, scaled by
    the world size: DDP averages parameter gradients over ranks, so the average of the ranks'
    ``W · ∂L/∂(own rows)`` is exactly ``∂L/∂θ`` of one process holding the global batch. Every
    rank must pass the same number of rows (the training loader's batches are equal).
    """
    if not ctx.enabled:
        return local
    parts = _all_gather(local.detach(), ctx)
    parts[ctx.rank] = _ScaleGrad.apply(local, float(ctx.world_size))
    return torch.cat(parts)


def _all_gather(local: torch.Tensor, ctx: DistContext) -> list[torch.Tensor]:
    """Every rank's ``local`` (equal shapes), in rank order, on ``local``'s device; no gradient."""
    mine = local.detach().contiguous().to(collective_device(ctx))
    parts = [torch.empty_like(mine) for _ in range(ctx.world_size)]
    dist.all_gather(parts, mine)
    return [part.to(local.device) for part in parts]


class _ScaleGrad(torch.autograd.Function):
    """Identity forward; the backward multiplies the gradient by ``scale``."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad * ctx.scale, None


def cleanup(ctx: DistContext) -> None:
    """Leave the process group."""
    if ctx.enabled and dist.is_initialized():
        dist.destroy_process_group()
