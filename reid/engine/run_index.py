"""Every run under some folders, read into typed :class:`RunRecord` rows (what ``reid runs`` prints).

A folder is searched recursively; a directory holding ``spec.toml`` is a run (``seed-N`` runs of a group
and a sweep's runs included), and nothing below a run is searched. Each run is read from its small files
only — ``spec.toml``, ``summary.json``, ``status.json``, the epoch lines of ``metrics.jsonl`` (unfinished
runs) and its lock — never a checkpoint, so a thousand runs list in about a second.

Status, in order: *finished* (``summary.json``), *running* (a process holds the run lock,
:meth:`reid.engine.rundir.RunDir.held_by`), *failed* (``status.json`` recorded an error: its line is shown),
else *interrupted* (Ctrl-C, ``kill -9``, a crash, a lost machine); ``resumable`` says ``checkpoints/last.pt``
exists for ``reid run --resume``.

Example:
    >>> import tempfile
    >>> from reid.engine.rundir import RunDir
    >>> root = Path(tempfile.mkdtemp())
    >>> RunDir(root / "a" / "seed-0").create(spec_toml='name = "a"\\nseed = 0\\n')
    >>> [(r.run, r.spec, r.seed, r.status.value) for r in list_runs([root])]  # doctest: +ELLIPSIS
    [('.../a/seed-0', 'a', 0, 'interrupted')]
"""

from __future__ import annotations

import json
import os
import tomllib
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from reid.errors import ReidError
from reid.spec import EvalSpec, Spec, load_spec_text

if TYPE_CHECKING:  # the run directory's readers import torch: on use, so that `reid --help` needs none of it
    from reid.engine.rundir import RunDir
    from reid.engine.summary import EvaluatedEpoch

SKIPPED_DIRS = {"checkpoints", "tb", "mlruns", "mlartifacts", "__pycache__", ".git"}  # never hold runs; can hold many files
EPOCH_MARK = '"kind": "epoch"'  # how an epoch line of metrics.jsonl reads (json.dumps with sort_keys)


class RunStatus(str, Enum):
    """Where a run stands."""

    running = "running"
    finished = "finished"
    failed = "failed"
    interrupted = "interrupted"


@dataclass(frozen=True)
class RunRecord:
    """One run directory as ``reid runs`` shows it.

    Attributes:
        run: the directory (as found below the folder the user named).
        spec: the spec's name (``?`` when ``spec.toml`` does not validate, e.g. a format not registered here).
        seed: the spec's seed (None when the spec does not validate).
        status: see :class:`RunStatus`.
        detail: the failed session's error line, or the process holding a running run.
        resumable: ``checkpoints/last.pt`` exists (``reid run --resume RUN`` continues from it).
        epochs_done, epochs_planned: finished epochs and ``schedule.epochs``.
        best, last: the evaluated epoch with the best Rank-1 and the last evaluated epoch (None before any). A run
            not finished has them from ``metrics.jsonl``, with its spec's evaluation settings as written
            (``protocol`` may read ``auto``: the data resolves it when the summary is written; the schema's
            defaults where the spec does not validate).
        wall_seconds: training + evaluation time so far, over all sessions.
        device: the device's name (empty until a session of this version started training).
        spec_values: the resolved spec (for ``--filter``); None when it does not validate.
    """

    run: str
    spec: str
    seed: int | None
    status: RunStatus
    detail: str
    resumable: bool
    epochs_done: int
    epochs_planned: int | None
    best: EvaluatedEpoch | None
    last: EvaluatedEpoch | None
    wall_seconds: float
    device: str
    spec_values: Spec | None = None

    def to_json(self) -> dict[str, Any]:
        """The row as ``reid runs --format json`` prints it."""
        return {"run": self.run, "spec": self.spec, "seed": self.seed, "status": self.status.value,
                "detail": self.detail, "resumable": self.resumable, "epochs_done": self.epochs_done,
                "epochs_planned": self.epochs_planned, "best": self.best.to_json() if self.best else None,
                "last": self.last.to_json() if self.last else None, "wall_seconds": self.wall_seconds,
                "device": self.device}


