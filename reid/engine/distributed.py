"""Multi-process training under ``torchrun`` (torch.distributed; NCCL on GPUs, gloo on CPU).

``torchrun`` sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``; :func:`init_distributed` reads
them. Without them everything here is a no-op for a single process. Collective calls carry a
timeout (``runtime.collective_timeout_s``), so a rank that dies, hangs or is stopped makes the others
fail within bounded time instead of hanging; :func:`collective_failures` turns that failure into one
error line naming the rank that did not answer.
"""

from __future__ import annotations

import itertools
import os
import re
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Iterator

import torch
import torch.distributed as dist

from reid.errors import ReidError

#: the collective timeout when neither ``runtime.collective_timeout_s`` nor ``$REID_DIST_TIMEOUT`` sets one
DEFAULT_COLLECTIVE_TIMEOUT_S = 120.0
TIMEOUT_ENV = "REID_DIST_TIMEOUT"
#: store keys under which ranks whose collective failed answer the roll call (:func:`collective_failures`)
ROLL_CALL_KEY = "reid/collective-failed"
_GROUPS_JOINED = itertools.count()  # process groups this process has joined (each gets store keys of its own)


@dataclass(frozen=True)
class DistContext:
    """This process's place in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    launched: bool = False  # started by torchrun (a process group is joined even for one process)
    timeout_s: float = DEFAULT_COLLECTIVE_TIMEOUT_S  # a collective fails after this long (roll call included)

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


def collective_timeout(configured: float | None = None) -> float:
    """Seconds a collective operation may wait for the other ranks: ``configured`` (``runtime.collective_timeout_s``),
    else ``$REID_DIST_TIMEOUT``, else :data:`DEFAULT_COLLECTIVE_TIMEOUT_S`.

    Example:
        >>> collective_timeout(30)
        30.0
    """
    if configured is not None:
        return float(configured)
    text = os.environ.get(TIMEOUT_ENV)
    if not text:
        return DEFAULT_COLLECTIVE_TIMEOUT_S
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value >= 1:  # NaN included
        raise ReidError(f"${TIMEOUT_ENV} = {text!r} is not a number of seconds >= 1", where=TIMEOUT_ENV,
                        fix="unset it, or set runtime.collective_timeout_s in the spec")
    return value


def roll_call_s(timeout_s: float) -> float:
    """The last part of a collective timeout, kept for the roll call that names the missing ranks: a fifth, at most 10 s.

    The backend gives up after ``timeout_s - roll_call_s(timeout_s)``, so the job still fails within ``timeout_s``.

    Example:
        >>> roll_call_s(120), roll_call_s(5)
        (10.0, 1.0)
    """
    return min(10.0, timeout_s / 5)


def init_distributed(device: str = "auto", timeout_s: float | None = None) -> DistContext:
    """Join the process group that ``torchrun`` describes in the environment (or stay single-process).

    The backend is NCCL when the run uses CUDA and gloo otherwise. A collective operation fails after
    :func:`collective_timeout` of ``timeout_s`` (``runtime.collective_timeout_s``; see :func:`collective_failures`
    for the error it becomes). Under torchrun the group is joined even for a single process
    (see :attr:`DistContext.enabled`).
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    launched = "TORCHELASTIC_RUN_ID" in os.environ  # set by torchrun for every process it starts
    if world <= 1 and not launched:
        return DistContext()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = device != "cpu" and torch.cuda.is_available()
    if use_cuda:
        torch.cuda.set_device(local_rank)
    total = collective_timeout(timeout_s)
    timeout = timedelta(seconds=total - roll_call_s(total))
    if not dist.is_initialized():
        try:
            store, _, _ = next(dist.rendezvous("env://", rank=rank, world_size=world, timeout=timeout))
            # keys of this group only: torchrun's store outlives a restart (and a group left for the next run of
            # `--seeds`), and the address a dead group's rank 0 left there would send the new ranks to a closed
            # socket (pytorch/pytorch#135712); every rank joins the same number of times
            attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
            store = dist.PrefixStore(f"reid/attempt-{attempt}/group-{next(_GROUPS_JOINED)}", store)
            dist.init_process_group("nccl" if use_cuda else "gloo", store=store, rank=rank, world_size=world,
                                    timeout=timeout)
        except (RuntimeError, ValueError) as e:
            raise ReidError(f"could not join the process group ({backend_detail(e)})", where="torchrun",
                            fix="check --nnodes/--rdzv-endpoint and that every node can reach the endpoint") from None
    return DistContext(rank=rank, world_size=world, local_rank=local_rank, launched=launched, timeout_s=total)


