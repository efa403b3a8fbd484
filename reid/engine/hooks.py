"""The hooks every run uses: evaluation, metrics logging, checkpoints and progress display.

Order matters at ``after_epoch``: :class:`EvalHook` adds metrics to the epoch record,
:class:`MetricsHook` writes it, :class:`CheckpointHook` saves the state that matches it, and
:class:`ProgressHook` shows it. :func:`default_hooks` returns them in that order.
"""

from __future__ import annotations

from typing import Callable

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from reid.engine.checkpoint import save_checkpoint
from reid.engine.rundir import RunDir
from reid.engine.trainer import Hook, Timer, Trainer


class EvalHook(Hook):
    """Evaluates every ``every`` epochs and after the last; adds the metrics to the epoch record.

    Args:
        evaluate: ``evaluate() -> metrics dict`` of the current weights (see :func:`reid.engine.evaluation.evaluate_model`).
        every: evaluation period in epochs.
    """

    def __init__(self, evaluate: Callable[[], dict], every: int):
        self.evaluate, self.every = evaluate, every
        self.latest: dict = {}

    def after_epoch(self, trainer: Trainer) -> None:
        """Evaluate when the epoch number is a multiple of ``every`` or is the last."""
        epoch = trainer.state.epoch
        if epoch % self.every == 0 or epoch == trainer.epochs:
            timer = Timer()
            self.latest = self.evaluate()
            trainer.epoch_record.update(self.latest, eval_seconds=round(timer.seconds, 3))


class MetricsHook(Hook):
    """Writes ``iter`` records every ``log_every`` steps and one ``epoch`` record per epoch to metrics.jsonl."""

    def __init__(self, run: RunDir, log_every: int):
        self.run, self.log_every = run, log_every
        self._losses: list[float] = []
        self._images = 0
        self._timer = Timer()

    def before_epoch(self, trainer: Trainer) -> None:
        """Reset the epoch's running loss and throughput clock."""
        self._losses, self._images = [], 0
        self._timer.reset()

    def after_step(self, trainer: Trainer) -> None:
        """Accumulate the loss; log an ``iter`` record every ``log_every`` steps."""
        out = trainer.step_output
        self._losses.append(out.loss)
        self._images += out.batch_size
        s = trainer.state
        if s.global_step % self.log_every == 0 or s.iter_in_epoch == 1:
            self.run.append_metrics({"kind": "iter", "step": s.global_step, "epoch": s.epoch + 1,
                                     "iter": s.iter_in_epoch, "loss": out.loss, **{f"loss_{k}": v for k, v in out.parts.items()},
                                     "lr": trainer.schedule.lr})

    def after_epoch(self, trainer: Trainer) -> None:
        """Write the epoch record: mean training loss, lr, throughput and any evaluation metrics."""
        seconds = self._timer.seconds - trainer.epoch_record.get("eval_seconds", 0.0)
        record = {"kind": "epoch", "step": trainer.state.global_step, "epoch": trainer.state.epoch,
                  "train_loss": sum(self._losses) / max(len(self._losses), 1), "lr": trainer.schedule.lr,
                  "train_seconds": round(seconds, 3), "images_per_second": round(self._images / max(seconds, 1e-9), 2),
                  **trainer.epoch_record}
        trainer.epoch_record = record
        self.run.append_metrics(record)


def checkpoint_state(trainer: Trainer, best: dict) -> dict:
    """Everything needed to continue a run exactly: weights, optimiser, schedule, RNG and position."""
    model = getattr(trainer.model, "module", trainer.model)
    state = {
        "model": model.state_dict(),
        "optimizer": trainer.optimizer.state_dict(),
        "schedule": trainer.schedule.state_dict(),
        "epoch": trainer.state.epoch,
        "iter_in_epoch": trainer.state.iter_in_epoch,
        "global_step": trainer.state.global_step,
        "rng_cpu": torch.get_rng_state(),
        "best": best,
    }
    if torch.cuda.is_available():
        state["rng_cuda"] = torch.cuda.get_rng_state_all()
    if trainer.runtime.scaler is not None:
        state["scaler"] = trainer.runtime.scaler.state_dict()
    return state


