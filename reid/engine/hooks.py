"""The hooks every run uses: evaluation, metrics logging, checkpoints and progress display.

Order matters at ``after_epoch``: :class:`EvalHook` adds metrics to the epoch record,
:class:`MetricsHook` writes it, :class:`CheckpointHook` saves the state that matches it, and
:class:`ProgressHook` shows it. :func:`default_hooks` returns them in that order.
"""

from __future__ import annotations

import time
from typing import Callable

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from reid.engine.checkpoint import model_checkpoint, save_checkpoint, training_checkpoint
from reid.engine.distributed import DistContext, gather_objects
from reid.engine.eta import RunClock, RunPlan, format_duration
from reid.engine.evaluation import Evaluation
from reid.engine.rundir import RunDir
from reid.engine.trainer import ClosingHook, Hook, Timer, Trainer


def evaluates_after(epoch: int, every: int, epochs: int) -> bool:
    """Whether a run of ``epochs`` epochs that evaluates every ``every`` epochs evaluates after ``epoch`` (1-based).

    Example:
        >>> [e for e in range(1, 8) if evaluates_after(e, 3, 7)]
        [3, 6, 7]
    """
    return epoch % every == 0 or epoch == epochs


class EvalHook(Hook):
    """Evaluates every ``every`` epochs and after the last; adds the metrics to the epoch record.

    Args:
        evaluate: ``evaluate() -> Evaluation`` of the current weights (see
            :func:`reid.engine.evaluation.evaluate_with_features`).
        every: evaluation period in epochs.

    Attributes:
        evaluation: this epoch's :class:`~reid.engine.evaluation.Evaluation` for the hooks after this one, from
            the evaluation to the next epoch's start (``None`` in epochs without one: its features are not held
            while training); after the last epoch, the last evaluation.
    """

    def __init__(self, evaluate: Callable[[], Evaluation], every: int):
        self.evaluate, self.every = evaluate, every
        self.evaluation: Evaluation | None = None

    def before_epoch(self, trainer: Trainer) -> None:
        """Let go of the previous evaluation."""
        self.evaluation = None

    def after_epoch(self, trainer: Trainer) -> None:
        """Evaluate when the epoch number is a multiple of ``every`` or is the last."""
        if evaluates_after(trainer.state.epoch, self.every, trainer.epochs):
            timer = Timer()
            self.evaluation = self.evaluate()
            trainer.epoch_record.update(self.evaluation.result.to_record(), eval_seconds=round(timer.seconds, 3))


class MetricsHook(Hook):
    """Writes ``iter`` records every ``log_every`` steps and one ``epoch`` record per epoch to metrics.jsonl.

    The epoch's loss is summed on the device; values are read back only for the records (give the
    :class:`Trainer` the same ``sync_every`` as ``log_every`` so they are read when it reads them anyway).
    """

    def __init__(self, run: RunDir, log_every: int):
        self.run, self.log_every = run, log_every
        self._loss_sum: torch.Tensor | float = 0.0
        self._steps = 0
        self._images = 0
        self._timer = Timer()

    def before_epoch(self, trainer: Trainer) -> None:
        """Reset the epoch's running loss and throughput clock."""
        trainer.runtime.synchronize()
        self._loss_sum, self._steps, self._images = 0.0, 0, 0
        self._timer.reset()

    def after_step(self, trainer: Trainer) -> None:
        """Accumulate the loss (on the device); log an ``iter`` record every ``log_every`` steps."""
        out = trainer.step_output
        self._loss_sum = self._loss_sum + out.loss.double()
        self._steps += 1
        self._images += out.batch_size
        s = trainer.state
        if s.global_step % self.log_every == 0 or s.iter_in_epoch == 1:
            values = out.values()
            self.run.append_metrics({"kind": "iter", "step": s.global_step, "epoch": s.epoch + 1,
                                     "iter": s.iter_in_epoch, "loss": values["loss"],
                                     **{f"loss_{k}": values[k] for k in out.parts}, "lr": _used_lr(trainer)})

    def after_epoch(self, trainer: Trainer) -> None:
        """Write the epoch record: mean training loss, lr, throughput and any evaluation metrics."""
        trainer.runtime.synchronize()
        seconds = self._timer.seconds - trainer.epoch_record.get("eval_seconds", 0.0)
        record = {"kind": "epoch", "step": trainer.state.global_step, "epoch": trainer.state.epoch,
                  "train_loss": float(self._loss_sum) / max(self._steps, 1), "lr": _used_lr(trainer),
                  "train_seconds": round(seconds, 3), "images_per_second": round(self._images / max(seconds, 1e-9), 2),
                  **trainer.epoch_record}
        trainer.epoch_record = record
        self.run.append_metrics(record)