@contextmanager
def collective_failures(ctx: DistContext) -> Iterator[None]:
    """Turn a collective operation that failed because another rank hangs, was stopped or died into one
    :class:`ReidError` naming that rank (no traceback), instead of the backend's bare timeout.

    The backend (gloo) raises after ``timeout - roll_call_s(timeout)`` with no word on who is missing. Each rank
    that gets such an error then answers a roll call in the process group's store and waits up to
    :func:`roll_call_s` for the others (2 s at most when a connection broke rather than timed out: the others
    see that at once): the ranks that never answer are the ones the job waited for. Other
    exceptions pass through unchanged; a no-op for one process. (Under NCCL, PyTorch's watchdog ends the
    process at the same timeout with its own report.)

    Example::

        with collective_failures(ctx):
            trainer.train()
    """
    try:
        yield
    except RuntimeError as e:
        if not ctx.enabled or not is_collective_failure(e):
            raise
        timed_out = "timed out" in str(e).lower()  # else a connection broke: the other ranks notice at once too
        wait_s = roll_call_s(ctx.timeout_s) if timed_out else min(roll_call_s(ctx.timeout_s), 2.0)
        raise collective_error(e, ctx, absent_ranks(ctx, wait_s)) from None


def is_collective_failure(error: BaseException) -> bool:
    """Whether ``error`` is a process group's failure (a timeout, a closed connection), not the training's own.

    Example:
        >>> is_collective_failure(RuntimeError("[third_party/gloo/gloo/transport/tcp/pair.cc:534] Connection closed"))
        True
        >>> is_collective_failure(RuntimeError("mat1 and mat2 shapes cannot be multiplied"))
        False
    """
    return isinstance(error, dist.DistError) or "gloo/" in str(error)


def absent_ranks(ctx: DistContext, wait_s: float) -> list[int] | None:
    """After a failed collective: the ranks that do not also report a failed collective within ``wait_s``, which are
    the ones the others were waiting for (hung, stopped or dead). ``None`` when the store cannot be reached either."""
    try:
        store = dist.distributed_c10d._get_default_store()
        store.set_timeout(timedelta(seconds=wait_s))
        store.set(f"{ROLL_CALL_KEY}/{ctx.rank}", "1")
        deadline = time.monotonic() + wait_s
        while True:
            absent = [r for r in range(ctx.world_size) if not store.check([f"{ROLL_CALL_KEY}/{r}"])]
            if not absent or time.monotonic() >= deadline:
                return absent
            time.sleep(0.05)
    except (RuntimeError, ValueError):  # the store went with its host (rank 0 outside torchrun)
        return None


def collective_error(error: BaseException, ctx: DistContext, absent: list[int] | None) -> ReidError:
    """The one-line :class:`ReidError` for a failed collective on this rank, naming the ``absent`` ranks.

    Example:
        >>> str(collective_error(RuntimeError("gloo/unbound_buffer.cc:78] Timed out waiting 4000ms for recv"),
        ...                      DistContext(rank=0, world_size=2, timeout_s=5), [1]))  # doctest: +NORMALIZE_WHITESPACE
        'runtime.collective_timeout_s: rank 1 of 2 did not join a collective operation within 5 s (it hangs, was
        stopped or died; reported by rank 0). Fix: look at what rank 1 was doing (its log, a stuck data loader, the
        OOM killer, a lost node); if its steps take longer than 5 s, raise runtime.collective_timeout_s'
    """
    detail = backend_detail(error)
    if not absent:
        return ReidError(f"a collective operation failed on rank {ctx.rank} of {ctx.world_size} ({detail})",
                         where="torchrun", fix="see the other ranks' output for the first failure")
    who = f"rank {absent[0]}" if len(absent) == 1 else f"ranks {', '.join(map(str, absent))}"
    look = f"look at what {who} was doing (its log, a stuck data loader, the OOM killer, a lost node)"
    if "timed out" not in detail.lower():
        return ReidError(f"{who} of {ctx.world_size} left during a collective operation (its process ended or its "
                         f"connection broke; reported by rank {ctx.rank})", where="torchrun", fix=look)
    return ReidError(f"{who} of {ctx.world_size} did not join a collective operation within {ctx.timeout_s:g} s "
                     f"(it hangs, was stopped or died; reported by rank {ctx.rank})", where="runtime.collective_timeout_s",
                     fix=f"{look}; if its steps take longer than {ctx.timeout_s:g} s, raise runtime.collective_timeout_s")


