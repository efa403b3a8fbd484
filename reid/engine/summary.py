"""The run summary (``summary.json``) as typed records; this module owns its JSON form.

A :class:`RunSummary` holds the final and best evaluated epochs (:class:`EpochMetrics`), wall time and
throughput, the device (:class:`DeviceInfo`), the dataset (:class:`reid.data.describe.DatasetInfo`),
the evaluation settings (:class:`EvalSettings`), the model size and library versions (:class:`Versions`).
Every ``summary.json`` this project has written loads (missing optional fields take defaults).

Example:
    >>> m = EpochMetrics.from_json({"epoch": 3, "rank1": 0.5, "rank5": 0.75, "mAP": 0.4, "mINP": 0.2,
    ...                             "val_loss": 0.3, "num_valid": 8, "num_skipped": 0})
    >>> m.rank(5), m.ranks
    (0.75, (1, 5))
    >>> EpochMetrics.from_json(m.to_json()) == m
    True
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from reid.data.describe import DatasetInfo


def _known(cls, data: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in data.items() if k in names}


@dataclass(frozen=True)
class EpochMetrics:
    """The evaluation numbers of one epoch, as ``metrics.jsonl`` logged them.

    Attributes:
        epoch: the epoch (1-based).
        rank_values: ``((k, Rank-k), ...)`` for the spec's ``eval.ranks``, ascending k.
        mAP, mINP: means over valid queries.
        val_loss: the validation triplet loss (None where not logged).
        num_valid, num_skipped: queries with / without a true match.
    """

    epoch: int
    rank_values: tuple[tuple[int, float], ...]
    mAP: float
    mINP: float
    val_loss: float | None
    num_valid: int
    num_skipped: int

    @property
    def ranks(self) -> tuple[int, ...]:
        """The ks logged, ascending."""
        return tuple(k for k, _ in self.rank_values)

    def rank(self, k: int) -> float | None:
        """Rank-``k`` (None when ``k`` was not logged)."""
        return dict(self.rank_values).get(k)

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> EpochMetrics:
        """From a flat record (``rank{k}``, ``mAP``, ``mINP``, ``val_loss``, counts, ``epoch``): a summary's
        ``final`` / ``best`` or an epoch line of ``metrics.jsonl``."""
        ranks = sorted((int(k[4:]), float(v)) for k, v in record.items() if k.startswith("rank") and k[4:].isdigit())
        return cls(epoch=int(record["epoch"]), rank_values=tuple(ranks), mAP=float(record["mAP"]),
                   mINP=float(record["mINP"]), val_loss=record.get("val_loss"),
                   num_valid=int(record.get("num_valid", 0)), num_skipped=int(record.get("num_skipped", 0)))

    def to_json(self) -> dict[str, Any]:
        """The flat record :meth:`from_json` reads."""
        out: dict[str, Any] = {f"rank{k}": v for k, v in self.rank_values}
        out.update(epoch=self.epoch, mAP=self.mAP, mINP=self.mINP, val_loss=self.val_loss,
                   num_valid=self.num_valid, num_skipped=self.num_skipped)
        return out


@dataclass(frozen=True)
class DeviceInfo:
    """Where a run trained: ``device`` (e.g. ``cuda:0``), its name, precision, channels_last, CPU threads."""

    device: str
    device_name: str
    precision: str
    channels_last: bool = False
    threads: int | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DeviceInfo:
        """From :meth:`reid.engine.runtime.Runtime.describe`'s dict (or a summary's ``device``)."""
        return cls(**_known(cls, data))

    def to_json(self) -> dict[str, Any]:
        """The JSON form (``threads`` only when known)."""
        out = asdict(self)
        if out["threads"] is None:
            del out["threads"]
        return out


@dataclass(frozen=True)
class EvalSettings:
    """How a run's validation was evaluated: resolved protocol, distance, normalisation, flip, max rank."""

    protocol: str
    distance: str
    normalize: bool
    flip: bool
    max_rank: int

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EvalSettings:
        """From a summary's ``evaluation``."""
        return cls(**_known(cls, data))

    def to_json(self) -> dict[str, Any]:
        """The JSON form."""
        return asdict(self)


@dataclass(frozen=True)
class Versions:
    """Library versions, Python, platform and git commit a run used (None where unknown)."""

    reid: str | None = None
    torch: str | None = None
    torchvision: str | None = None
    timm: str | None = None
    python: str | None = None
    platform: str | None = None
    git_commit: str | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Versions:
        """From :func:`reid.engine.rundir.environment` (or a summary's ``environment``)."""
        return cls(**_known(cls, data))

    def to_json(self) -> dict[str, Any]:
        """The JSON form."""
        return asdict(self)


@dataclass(frozen=True)
class RunSummary:
    """What ``summary.json`` records about a finished run.

    Attributes:
        name: the spec's name.
        run_dir: the run directory as written.
        epochs: epochs trained.
        final: the last evaluated epoch (None when nothing was evaluated): the headline numbers.
        best: the epoch the model-selection rule picked, with its numbers on the evaluated split (None when the
            rule selects nothing, ``eval.select_on = "none"``, or nothing was evaluated).
        wall_seconds: training + evaluation time over all sessions.
        last_session_seconds: wall time of the last session (start to end, building included).
        mean_images_per_second: mean training throughput over epochs.
        device, dataset, evaluation, environment: see the classes.
        parameters: the model's parameter count.
        selection: what picked ``best`` (and ``best.pt``), in words (:func:`reid.engine.selection.selection_text`);
            summaries written before it was recorded picked the best Rank-1 on the evaluated split.
    """

    name: str
    run_dir: str
    epochs: int
    final: EpochMetrics | None
    best: EpochMetrics | None
    wall_seconds: float
    last_session_seconds: float
    mean_images_per_second: float
    device: DeviceInfo
    dataset: DatasetInfo
    evaluation: EvalSettings
    parameters: int
    environment: Versions
    selection: str = "best Rank-1 on the evaluated split"

    def to_json(self) -> dict[str, Any]:
        """The ``summary.json`` object (``final`` / ``best`` are ``{}`` when nothing was evaluated)."""
        return {
            "name": self.name, "run_dir": self.run_dir, "epochs": self.epochs,
            "final": self.final.to_json() if self.final else {},
            "best": self.best.to_json() if self.best else {},
            "wall_seconds": self.wall_seconds, "last_session_seconds": self.last_session_seconds,
            "mean_images_per_second": self.mean_images_per_second,
            "device": self.device.to_json(), "dataset": self.dataset.to_json(),
            "evaluation": self.evaluation.to_json(), "parameters": self.parameters,
            "environment": self.environment.to_json(), "selection": self.selection,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunSummary:
        """Inverse of :meth:`to_json`; reads every ``summary.json`` this project has written."""
        return cls(
            name=data["name"], run_dir=data.get("run_dir", ""), epochs=int(data["epochs"]),
            final=EpochMetrics.from_json(data["final"]) if data.get("final") else None,
            best=EpochMetrics.from_json(data["best"]) if data.get("best") else None,
            wall_seconds=float(data["wall_seconds"]), last_session_seconds=float(data.get("last_session_seconds", 0.0)),
            mean_images_per_second=float(data["mean_images_per_second"]),
            device=DeviceInfo.from_json(data["device"]), dataset=DatasetInfo.from_json(data["dataset"]),
            evaluation=EvalSettings.from_json(data["evaluation"]), parameters=int(data["parameters"]),
            environment=Versions.from_json(data.get("environment", {})),
            **({"selection": data["selection"]} if "selection" in data else {}),
        )