def _used_lr(trainer: Trainer) -> float:
    """The learning rate of the latest step (the schedule has already set the next one), else the current one."""
    out = trainer.step_output
    return out.lr if out is not None and out.lr is not None else trainer.schedule.lr


class RngStateHook(Hook):
    """Collects every rank's RNG states — its CPU generator and the CUDA generator of its own GPU — at each
    epoch's end and on interrupt, so the checkpoint that rank 0 writes lets each rank resume with its own
    (ranks draw different dropout masks: each was seeded with seed + rank). Runs on every rank, before
    :class:`CheckpointHook`.

    Attributes:
        states: per rank, ``{"cpu": ByteTensor, "cuda": ByteTensor or None}`` (None for a CPU process).
    """

    def __init__(self, ctx: DistContext, device: torch.device):
        self.ctx, self.device = ctx, device
        self.states: list[dict] = []

    def collect(self, trainer: Trainer) -> None:
        """Gather the states (a collective: every rank calls it at the same point)."""
        own = {"cpu": torch.get_rng_state(),
               "cuda": torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None}
        self.states = gather_objects(own, self.ctx)

    def after_epoch(self, trainer: Trainer) -> None:
        """Collect before this epoch's checkpoint is written."""
        self.collect(trainer)

    def on_interrupt(self, trainer: Trainer) -> None:
        """Collect before the interrupt checkpoint is written."""
        self.collect(trainer)


class CheckpointHook(Hook):
    """Saves ``last.pt`` every ``every`` epochs, at the end and on interrupt; ``best.pt`` when the epoch record's
    ``select_key`` (:data:`reid.engine.selection.SELECT_KEY`) reaches a new best — never when it is ``None``.

    Args:
        run: the run directory.
        every: epochs between ``last.pt`` saves.
        description: :func:`reid.engine.checkpoint.model_description` of the model (stored in every checkpoint).
        best: the best metrics so far (when resuming).
        rng: the hook that collects every rank's CUDA RNG state (saved with the training state).
        select_key: the metric that picks ``best.pt`` (``rank1``, ``val_rank1``) or ``None`` for no ``best.pt``.
        selected_on: what picked it, in words (stored in the checkpoint's ``best``).
        evaluated: ``() -> module`` of the weights the run evaluates and saves, when not the trained model's
            (:attr:`reid.engine.build.RunBuilder.evaluated_model`).
    """

    def __init__(self, run: RunDir, every: int, description: dict, best: dict | None = None,
                 rng: RngStateHook | None = None, select_key: str | None = "rank1", selected_on: str = "",
                 evaluated: Callable[[], torch.nn.Module] | None = None):
        self.run, self.every, self.description, self.rng = run, every, description, rng
        self.evaluated = evaluated
        self.best = best or {}
        self.select_key, self.selected_on = select_key, selected_on

    def after_epoch(self, trainer: Trainer) -> None:
        """Save the resumable state, and the weights when the selection metric improved."""
        record, key = trainer.epoch_record, self.select_key
        if key is not None and key in record and record[key] > self.best.get(key, -1.0):
            self.best = {k: record[k] for k in ("epoch", "rank1", "mAP", "mINP", key) if k in record}
            self.best["selected_on"] = self.selected_on
            weights = self.evaluated() if self.evaluated is not None else trainer.model
            save_checkpoint(model_checkpoint(self.description, weights, self.best), self.run.best_checkpoint)
        if trainer.state.epoch % self.every == 0 or trainer.state.epoch == trainer.epochs:
            self._save_last(trainer)

    def on_interrupt(self, trainer: Trainer) -> None:
        """Save a mid-epoch resumable state."""
        self._save_last(trainer)

    def _save_last(self, trainer: Trainer) -> None:
        rank_rng = self.rng.states if self.rng is not None else None
        evaluated = self.evaluated() if self.evaluated is not None else None
        save_checkpoint(training_checkpoint(self.description, trainer, self.best, rank_rng, evaluated),
                        self.run.last_checkpoint)