def find_run_dirs(roots: Sequence[Path | str]) -> list[Path]:
    """Every run directory at or below each root, in the order found (sorted per folder); each once.

    Raises:
        ReidError: a root does not exist.
    """
    from reid.engine.rundir import SPEC_FILE

    found: list[Path] = []
    for root in map(Path, roots):
        if not root.is_dir():
            raise ReidError("no such folder", where=str(root),
                            fix="pass the folder your runs are in (reid run writes them under runs/)")
        for here, dirs, files in os.walk(root):
            if SPEC_FILE in files:
                found.append(Path(here))
                dirs[:] = []
            else:
                dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS)
    if len(roots) < 2:
        return found
    seen: set[Path] = set()  # folders named twice, or one inside another
    return [p for p in found if not (p.resolve() in seen or seen.add(p.resolve()))]


def _epoch_records(run: RunDir) -> list[dict[str, Any]]:
    """The ``epoch`` records of ``metrics.jsonl`` (other lines are skipped unparsed; a torn line is dropped)."""
    from reid.engine.rundir import METRICS_FILE

    out: list[dict[str, Any]] = []
    try:
        with open(run.path / METRICS_FILE, encoding="utf-8") as f:
            for line in f:
                if EPOCH_MARK in line:
                    try:
                        out.append(json.loads(line))
                    except json.JSONDecodeError:
                        continue
    except OSError:
        pass
    return out


def _evaluated(records: Iterable[dict[str, Any]], spec: Spec | None) -> list[EvaluatedEpoch]:
    from reid.engine.summary import EvalSettings, EvaluatedEpoch

    evaluation = spec.eval if spec is not None else EvalSpec()
    settings = EvalSettings.of_spec(evaluation, protocol=evaluation.protocol)
    return [EvaluatedEpoch.from_json(r, settings) for r in records if "rank1" in r and "mAP" in r and "mINP" in r]


def read_run_record(path: Path | str) -> RunRecord:
    """Read one run directory (its small files only) into a :class:`RunRecord`."""
    from reid.engine.run_status import SessionState, read_status
    from reid.engine.rundir import LAST_CKPT, SPEC_FILE, RunDir

    run = RunDir(path)
    try:
        spec: Spec | None = load_spec_text(run.spec_text(), source=str(run.path / SPEC_FILE))
    except (ReidError, OSError):
        spec = None
    resumable = (run.path / LAST_CKPT).is_file()
    status, detail = RunStatus.interrupted, ""
    if run.is_finished():
        try:
            summary = run.read_summary()
        except ReidError as e:
            status, detail = RunStatus.failed, e.message
        else:
            return RunRecord(run=str(run.path), spec=spec.name if spec else summary.name,
                             seed=spec.seed if spec else None, status=RunStatus.finished, detail="",
                             resumable=False, epochs_done=summary.epochs,
                             epochs_planned=spec.schedule.epochs if spec else summary.epochs,
                             best=summary.best, last=summary.final, wall_seconds=summary.wall_seconds,
                             device=summary.device.device_name, spec_values=spec)
    session = read_status(run)
    holder = run.held_by()
    if status is RunStatus.failed:
        pass
    elif holder is not None:
        status, detail = RunStatus.running, holder
    elif session is not None and session.state is SessionState.failed:
        status, detail = RunStatus.failed, session.error
    epochs = _epoch_records(run)
    evaluated = _evaluated(epochs, spec)
    return RunRecord(run=str(run.path), spec=spec.name if spec else "?", seed=spec.seed if spec else None,
                     status=status, detail=detail, resumable=resumable and status is not RunStatus.running,
                     epochs_done=int(epochs[-1]["epoch"]) if epochs else 0,
                     epochs_planned=spec.schedule.epochs if spec else None,
                     best=max(evaluated, key=lambda m: m.result.rank(1)) if evaluated else None,
                     last=evaluated[-1] if evaluated else None,
                     wall_seconds=round(sum(r.get("train_seconds", 0.0) + r.get("eval_seconds", 0.0) for r in epochs), 2),
                     device=session.device_name if session else "", spec_values=spec)


