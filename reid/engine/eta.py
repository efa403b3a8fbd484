"""How long a run will take: seconds per step measured after a warm-up, plus its evaluations.

:class:`RunClock` watches the training steps. The first ``warmup_steps`` are left out (they
include one-off costs: oneDNN / cuDNN kernel selection, lazy allocations); once ``measure_steps``
more have run, it produces an :class:`Estimate` of the whole run, training and the evaluations
still to come. An evaluation that has not run yet is estimated from the training speed: a
forward pass costs about a third of a training step per image (``reid bench``: embedding runs
at ×3.3 training's img/s); once one has run, its measured time replaces that guess.

Example:
    >>> plan = RunPlan(total_steps=100, steps_per_epoch=10, batch_images=32, eval_epochs=(5, 10), eval_forwards=640)
    >>> clock = RunClock(plan, start_step=0, now=0.0, warmup_steps=2, measure_steps=4)
    >>> [clock.step(s, epochs_done=0, now=float(s)) for s in range(1, 6)]
    [None, None, None, None, None]
    >>> e = clock.step(6, epochs_done=0, now=6.0)
    >>> e.images_per_second, e.train_seconds, e.eval_seconds
    (32.0, 94.0, 13.333333333333332)
    >>> format_duration(e.total_seconds)
    '1 min 53 s'
"""

from __future__ import annotations

from dataclasses import dataclass

FORWARD_SHARE = 1 / 3  # a forward pass per image, as a share of a training step per image (forward + backward)


@dataclass(frozen=True)
class RunPlan:
    """What a run still has to do: its steps, its batch, and when and how much it evaluates.

    Attributes:
        total_steps: optimiser steps of the whole run.
        steps_per_epoch: steps in one epoch.
        batch_images: images per step (the global batch).
        eval_epochs: the epochs (1-based) after which an evaluation runs.
        eval_forwards: images one evaluation passes through the model (× 2 with flip averaging).
    """

    total_steps: int
    steps_per_epoch: int
    batch_images: int
    eval_epochs: tuple[int, ...]
    eval_forwards: int

    def evaluations_after(self, epochs_done: int) -> int:
        """Evaluations still to run once ``epochs_done`` epochs (and their evaluations) are done.

        Example:
            >>> RunPlan(100, 10, 32, (5, 10), 640).evaluations_after(5)
            1
        """
        return sum(1 for e in self.eval_epochs if e > epochs_done)


@dataclass(frozen=True)
class Estimate:
    """The expected wall time of a run, from ``elapsed`` seconds in to its end."""

    images_per_second: float
    first_step: int  # the measured steps, inclusive
    last_step: int
    elapsed_seconds: float  # since the clock started (this session's first step)
    train_seconds: float  # training still to do
    eval_seconds: float  # evaluations still to do
    evaluations: int
    eval_measured: bool  # whether eval_seconds comes from a finished evaluation rather than the training speed

    @property
    def remaining_seconds(self) -> float:
        """Training and evaluation still to do."""
        return self.train_seconds + self.eval_seconds

    @property
    def total_seconds(self) -> float:
        """The whole session: elapsed plus remaining."""
        return self.elapsed_seconds + self.remaining_seconds

    def line(self) -> str:
        """One line for the console: measured speed, the whole run's expected time and its parts.

        Example:
            >>> Estimate(40.0, 3, 7, 5.0, 95.0, 20.0, 2, False).line()
            'ETA · 40 img/s measured over steps 3–7 · whole run ≈ 2 min 00 s (training 1 min 35 s left + 2 evaluations ≈ 20 s)'
        """
        evals = (f" + {self.evaluations} evaluation{'s' if self.evaluations != 1 else ''} ≈ {format_duration(self.eval_seconds)}"
                 if self.evaluations else "")
        return (f"ETA · {self.images_per_second:.0f} img/s measured over steps {self.first_step}–{self.last_step} · "
                f"whole run ≈ {format_duration(self.total_seconds)} "
                f"(training {format_duration(self.train_seconds)} left{evals})")


class RunClock:
    """Measures a run's speed after a warm-up and keeps its remaining time up to date.

    Args:
        plan: the run's steps and evaluations.
        start_step: steps already done when the clock starts (a resumed run).
        now: the clock's start, in seconds (``time.perf_counter()``).
        warmup_steps: steps left out of the measurement.
        measure_steps: steps measured before the first estimate (fewer if the epoch or the run ends first).
    """

    def __init__(self, plan: RunPlan, start_step: int, now: float, warmup_steps: int = 2, measure_steps: int = 5):
        self.plan, self.start_step, self.started = plan, start_step, now
        self.warmup_steps, self.measure_steps = warmup_steps, measure_steps
        self._mark: tuple[int, float] | None = None  # (step, time) where the measurement starts
        self._seconds_per_step: float | None = None
        self._measured = (0, 0)
        self._eval_seconds: list[float] = []

    @property
    def ready(self) -> bool:
        """Whether the training speed has been measured."""
        return self._seconds_per_step is not None

    def step(self, step: int, epochs_done: int, now: float) -> Estimate | None:
        """Note that ``step`` steps are done at ``now`` in epoch ``epochs_done + 1``; returns the first
        :class:`Estimate` once, else ``None``."""
        if self.ready:
            return None
        done = step - self.start_step
        if self._mark is None:
            if done >= min(self.warmup_steps, max(self.plan.total_steps - self.start_step - 1, 0)):
                self._mark = (step, now)
            return None
        measured = step - self._mark[0]
        epoch_end = step % self.plan.steps_per_epoch == 0 or step == self.plan.total_steps
        if measured < self.measure_steps and not epoch_end:
            return None
        self._seconds_per_step = (now - self._mark[1]) / measured
        self._measured = (self._mark[0] + 1, step)
        return self.estimate(step, epochs_done, now)

    def evaluated(self, seconds: float) -> None:
        """Record how long an evaluation took; later estimates use the mean of those measured."""
        self._eval_seconds.append(seconds)

    def estimate(self, step: int, epochs_done: int, now: float) -> Estimate | None:
        """The expected remaining and total time with ``step`` steps and the evaluations of ``epochs_done``
        epochs done at ``now`` (``None`` before :attr:`ready`)."""
        if not self.ready:
            return None
        evaluations = self.plan.evaluations_after(epochs_done)
        per_eval = (sum(self._eval_seconds) / len(self._eval_seconds) if self._eval_seconds
                    else self.plan.eval_forwards * FORWARD_SHARE * self._seconds_per_step / self.plan.batch_images)
        return Estimate(images_per_second=self.plan.batch_images / self._seconds_per_step,
                        first_step=self._measured[0], last_step=self._measured[1], elapsed_seconds=now - self.started,
                        train_seconds=(self.plan.total_steps - step) * self._seconds_per_step,
                        eval_seconds=evaluations * per_eval, evaluations=evaluations,
                        eval_measured=bool(self._eval_seconds))


def format_duration(seconds: float) -> str:
    """``seconds`` as ``"45 s"``, ``"3 min 05 s"`` or ``"1 h 02 min"``.

    Example:
        >>> format_duration(44.6), format_duration(185), format_duration(3725)
        ('45 s', '3 min 05 s', '1 h 02 min')
    """
    s = int(round(max(seconds, 0.0)))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"
