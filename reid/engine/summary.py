"""The run summary (``summary.json``) as typed records; this module owns its JSON form.

A :class:`RunSummary` holds the final and best evaluated epochs (:class:`EvaluatedEpoch`: an epoch and its
whole :class:`~reid.evaluation.EvalResult`), wall time and throughput, the device (:class:`DeviceInfo`), the
dataset (:class:`reid.data.describe.DatasetInfo`), the evaluation settings (:class:`EvalSettings`), the model
size and library versions (:class:`Versions`).

Every ``summary.json`` this project has written loads (missing optional fields take defaults). Summaries
written before ``final`` / ``best`` carried their whole result hold flat records (``rank{k}``, ``mAP``,
``mINP``, ``val_loss``, counts, ``epoch``) without the CMC: :meth:`reid.engine.rundir.RunDir.read_summary`
completes them from the run's ``metrics.jsonl``, whose epoch records always logged it
(:func:`completed_from_log`); a record that stays without one gets the CMC :func:`logged_result` reconstructs,
exact at the logged ranks.

Example:
    >>> settings = EvalSettings(protocol="all", distance="euclidean", normalize=False, flip=False, max_rank=5)
    >>> old = {"epoch": 3, "rank1": 0.5, "rank5": 0.75, "mAP": 0.4, "mINP": 0.2, "val_loss": 0.3,
    ...        "num_valid": 8, "num_skipped": 0}
    >>> e = EvaluatedEpoch.from_json(old, settings)
    >>> e.epoch, e.result.rank(1), e.result.rank(5), e.result.mAP, e.result.ranks
    (3, 0.5, 0.75, 0.4, (1, 5))
    >>> EvaluatedEpoch.from_json(e.to_json(), settings) == e
    True
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Iterable

from reid.data.describe import DatasetInfo
from reid.evaluation import EvalResult
from reid.spec import EvalSpec


def _known(cls, data: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in data.items() if k in names}


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
    """How a run's validation was evaluated: resolved protocol, distance, normalisation, flip, max rank and
    re-ranking (``rerank``: False in summaries written before it was recorded, unless
    :func:`completed_from_log` took it from the run's spec)."""

    protocol: str
    distance: str
    normalize: bool
    flip: bool
    max_rank: int
    rerank: bool = False

    @classmethod
    def of_spec(cls, spec: EvalSpec, protocol: str) -> EvalSettings:
        """The settings of a spec's ``[eval]`` table, with ``protocol`` (:func:`reid.evaluation.resolve_protocol`'s).

        Example:
            >>> EvalSettings.of_spec(EvalSpec(distance="cosine"), "market").distance
            'cosine'
        """
        return cls(protocol=protocol, distance=spec.distance, normalize=spec.normalize, flip=spec.flip,
                   max_rank=spec.max_rank, rerank=spec.rerank)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EvalSettings:
        """From a summary's ``evaluation``."""
        return cls(**_known(cls, data))

    def to_json(self) -> dict[str, Any]:
        """The JSON form."""
        return asdict(self)


def logged_cmc(values: dict[int, float]) -> tuple[float, ...]:
    """A CMC from Rank-k at some ks only: exact at those ks, elsewhere the lower bound the known values give
    (a CMC never decreases: the value at the nearest logged k below, 0 below the first); it ends at the
    largest logged k, since nothing past it is known.

    Example:
        >>> logged_cmc({1: 0.5, 3: 0.8})
        (0.5, 0.5, 0.8)
    """
    return tuple(max((v for k, v in values.items() if k <= rank), default=0.0) for rank in range(1, max(values) + 1))


def logged_result(record: dict[str, Any], settings: EvalSettings) -> EvalResult:
    """The :class:`~reid.evaluation.EvalResult` of a flat record (an epoch line of ``metrics.jsonl``, or an older
    summary's ``final`` / ``best``) evaluated under ``settings``: ``ranks`` are its ``rank{k}`` keys, the CMC its
    ``cmc`` when it has one, else :func:`logged_cmc` of its Rank-k values.

    Example:
        >>> s = EvalSettings(protocol="all", distance="euclidean", normalize=False, flip=False, max_rank=3)
        >>> r = logged_result({"rank1": 0.5, "mAP": 0.4, "mINP": 0.2, "cmc": [0.5, 0.7, 0.9]}, s)
        >>> r.rank(2), r.ranks, r.num_valid, r.val_loss
        (0.7, (1,), 0, None)
    """
    values = {int(k[4:]): float(v) for k, v in record.items() if k.startswith("rank") and k[4:].isdigit()}
    cmc = tuple(float(x) for x in record["cmc"]) if "cmc" in record else logged_cmc(values)
    return EvalResult(cmc=cmc, mAP=float(record["mAP"]), mINP=float(record["mINP"]),
                      num_valid=int(record.get("num_valid", 0)), num_skipped=int(record.get("num_skipped", 0)),
                      protocol=settings.protocol, distance=settings.distance, normalize=settings.normalize,
                      ranks=tuple(sorted(values)), rerank=settings.rerank, flip=settings.flip,
                      val_loss=record.get("val_loss"))


@dataclass(frozen=True)
class EvaluatedEpoch:
    """An evaluated epoch: its number (1-based) and its whole evaluation (``result``).

    Example:
        >>> r = EvalResult(cmc=(0.5, 1.0), mAP=0.6, mINP=0.4, num_valid=4, num_skipped=0, protocol="all",
        ...                distance="cosine", normalize=True, ranks=(1,))
        >>> sorted(EvaluatedEpoch(2, r).to_json())[:6]
        ['cmc', 'distance', 'epoch', 'flip', 'mAP', 'mINP']
    """

    epoch: int
    result: EvalResult

    def to_json(self) -> dict[str, Any]:
        """``epoch`` and every field of the result (:meth:`~reid.evaluation.EvalResult.to_json`), with the
        ``rank{k}`` values of its ``ranks`` as ``metrics.jsonl`` logs them (for readers of the file; ignored when
        it is read back)."""
        return {"epoch": self.epoch, **self.result.to_record(), **self.result.to_json()}

    @classmethod
    def from_json(cls, record: dict[str, Any], settings: EvalSettings) -> EvaluatedEpoch:
        """From :meth:`to_json`'s object, or from a flat record without the evaluation's settings (an epoch line of
        ``metrics.jsonl``, an older summary's ``final`` / ``best``), which ``settings`` complete
        (:func:`logged_result`)."""
        result = EvalResult.from_json(record) if "protocol" in record else logged_result(record, settings)
        return cls(epoch=int(record["epoch"]), result=result)


def written_without_cmc(data: dict[str, Any]) -> bool:
    """Whether a ``summary.json`` object has a ``final`` or ``best`` record without its CMC (summaries written
    before they carried the whole result).

    Example:
        >>> written_without_cmc({"final": {"epoch": 1, "rank1": 0.5}, "best": {}}), written_without_cmc({"final": {}})
        (True, False)
    """
    return any(data.get(key) and "cmc" not in data[key] for key in ("final", "best"))


def completed_from_log(data: dict[str, Any], epoch_records: Iterable[dict[str, Any]], rerank: bool) -> dict[str, Any]:
    """An older ``summary.json`` object completed from its run: each ``final`` / ``best`` record without a CMC
    takes the ``cmc`` of the run's ``metrics.jsonl`` record of its epoch (the last one logged for it, used only
    when its Rank-1 and mAP are the summary's), and ``evaluation.rerank`` is the spec's when not recorded.

    Example:
        >>> data = {"final": {"epoch": 2, "rank1": 0.5, "mAP": 0.4}, "best": {}, "evaluation": {}}
        >>> log = [{"epoch": 2, "rank1": 0.5, "mAP": 0.4, "cmc": [0.5, 0.9]}]
        >>> done = completed_from_log(data, log, rerank=False)
        >>> done["final"]["cmc"], done["evaluation"]["rerank"]
        ([0.5, 0.9], False)
    """
    logged = {int(r["epoch"]): r for r in epoch_records if "cmc" in r and "epoch" in r}
    out = dict(data, evaluation={"rerank": rerank, **data.get("evaluation", {})})
    for key in ("final", "best"):
        record = data.get(key)
        match = logged.get(int(record["epoch"])) if record and "cmc" not in record else None
        if match is not None and all(match.get(k) == record.get(k) for k in ("rank1", "mAP")):
            out[key] = {**record, "cmc": match["cmc"]}
    return out




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
    final: EvaluatedEpoch | None
    best: EvaluatedEpoch | None
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
        """Inverse of :meth:`to_json`; reads every ``summary.json`` this project has written (an older one's flat
        ``final`` / ``best``: see :func:`logged_result`, and :func:`completed_from_log` for their CMC)."""
        evaluation = EvalSettings.from_json(data["evaluation"])
        return cls(
            name=data["name"], run_dir=data.get("run_dir", ""), epochs=int(data["epochs"]),
            final=EvaluatedEpoch.from_json(data["final"], evaluation) if data.get("final") else None,
            best=EvaluatedEpoch.from_json(data["best"], evaluation) if data.get("best") else None,
            wall_seconds=float(data["wall_seconds"]), last_session_seconds=float(data.get("last_session_seconds", 0.0)),
            mean_images_per_second=float(data["mean_images_per_second"]),
            device=DeviceInfo.from_json(data["device"]), dataset=DatasetInfo.from_json(data["dataset"]),
            evaluation=evaluation, parameters=int(data["parameters"]),
            environment=Versions.from_json(data.get("environment", {})),
            **({"selection": data["selection"]} if "selection" in data else {}),
        )
