"""TensorBoard event files for every run, under ``RUN/tb/`` (``tensorboard --logdir runs`` during and after training).

Scalars (x-axis: the global step, as ``metrics.jsonl``'s ``step``): ``train/loss`` and its parts and
``train/lr`` at the trainer's read-back steps (every ``runtime.log_every``), and per epoch
``epoch/train_loss``, ``epoch/lr``, ``epoch/images_per_second``, ``eval/rank{k}``, ``eval/mAP``,
``eval/mINP``, ``eval/val_loss``. The resolved spec is a text entry (``spec``). Events are flushed at
every epoch's end. A resumed run purges the events its previous session wrote after the step it
resumes from, so the curves hold each step once.
"""

from __future__ import annotations

from reid.engine.rundir import RunDir
from reid.engine.tracking import epoch_scalars, step_scalars
from reid.engine.trainer import ClosingHook, Trainer
from reid.errors import ReidError
from reid.spec import Spec

TB_DIR = "tb"


class TensorBoardHook(ClosingHook):
    """Writes the run's scalars and spec to ``RUN/tb/`` with :class:`torch.utils.tensorboard.SummaryWriter`.

    Args:
        run: the run directory.
        spec: the resolved spec (written as text).
    """

    def __init__(self, run: RunDir, spec: Spec):
        self.run, self.spec = run, spec
        self.writer = None

    def before_train(self, trainer: Trainer) -> None:
        """Open the writer (purging a previous session's events after the resumed step) and write the spec."""
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ReidError("TensorBoard is not installed", where="runtime.tensorboard",
                            fix="pip install tensorboard, or set runtime.tensorboard = false") from None
        step = trainer.state.global_step
        self.writer = SummaryWriter(log_dir=str(self.run.path / TB_DIR), purge_step=step if step > 0 else None,
                                    flush_secs=60)
        self.writer.add_text("spec", "```toml\n" + self.spec.to_toml() + "```", global_step=step)

    def after_step(self, trainer: Trainer) -> None:
        """Add the step's loss and lr at read-back steps (the loss is on the host already: no extra sync)."""
        if trainer.synced and self.writer is not None:
            for tag, value in step_scalars(trainer.step_output, trainer.schedule.lr).items():
                self.writer.add_scalar(tag, value, trainer.state.global_step)

    def after_epoch(self, trainer: Trainer) -> None:
        """Add the epoch's record (training and evaluation numbers), then flush to disk."""
        if self.writer is None:
            return
        for tag, value in epoch_scalars(trainer.epoch_record).items():
            self.writer.add_scalar(tag, value, trainer.state.global_step)
        self.writer.flush()

    def close(self) -> None:
        """Flush and close the writer (safe to call twice)."""
        if self.writer is not None:
            self.writer.close()
            self.writer = None
