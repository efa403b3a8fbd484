"""Experiment trackers as hooks: TensorBoard (on by default) and MLflow (``[runtime] tracking = "mlflow"``).

Both see the same numbers, named the same way (:func:`step_scalars`, :func:`epoch_scalars`), at the same
x-axis — the global step, which ``metrics.jsonl`` records as ``step`` — so a TensorBoard curve, an MLflow
metric and a line of ``metrics.jsonl`` can be compared point by point. :func:`tracking_hooks` builds the
ones a spec asks for; rank 0 alone registers them (see :mod:`reid.engine.experiment`).

Example:
    >>> epoch_scalars({"kind": "epoch", "epoch": 2, "step": 8, "train_loss": 1.5, "lr": 0.01,
    ...                "images_per_second": 120.0, "rank1": 0.5, "rank5": 0.75, "mAP": 0.25, "mINP": 0.125})
    {'epoch/train_loss': 1.5, 'epoch/lr': 0.01, 'epoch/images_per_second': 120.0, 'eval/rank1': 0.5, 'eval/rank5': 0.75, 'eval/mAP': 0.25, 'eval/mINP': 0.125}
    >>> flatten_spec({"name": "q8", "optim": {"lr": 0.001, "betas": [0.9, 0.999]}})
    {'name': 'q8', 'optim.lr': '0.001', 'optim.betas': '[0.9, 0.999]'}
"""

from __future__ import annotations

from typing import Any, Callable

from rich.console import Console

from reid.engine.rundir import RunDir
from reid.engine.trainer import Hook, StepOutput
from reid.spec import Spec

EVAL_KEYS = ("mAP", "mINP", "val_loss")


def step_scalars(out: StepOutput, lr: float) -> dict[str, float]:
    """The scalars of one read-back training step: ``train/loss``, ``train/loss_<part>``, ``train/lr``.

    Call it only where the trainer has read the loss back (``trainer.synced``): it reads ``out.values()``.
    """
    values = out.values()
    return {"train/loss": values["loss"], **{f"train/loss_{k}": values[k] for k in out.parts}, "train/lr": lr}


def epoch_scalars(record: dict[str, Any]) -> dict[str, float]:
    """The scalars of one ``metrics.jsonl`` epoch record: training loss, lr, img/s, Rank-k, mAP, mINP, val loss."""
    out = {"epoch/train_loss": record["train_loss"], "epoch/lr": record["lr"],
           "epoch/images_per_second": record["images_per_second"]}
    ranks = sorted((int(k[4:]), k) for k in record if k.startswith("rank") and k[4:].isdigit())
    out.update({f"eval/{key}": float(record[key]) for _, key in ranks})
    out.update({f"eval/{key}": float(record[key]) for key in EVAL_KEYS if record.get(key) is not None})
    return out


def flatten_spec(table: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """A nested spec table as ``{"section.key": "value"}`` (tracker parameters are flat strings)."""
    out: dict[str, str] = {}
    for key, value in table.items():
        if isinstance(value, dict):
            out.update(flatten_spec(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = str(value)
    return out


def tracking_hooks(run: RunDir, spec: Spec, console: Console | None = None) -> list[Hook]:
    """The tracker hooks ``spec`` asks for (``runtime.tensorboard``, ``runtime.tracking``), in the order they run;
    after :class:`reid.engine.hooks.MetricsHook`, whose epoch record they read. ``console`` shows their warnings."""
    hooks: list[Hook] = []
    if spec.runtime.tensorboard:
        from reid.engine.tensorboard_hook import TensorBoardHook

        hooks.append(TensorBoardHook(run, spec))
    if spec.runtime.tracking == "mlflow":
        from reid.engine.mlflow_hook import MLflowHook

        hooks.append(MLflowHook(run, spec, warn=warning_printer(console or Console(stderr=True))))
    return hooks


def warning_printer(console: Console) -> Callable[[str], None]:
    """A function that prints ``warning: <message>`` on ``console`` (the trackers' one warning)."""
    return lambda message: console.print(f"[yellow]warning:[/] {message}", soft_wrap=True, highlight=False)
