"""Interrupting a run at a chosen step, for the tests that resume it."""

import signal

from reid.engine.trainer import Trainer


def sigint_at_step(monkeypatch, step: int) -> None:
    """Send this process Ctrl-C after optimiser step ``step`` (the trainer stops at the step boundary)."""
    original = Trainer.run_step

    def run_step(self, images, pids):
        out = original(self, images, pids)
        if self.state.global_step + 1 == step:
            signal.raise_signal(signal.SIGINT)
        return out

    monkeypatch.setattr(Trainer, "run_step", run_step)
