"""A plain training loop; everything else (evaluation, checkpoints, logging, progress) is a hook.

The loop owns only what every run does: iterate the loader, forward, loss, backward, step,
schedule. Hooks see the :class:`Trainer` and read or add to its state at five points:
``before_train``, ``before_epoch``, ``after_step``, ``after_epoch``, ``after_train``.

Ctrl-C (SIGINT) and SIGTERM do not interrupt a step half-way: they set a flag, the loop
finishes the current step, hooks get ``on_interrupt`` (the checkpoint hook saves a resumable
state), and :class:`TrainingInterrupted` is raised. A second Ctrl-C aborts at once.
"""

from __future__ import annotations

import math
import signal
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from reid.engine.optim import LRSchedule
from reid.engine.runtime import Runtime
from reid.errors import ReidError


class TrainingInterrupted(ReidError):
    """Raised after a Ctrl-C / SIGTERM once a resumable checkpoint has been saved."""

    exit_code = 130


class NonFiniteLoss(ReidError):
    """Raised when the loss becomes NaN or infinite; the last good checkpoint is kept."""


class Hook:
    """Base class of training hooks: override the events you need (all are no-ops here)."""

    def before_train(self, trainer: Trainer) -> None:
        """Called once before the first step (also when resuming)."""

    def before_epoch(self, trainer: Trainer) -> None:
        """Called at the start of every epoch."""

    def after_step(self, trainer: Trainer) -> None:
        """Called after every optimiser step; ``trainer.step_output`` holds its loss."""

    def after_epoch(self, trainer: Trainer) -> None:
        """Called at the end of every epoch; hooks add to ``trainer.epoch_record``."""

    def after_train(self, trainer: Trainer) -> None:
        """Called once after the last epoch."""

    def on_interrupt(self, trainer: Trainer) -> None:
        """Called when Ctrl-C / SIGTERM stops training between two steps."""


@dataclass
class TrainState:
    """Where the loop is: ``epoch`` (0-based), finished iterations in it, finished iterations overall."""

    epoch: int = 0
    iter_in_epoch: int = 0
    global_step: int = 0


@dataclass
class StepOutput:
    """Loss of one step (a Python float) and its named parts; the batch size."""

    loss: float
    parts: dict[str, float]
    batch_size: int


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
    agree: Callable[[bool], bool] = lambda flag: flag  # ranks agree on stopping (see distributed.broadcast_flag)
    step_output: StepOutput | None = None
    epoch_record: dict[str, Any] = field(default_factory=dict)
    _stop_requested: bool = False

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
        previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            for s in previous:
                signal.signal(s, self._request_stop)
        except ValueError:  # not in the main thread: no signal handling
            previous = {}
        try:
            self._call("before_train")
            while self.state.epoch < self.epochs:
                self._train_epoch()
                if self._stop_requested:
                    break
            if self._stop_requested:
                self._call("on_interrupt")
                raise TrainingInterrupted("training stopped by a signal; a resumable checkpoint was saved")
            self._call("after_train")
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)

    def _request_stop(self, signum: int, frame: Any) -> None:
        if self._stop_requested:
            raise KeyboardInterrupt
        self._stop_requested = True

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
            self._call("after_step")
            self._stop_requested = self.agree(self._stop_requested)
            if self._stop_requested:
                return
        self.state.epoch += 1
        self.state.iter_in_epoch = 0
        self.schedule.after_epoch(self.state.epoch)
        self._call("after_epoch")

    def run_step(self, images: torch.Tensor, pids: torch.Tensor) -> StepOutput:
        """One optimisation step on a batch; raises :class:`NonFiniteLoss` on NaN/inf."""
        self.model.train()
        images = self.runtime.to_device(images)
        pids = pids.to(self.runtime.device, non_blocking=True)
        with self.runtime.autocast():
            outputs = self.model(images)
        outputs = {k: (v.float() if isinstance(v, torch.Tensor) else v) for k, v in outputs.items()}
        loss, parts = self.criterion(outputs, pids)
        value = float(loss.detach())
        if not math.isfinite(value):
            raise NonFiniteLoss(
                f"loss became {value} at epoch {self.state.epoch + 1}, iteration {self.state.iter_in_epoch + 1}; "
                "the last good checkpoint is kept",
                fix="lower optim.lr, add schedule.warmup_epochs, or use runtime.precision = \"fp32\"")
        self.optimizer.zero_grad(set_to_none=True)
        self.runtime.backward_step(loss, self.optimizer)
        return StepOutput(loss=value, parts={k: float(v) for k, v in parts.items()}, batch_size=int(pids.numel()))


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