def backend_detail(error: BaseException) -> str:
    """The first line of a backend's error, without the source location gloo puts in front.

    Example:
        >>> backend_detail(RuntimeError("[/w/gloo/transport/tcp/pair.cc:534] Connection closed by peer\\nmore"))
        'Connection closed by peer'
    """
    text = str(error).strip()
    return re.sub(r"^\[[^\]]*\]\s*", "", text.splitlines()[0]) if text else type(error).__name__


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


def gather_objects(obj, ctx: DistContext) -> list:
    """Every rank's picklable ``obj`` in rank order, on every rank (``[obj]`` for one process)."""
    if not ctx.enabled:
        return [obj]
    out: list = [None] * ctx.world_size
    dist.all_gather_object(out, obj)
    return out


def gather_to_main(local: torch.Tensor, ctx: DistContext) -> list[torch.Tensor] | None:
    """Every rank's ``local`` in rank order on rank 0 (on ``local``'s device), ``None`` on the others; ``[local]``
    for one process.

    Shapes may differ between ranks (same number of dimensions): each is padded to the largest for the
    transfer and trimmed again, so a rank may send fewer rows, or none (features 0×0).
    """
    if not ctx.enabled:
        return [local]
    device = collective_device(ctx)
    mine = local.detach().contiguous().to(device)
    shapes = [torch.empty(mine.ndim, dtype=torch.long, device=device) for _ in range(ctx.world_size)]
    dist.all_gather(shapes, torch.tensor(mine.shape, dtype=torch.long, device=device))
    sizes = [tuple(s.tolist()) for s in shapes]
    padded = mine.new_zeros(tuple(max(dims) for dims in zip(*sizes)))
    padded[tuple(slice(0, d) for d in mine.shape)] = mine
    parts = [torch.empty_like(padded) for _ in range(ctx.world_size)] if ctx.is_main else None
    dist.gather(padded, parts, dst=0)
    if parts is None:
        return None
    return [part[tuple(slice(0, d) for d in size)].to(local.device) for part, size in zip(parts, sizes)]


def broadcast_object(obj, ctx: DistContext):
    """Rank 0's picklable ``obj`` on every rank (``obj`` itself for one process)."""
    if not ctx.enabled:
        return obj
    box = [obj if ctx.is_main else None]
    dist.broadcast_object_list(box, src=0, device=collective_device(ctx))
    return box[0]


@dataclass(frozen=True)
class RankCollective:
    """The ranks of ``ctx`` as an evaluator's :class:`reid.evaluation.Collective`: gathers onto rank 0
    (:func:`gather_to_main`) and broadcasts from it (:func:`broadcast_object`); for one process, everything is local.

    Example:
        >>> RankCollective(DistContext()).broadcast("result"), RankCollective(DistContext(rank=1, world_size=2)).is_main
        ('result', False)
    """

    ctx: DistContext

    @property
    def is_main(self) -> bool:
        """Rank 0 scores."""
        return self.ctx.is_main

    def gather_rows(self, local: torch.Tensor) -> list[torch.Tensor] | None:
        """:func:`gather_to_main` of ``local``."""
        return gather_to_main(local, self.ctx)

    def broadcast(self, obj):
        """:func:`broadcast_object` of ``obj``."""
        return broadcast_object(obj, self.ctx)


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