@dataclass(frozen=True)
class SpecFilter:
    """``key=value`` on a dotted spec key; the value is read as TOML (``1e-3`` equals ``0.001``), else as text.

    Example:
        >>> f = SpecFilter.parse("optim.lr=1e-3")
        >>> f.key, f.value, f.matches(Spec(optim={"lr": 0.001})), f.matches(Spec())
        ('optim.lr', 0.001, True, False)
    """

    key: str
    value: Any

    @classmethod
    def parse(cls, text: str) -> SpecFilter:
        """Read ``key=value``; the key must be a key of the spec schema.

        Raises:
            ReidError: no ``=``, or a key the schema does not have.
        """
        if "=" not in text:
            raise ReidError(f"filter {text!r} has no '='", where="--filter", fix="write --filter section.key=value")
        key, raw = (part.strip() for part in text.split("=", 1))
        if _lookup(Spec().model_dump(mode="json", by_alias=True), key) is _MISSING:
            raise ReidError(f"no spec key {key!r}", where=f"--filter {text}",
                            fix="use a dotted key of reid/spec.py, e.g. optim.lr, loss.margin, seed")
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw
        return cls(key, value)

    def matches(self, spec: Spec | None) -> bool:
        """Whether the spec's value at :attr:`key` equals :attr:`value` (a run without a valid spec: never)."""
        return spec is not None and _lookup(spec.model_dump(mode="json", by_alias=True), self.key) == self.value


_MISSING = object()


def _lookup(table: dict[str, Any], dotted: str) -> Any:
    node: Any = table
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


class SortKey(str, Enum):
    """Columns ``reid runs --sort`` orders by (metrics and epochs: highest first; the rest ascending)."""

    run = "run"
    spec = "spec"
    seed = "seed"
    status = "status"
    epochs = "epochs"
    best_rank1 = "best-rank1"
    best_map = "best-mAP"
    last_rank1 = "last-rank1"
    last_map = "last-mAP"
    wall = "wall"
    device = "device"


def headline(m: EvaluatedEpoch | None, rank1: bool) -> float | None:
    """Rank-1 (``rank1``) or mAP of an evaluated epoch; None for none (what ``reid runs`` shows and sorts by).

    Example:
        >>> from reid.engine.summary import EvaluatedEpoch
        >>> from reid.evaluation import EvalResult
        >>> epoch = EvaluatedEpoch(2, EvalResult(cmc=(0.5, 1.0), mAP=0.6, mINP=0.4, num_valid=4, num_skipped=0,
        ...                                      protocol="all", distance="cosine", normalize=True))
        >>> headline(epoch, rank1=True), headline(epoch, rank1=False), headline(None, rank1=True)
        (0.5, 0.6, None)
    """
    return None if m is None else (m.result.rank(1) if rank1 else m.result.mAP)


def sort_records(records: Sequence[RunRecord], key: SortKey) -> list[RunRecord]:
    """Records ordered by ``key``; missing values (a run not yet evaluated) go last, ties by run."""
    numeric = {SortKey.epochs: lambda r: r.epochs_done, SortKey.wall: lambda r: r.wall_seconds,
               SortKey.best_rank1: lambda r: headline(r.best, True),
               SortKey.best_map: lambda r: headline(r.best, False),
               SortKey.last_rank1: lambda r: headline(r.last, True),
               SortKey.last_map: lambda r: headline(r.last, False)}
    by_run = sorted(records, key=lambda r: r.run)
    if key in numeric:
        value = numeric[key]
        return sorted(by_run, key=lambda r: (value(r) is None, -(value(r) or 0.0)))
    text = {SortKey.run: lambda r: r.run, SortKey.spec: lambda r: r.spec, SortKey.status: lambda r: r.status.value,
            SortKey.device: lambda r: r.device, SortKey.seed: lambda r: (r.seed is None, r.seed or 0)}[key]
    return sorted(by_run, key=text)


def list_runs(roots: Sequence[Path | str], filters: Sequence[SpecFilter] = (),
              sort: SortKey = SortKey.run) -> list[RunRecord]:
    """Every run below ``roots`` that matches every filter, read and sorted.

    Raises:
        ReidError: a root does not exist.
    """
    records = [read_run_record(p) for p in find_run_dirs(roots)]
    return sort_records([r for r in records if all(f.matches(r.spec_values) for f in filters)], sort)