class CheckpointHook(Hook):
    """Saves ``last.pt`` every ``every`` epochs, at the end and on interrupt; ``best.pt`` on a new best Rank-1."""

    def __init__(self, run: RunDir, every: int, best: dict | None = None):
        self.run, self.every = run, every
        self.best = best or {}

    def after_epoch(self, trainer: Trainer) -> None:
        """Save the resumable state, and the weights when Rank-1 improved."""
        record = trainer.epoch_record
        if "rank1" in record and record["rank1"] > self.best.get("rank1", -1.0):
            self.best = {k: record[k] for k in ("epoch", "rank1", "mAP", "mINP") if k in record}
            model = getattr(trainer.model, "module", trainer.model)
            save_checkpoint({"model": model.state_dict(), "best": self.best}, self.run.best_checkpoint)
        if trainer.state.epoch % self.every == 0 or trainer.state.epoch == trainer.epochs:
            save_checkpoint(checkpoint_state(trainer, self.best), self.run.last_checkpoint)

    def on_interrupt(self, trainer: Trainer) -> None:
        """Save a mid-epoch resumable state."""
        save_checkpoint(checkpoint_state(trainer, self.best), self.run.last_checkpoint)


class ProgressHook(Hook):
    """A rich progress bar (ETA, loss, img/s, latest metrics), or one plain line per epoch when ``plain``."""

    def __init__(self, console: Console, plain: bool = False):
        self.console, self.plain = console, plain
        self.progress: Progress | None = None
        self._task = None
        self._timer = Timer()
        self._images = 0

    def before_train(self, trainer: Trainer) -> None:
        """Start the progress display."""
        if self.plain:
            return
        self.progress = Progress(TextColumn("[bold]epoch {task.fields[epoch]}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[info]}"),
                                 console=self.console, transient=False)
        self.progress.start()
        total = trainer.epochs * trainer.steps_per_epoch
        done = trainer.state.epoch * trainer.steps_per_epoch + trainer.state.iter_in_epoch
        self._task = self.progress.add_task("train", total=total, completed=done, epoch=trainer.state.epoch + 1, info="")

    def before_epoch(self, trainer: Trainer) -> None:
        """Reset the throughput clock."""
        self._timer.reset()
        self._images = 0

    def after_step(self, trainer: Trainer) -> None:
        """Advance the bar and show loss and img/s."""
        self._images += trainer.step_output.batch_size
        if self.progress is not None:
            info = f"loss {trainer.step_output.loss:.3f} · {self._images / max(self._timer.seconds, 1e-9):.0f} img/s"
            self.progress.update(self._task, advance=1, epoch=trainer.state.epoch + 1, info=info)

    def after_epoch(self, trainer: Trainer) -> None:
        """Print the epoch's line with the latest metrics."""
        r = trainer.epoch_record
        parts = [f"epoch {r['epoch']}/{trainer.epochs}", f"loss {r['train_loss']:.4f}", f"lr {r['lr']:.2e}",
                 f"{r['images_per_second']:.0f} img/s"]
        if "rank1" in r:
            parts += [f"R1 {r['rank1']:.3f}", f"mAP {r['mAP']:.3f}", f"mINP {r['mINP']:.3f}", f"val loss {r['val_loss']:.4f}"]
        self.console.print(" · ".join(parts))

    def after_train(self, trainer: Trainer) -> None:
        """Stop the progress display."""
        self.close()

    def on_interrupt(self, trainer: Trainer) -> None:
        """Stop the progress display."""
        self.close()

    def close(self) -> None:
        """Stop the progress display if it is running (safe to call twice)."""
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
