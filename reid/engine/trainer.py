"""A plain training loop; everything else (evaluation, checkpoints, logging, progress) is a hook.

The loop owns only what every run does: iterate the loader, forward, loss, backward, step,
schedule. Hooks see the :class:`Trainer` and read or add to its state at seven points:
``before_train``, ``before_epoch``, ``before_step`` (the model is in training mode; a hook may put
parts of it back in eval mode), ``after_backward`` (gradients are there, the optimiser has not
stepped: freezing, clipping), ``after_step``, ``after_epoch``, ``after_train``.

Ctrl-C (SIGINT), SIGTERM and SIGUSR2 do not interrupt a step half-way: they set a flag, the loop
finishes the current step, hooks get ``on_interrupt`` (the checkpoint hook saves a resumable
state), and :class:`TrainingInterrupted` is raised — :class:`TrainingPreempted` for SIGTERM and
SIGUSR2, the signals a scheduler sends before it preempts a job or its time runs out (Slurm sends
SIGTERM; submitit asks Slurm for SIGUSR2 ahead of time). A second Ctrl-C aborts at once; repeated
preemption signals change nothing (Slurm and submitit may both send one). Under torchrun the
ranks agree on stopping at read-back steps (below), so they stop together.

With ``accumulate = N`` the gradients of N consecutive batches (each loss divided by the number of batches
in its cycle: N, or fewer at an epoch's end) add up to one optimiser step: ``after_backward`` and the step
come at the cycle's last batch (``trainer.stepped`` says whether this iteration stepped), and a signal stops
training only at a cycle's end, so a resumed run never loses half a cycle's gradients.

No value goes back to the host on ordinary steps (on a GPU, a read-back stalls the queue
until the step has run). Each step notes on the device whether its loss was finite; the loss
is read back only at *read-back steps* — every ``sync_every`` steps, at each epoch's first
step — and before every ``after_epoch`` and ``on_interrupt``. A NaN or infinite loss raises
:class:`NonFiniteLoss` there, naming the epoch and iteration where it first appeared, before
any hook evaluates, logs or checkpoints the bad state: the last good checkpoint is kept.
"""

from __future__ import annotations

import contextlib
import signal
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from reid.engine.optim import LRSchedule
from reid.engine.runtime import Runtime
from reid.errors import ReidError


class TrainingInterrupted(ReidError):
    """Raised after a Ctrl-C (or a preemption signal: :class:`TrainingPreempted`) once a resumable checkpoint has
    been saved."""

    exit_code = 130


class TrainingPreempted(TrainingInterrupted):
    """Raised after SIGTERM / SIGUSR2 (a scheduler's preemption or time-out notice) once a resumable checkpoint
    has been saved.

    Its exit code, 144, is the one submitit requeues a job on (``LOCAL_REQUEUE_RETURN_CODE`` of its job
    controller); :class:`reid.sweep.slurm.RunJob` requeues its job when ``reid run`` exits with it.
    """

    exit_code = 144


#: the signals that stop training between two steps; all but SIGINT mean "preempted, save and requeue"
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR2)


class NonFiniteLoss(ReidError):
    """Raised when the loss becomes NaN or infinite; the last good checkpoint is kept."""


class Hook:
    """Base class of training hooks: override the events you need (all are no-ops here)."""

    def before_train(self, trainer: Trainer) -> None:
        """Called once before the first step (also when resuming)."""

    def before_epoch(self, trainer: Trainer) -> None:
        """Called at the start of every epoch."""

    def before_step(self, trainer: Trainer) -> None:
        """Called before every forward pass, once the model is in training mode."""

    def after_backward(self, trainer: Trainer) -> None:
        """Called between the backward pass and the optimiser step (gradients may be read or changed)."""

    def after_step(self, trainer: Trainer) -> None:
        """Called after every optimiser step; ``trainer.step_output`` holds its loss."""

    def after_epoch(self, trainer: Trainer) -> None:
        """Called at the end of every epoch; hooks add to ``trainer.epoch_record``."""

    def after_train(self, trainer: Trainer) -> None:
        """Called once after the last epoch."""

    def on_interrupt(self, trainer: Trainer) -> None:
        """Called when Ctrl-C / SIGTERM / SIGUSR2 stops training between two steps."""


class ClosingHook(Hook):
    """A hook that holds something to release (a live display, an open event file): :meth:`close` runs after
    the last epoch and when training is interrupted, and owners may call it again (it must be safe twice)."""

    def after_train(self, trainer: Trainer) -> None:
        """Release what the hook holds."""
        self.close()

    def on_interrupt(self, trainer: Trainer) -> None:
        """Release what the hook holds."""
        self.close()

    def close(self) -> None:
        """Release what the hook holds (a no-op here)."""


@dataclass
class TrainState:
    """Where the loop is: ``epoch`` (0-based), finished iterations in it, finished iterations overall."""

    epoch: int = 0
    iter_in_epoch: int = 0
    global_step: int = 0