class ProgressHook(ClosingHook):
    """A rich progress bar (loss, img/s, the whole run's remaining time), or one plain line per epoch when ``plain``.

    After a short warm-up it prints one ETA line — the measured img/s and the expected wall time
    of the whole run, training and evaluations (:class:`reid.engine.eta.RunClock`) — in both modes;
    the bar and every epoch line then show the time left.

    Args:
        console: where lines and the bar go.
        plain: no live bar, one line per epoch.
        eval_forwards: images one evaluation passes through the model in this process (× 2 with flip).
        eval_every: evaluation period in epochs (:func:`evaluates_after`).
    """

    def __init__(self, console: Console, plain: bool = False, eval_forwards: int = 0, eval_every: int = 1):
        self.console, self.plain = console, plain
        self.eval_forwards, self.eval_every = eval_forwards, eval_every
        self.progress: Progress | None = None
        self.clock: RunClock | None = None
        self._task = None
        self._timer = Timer()
        self._started = 0.0
        self._images = 0

    def before_train(self, trainer: Trainer) -> None:
        """Start the clock and the progress display."""
        self._started = time.perf_counter()
        self.clock = None
        if self.plain:
            return
        self.progress = Progress(TextColumn("[bold]epoch {task.fields[epoch]}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TextColumn("{task.fields[left]}"), TextColumn("{task.fields[info]}"),
                                 console=self.console, transient=False)
        self.progress.start()
        total = trainer.epochs * trainer.steps_per_epoch
        done = trainer.state.epoch * trainer.steps_per_epoch + trainer.state.iter_in_epoch
        self._task = self.progress.add_task("train", total=total, completed=done, epoch=trainer.state.epoch + 1,
                                            info="", left="measuring…")

    def before_epoch(self, trainer: Trainer) -> None:
        """Reset the throughput clock."""
        self._timer.reset()
        self._images = 0

    def _time(self, trainer: Trainer) -> None:
        """Feed the run clock while it measures (synchronising the device so the times are real); print the ETA line."""
        if self.clock is None:
            plan = RunPlan(total_steps=trainer.epochs * trainer.steps_per_epoch, steps_per_epoch=trainer.steps_per_epoch,
                           batch_images=trainer.step_output.batch_size, eval_forwards=self.eval_forwards,
                           eval_epochs=tuple(e for e in range(1, trainer.epochs + 1)
                                             if evaluates_after(e, self.eval_every, trainer.epochs)))
            self.clock = RunClock(plan, start_step=trainer.state.global_step - 1, now=self._started)
        if not self.clock.ready:
            trainer.runtime.synchronize()
            estimate = self.clock.step(trainer.state.global_step, trainer.state.epoch, time.perf_counter())
            if estimate is not None:
                self.console.print(estimate.line())

    def time_left(self, trainer: Trainer) -> str | None:
        """The whole run's remaining time (training and evaluations) as text, once measured."""
        estimate = (self.clock.estimate(trainer.state.global_step, trainer.state.epoch, time.perf_counter())
                    if self.clock is not None else None)
        return f"{format_duration(estimate.remaining_seconds)} left" if estimate is not None else None

    def after_step(self, trainer: Trainer) -> None:
        """Advance the bar; refresh loss, img/s and time left at the trainer's read-back steps (no extra device sync)."""
        self._images += trainer.step_output.batch_size
        self._time(trainer)
        if self.progress is None:
            return
        if trainer.synced:
            info = f"loss {trainer.step_output.values()['loss']:.3f} · {self._images / max(self._timer.seconds, 1e-9):.0f} img/s"
            self.progress.update(self._task, advance=1, epoch=trainer.state.epoch + 1, info=info,
                                 left=self.time_left(trainer) or "measuring…")
        else:
            self.progress.update(self._task, advance=1, epoch=trainer.state.epoch + 1)

    def after_epoch(self, trainer: Trainer) -> None:
        """Print the epoch's line with the latest metrics and the time left."""
        r = trainer.epoch_record
        if self.clock is not None and "eval_seconds" in r:
            self.clock.evaluated(r["eval_seconds"])
        parts = [f"epoch {r['epoch']}/{trainer.epochs}", f"loss {r['train_loss']:.4f}", f"lr {r['lr']:.2e}",
                 f"{r['images_per_second']:.0f} img/s"]
        if "rank1" in r:
            parts += [f"R1 {r['rank1']:.3f}", f"mAP {r['mAP']:.3f}", f"mINP {r['mINP']:.3f}", f"val loss {r['val_loss']:.4f}"]
        left = self.time_left(trainer) if trainer.state.epoch < trainer.epochs else None
        self.console.print(" · ".join(parts + ([left] if left else [])))

    def close(self) -> None:
        """Stop the progress display if it is running (safe to call twice)."""
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