@dataclass
class StepOutput:
    """Loss of one step and its named parts as detached 0-dim tensors on the device; the batch size; the
    learning rate the step used (read before the schedule advances, so logs show the lr that produced the loss).

    Reading them (``float()``) waits for the device: use :meth:`values` at read-back steps
    (``trainer.synced``) only.
    """

    loss: torch.Tensor
    parts: dict[str, torch.Tensor]
    batch_size: int
    lr: float | None = None
    _values: dict[str, float] | None = field(default=None, repr=False)

    def values(self) -> dict[str, float]:
        """``{"loss": …, <part>: …}`` as Python floats (one device-to-host copy, then cached).

        Example:
            >>> StepOutput(torch.tensor(0.5), {"id": torch.tensor(0.25)}, 4).values()
            {'loss': 0.5, 'id': 0.25}
        """
        if self._values is None:
            read = torch.stack([self.loss.double(), *(v.double() for v in self.parts.values())]).tolist()
            self._values = dict(zip(["loss", *self.parts], read))
        return self._values


@dataclass
class Trainer:
    """Runs ``epochs`` epochs of ``loader`` through ``model`` and ``criterion``.

    Example (see tests/test_engine.py for a complete run)::

        trainer = Trainer(model, criterion, optimizer, schedule, loader, runtime, epochs=5, hooks=[...])
        trainer.train()
    """

    model: torch.nn.Module
    criterion: Callable[[dict, torch.Tensor], tuple[torch.Tensor, dict[str, float]]]
    optimizer: torch.optim.Optimizer
    schedule: LRSchedule
    loader: Any
    runtime: Runtime
    epochs: int
    hooks: list[Hook] = field(default_factory=list)
    iters_per_epoch: int | None = None
    state: TrainState = field(default_factory=TrainState)
    sync_every: int = 1  # steps between read-backs of the loss (use runtime.log_every)
    agree: Callable[[bool], bool] | None = None  # under torchrun: lambda flag: broadcast_flag(flag, ctx)
    accumulate: int = 1  # batches per optimiser step (optim.accumulate)
    stepped: bool = False  # whether the latest iteration ended with an optimiser step
    step_output: StepOutput | None = None
    synced: bool = False  # whether this step's loss was read back (hooks may read step_output.values())
    epoch_record: dict[str, Any] = field(default_factory=dict)
    _stop_requested: bool = False  # a signal arrived in this process
    _stop_signal: int | None = None  # the first one
    _stopping: bool = False  # every process agreed to stop
    _first_bad: torch.Tensor | None = field(default=None, repr=False)  # (global step, loss) of the first NaN/inf

    @property
    def steps_per_epoch(self) -> int:
        """Iterations per epoch (the loader's length, capped by ``iters_per_epoch``)."""
        n = len(self.loader)
        return min(n, self.iters_per_epoch) if self.iters_per_epoch else n

    def _call(self, event: str) -> None:
        for hook in self.hooks:
            getattr(hook, event)(self)

    def train(self) -> None:
        """Train from ``self.state`` to the last epoch (resumes mid-epoch if the state says so)."""
        previous = {s: signal.getsignal(s) for s in STOP_SIGNALS}
        try:
            for s in previous:
                signal.signal(s, self._request_stop)
        except ValueError:  # not in the main thread: no signal handling
            previous = {}
        try:
            self._call("before_train")
            while self.state.epoch < self.epochs:
                self._train_epoch()
                if self._agreed_stop(collective=True):
                    break
            if self._stopping:
                self.check_finite()
                self._call("on_interrupt")
                if self._stop_signal in (signal.SIGTERM, signal.SIGUSR2):
                    raise TrainingPreempted(f"training stopped by {signal.Signals(self._stop_signal).name} "
                                            "(preempted or out of time); a resumable checkpoint was saved")
                raise TrainingInterrupted("training stopped by a signal; a resumable checkpoint was saved")
            self._call("after_train")
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)

    def _request_stop(self, signum: int, frame: Any) -> None:
        if self._stop_requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        if not self._stop_requested:
            self._stop_requested, self._stop_signal = True, signum

    def _train_epoch(self) -> None:
        self.loader.set_epoch(self.state.epoch)
        self.epoch_record = {}
        self._call("before_epoch")
        skip, limit = self.state.iter_in_epoch, self.steps_per_epoch
        for i, (images, pids) in enumerate(self.loader):
            if i >= limit:
                break
            if i < skip:  # resuming mid-epoch: replay the deterministic loader up to where it stopped
                continue
            self.step_output = self.run_step(images, pids)
            self.state.iter_in_epoch = i + 1
            self.state.global_step += 1
            self.schedule.after_iteration(self.state.global_step)
            self.synced = self.state.global_step % self.sync_every == 0 or self.state.iter_in_epoch == 1
            if self.synced:
                self.check_finite()
            self._call("after_step")
            if self.stepped and self._agreed_stop(collective=self.synced):
                return
        self.check_finite()
        self.state.epoch += 1
        self.state.iter_in_epoch = 0
        self.schedule.after_epoch(self.state.epoch)
        self._call("after_epoch")

    def _agreed_stop(self, collective: bool) -> bool:
        """Whether to stop now: at once for one process; under torchrun only where every rank
        calls ``agree`` (``collective``: read-back steps and epoch ends), so all stop together."""
        if self.agree is None:
            self._stopping = self._stop_requested
        elif collective:
            self._stopping = self.agree(self._stop_requested)
        return self._stopping

    def check_finite(self) -> None:
        """Raise :class:`NonFiniteLoss` if any loss so far was NaN/inf (one read-back; under torchrun all ranks raise).

        Called at read-back steps and at least once per epoch, so the first bad step lies in the current epoch.
        """
        step, value = self._first_bad.tolist() if self._first_bad is not None else (-1.0, 0.0)
        bad = self.agree(step >= 0) if self.agree is not None else step >= 0
        if not bad:
            return
        epoch_start = self.state.global_step - self.state.iter_in_epoch
        what = (f"loss became {value} at epoch {self.state.epoch + 1}, iteration {int(step) - epoch_start}" if step >= 0
                else f"loss became non-finite in another process by epoch {self.state.epoch + 1}, "
                     f"iteration {self.state.iter_in_epoch}")
        raise NonFiniteLoss(f"{what}; the last good checkpoint is kept",
                            fix="lower optim.lr, add schedule.warmup_epochs, or use runtime.precision = \"fp32\"")

    def run_step(self, images: torch.Tensor, pids: torch.Tensor) -> StepOutput:
        """One optimisation step on a batch, with nothing read back to the host.

        The model gets the identities too (margin classifiers use them). After the optimiser's step,
        loss terms with an optimiser of their own (center loss's centres) take theirs. Whether the loss
        is finite is noted on the device; :meth:`check_finite` raises on it later.
        """
        self.model.train()
        self._call("before_step")
        first, size, last = self._cycle()
        images = self.runtime.to_device(images)
        pids = pids.to(self.runtime.device, non_blocking=True)
        # between accumulated batches DDP need not reduce gradients: the cycle's last backward does
        no_sync = getattr(self.model, "no_sync", None) if not last else None
        with no_sync() if no_sync is not None else contextlib.nullcontext():
            with self.runtime.autocast():
                outputs = self.model(images, pids)
            outputs = {k: (v.float() if isinstance(v, torch.Tensor) else v) for k, v in outputs.items()}
            loss, parts = self.criterion(outputs, pids)
            self._note_finiteness(loss.detach())
            if first:
                self.optimizer.zero_grad(set_to_none=True)
            lr = float(self.optimizer.param_groups[0]["lr"])  # what this step uses; the schedule advances after it
            self.runtime.backward(loss / size if size > 1 else loss)
        self.stepped = last
        if last:
            self._call("after_backward")
            updates_itself = getattr(self.criterion, "updates_itself", False)
            grad_scale = self.runtime.gradient_unscale() if updates_itself else 1.0  # read before the scaler updates
            self.runtime.step(self.optimizer)
            if updates_itself:
                self.criterion.step(grad_scale)
        return StepOutput(loss=loss.detach(), parts=parts, batch_size=int(pids.numel()), lr=lr)

    def _cycle(self) -> tuple[bool, int, bool]:
        """Where this iteration sits in its accumulation cycle: whether it is the first, how many batches the
        cycle has (``accumulate``, fewer at the epoch's end) and whether it is the last (then the optimiser steps).

        Example:
            >>> t = Trainer(None, None, None, None, range(5), None, epochs=1, accumulate=2)
            >>> [(t._cycle(), setattr(t.state, "iter_in_epoch", i + 1))[0] for i in range(5)]
            [(True, 2, False), (False, 2, True), (True, 2, False), (False, 2, True), (True, 1, True)]
        """
        if self.accumulate == 1:  # every batch steps (and a step may run outside an epoch, without a loader)
            return True, 1, True
        i, n, total = self.state.iter_in_epoch, self.accumulate, self.steps_per_epoch
        start = i - i % n
        size = min(n, total - start)
        return i == start, size, i == start + size - 1

    def _note_finiteness(self, loss: torch.Tensor) -> None:
        """Keep ``(global step, loss)`` of the first non-finite loss in a device tensor (no read-back)."""
        value = loss.double()
        if self._first_bad is None:
            self._first_bad = torch.tensor([-1.0, 0.0], dtype=torch.float64, device=value.device)
        first = ~torch.isfinite(value) & (self._first_bad[0] < 0)
        record = torch.stack([torch.full_like(value, self.state.global_step + 1), value])
        self._first_bad = torch.where(first, record, self._first_bad)


class Timer:
    """Wall-clock seconds since construction or the last :meth:`reset`."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    def reset(self) -> None:
        """Restart the clock."""
        self.start = time.perf_counter()

    @property
    def seconds(self) -> float:
        """Elapsed seconds."""
        return time.perf_counter() - self.start

