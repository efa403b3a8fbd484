"""Runs that repeat one experiment with different seeds, and the mean ± std of their final metrics.

Two run directories belong to one *seed group* when their resolved specs (``spec.toml``) are equal
once ``seed``, ``name`` and ``runtime.threads`` are ignored (the thread count is how a launcher shares
the cores, not part of the experiment). ``reid run SPEC --seeds 0,1,2`` writes such a group into
``OUT/seed-0``, ``OUT/seed-1``, ``OUT/seed-2``; a sweep writes one group per grid point.

Per group and final metric (Rank-k for the spec's ``eval.ranks``, mAP, mINP, from the ``final`` epoch of
``summary.json``) a :class:`MetricStats` keeps every seed's value, the mean and the **sample** standard
deviation (Bessel's correction, divisor n − 1; ``None`` for a group of one run).

Example:
    >>> stats = MetricStats.of("rank1", [0.5, 0.7, 0.6])
    >>> round(stats.mean, 6), round(stats.std, 6), stats.values
    (0.6, 0.1, (0.5, 0.7, 0.6))
    >>> stats.format()
    '60.00 ± 10.00 %'
"""

from __future__ import annotations

import json
import os
import re
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from reid.engine.rundir import SPEC_FILE, SUMMARY_FILE, RunDir
from reid.errors import ReidError
from reid.spec import Spec, load_spec_text

#: the directories ``reid run --seeds`` gives its seeds (:func:`reid.sweep.plan.seed_dir_name`)
SEED_DIR = re.compile(r"^seed-(\d+)$")


@dataclass(frozen=True)
class MetricStats:
    """One final metric over the seeds of a group.

    Attributes:
        name: the ``summary.json`` key (``rank1``, ``rank5``, ``mAP``, ``mINP`` …).
        values: every seed's value, in the group's seed order.
        mean: arithmetic mean of ``values``.
        std: sample standard deviation (divisor n − 1); ``None`` when there is one value.
    """

    name: str
    values: tuple[float, ...]
    mean: float
    std: float | None

    @classmethod
    def of(cls, name: str, values: Sequence[float]) -> MetricStats:
        """Mean and sample std of ``values`` (at least one)."""
        values = tuple(float(v) for v in values)
        std = statistics.stdev(values) if len(values) > 1 else None
        return cls(name, values, statistics.fmean(values), std)

    def format(self, digits: int = 2) -> str:
        """``mean ± std`` as percentages (scores are 0–1), e.g. ``'60.00 ± 10.00 %'``; no ``±`` for one seed."""
        if self.std is None:
            return f"{100 * self.mean:.{digits}f} %"
        return f"{100 * self.mean:.{digits}f} ± {100 * self.std:.{digits}f} %"

    def to_dict(self) -> dict:
        """JSON form: ``{"mean", "std", "values"}``."""
        return {"mean": self.mean, "std": self.std, "values": list(self.values)}


@dataclass(frozen=True)
class SeedRun:
    """One finished run of a group: where it is, its seed and its final metrics."""

    path: Path
    seed: int
    final: dict[str, float]


@dataclass(frozen=True)
class SeedGroup:
    """Finished runs whose specs differ only in ``seed`` (and ``name``, ``runtime.threads``).

    Attributes:
        label: the group's directory (the parent of ``seed-N`` folders) or the run's own path.
        spec: the spec of the first run (its ``seed`` is that run's).
        runs: the runs, sorted by seed.
        metrics: final-metric statistics, Rank-k first, then mAP and mINP; a metric missing
            from some run's summary is left out.
    """

    label: str
    spec: Spec
    runs: tuple[SeedRun, ...]
    metrics: tuple[MetricStats, ...]

    @property
    def seeds(self) -> tuple[int, ...]:
        """The seeds of the runs, in order."""
        return tuple(r.seed for r in self.runs)

    def metric(self, name: str) -> MetricStats:
        """The statistics of metric ``name``; a :class:`ReidError` listing the known ones otherwise."""
        for m in self.metrics:
            if m.name == name:
                return m
        raise ReidError(f"no metric {name!r} in this group", where=self.label,
                        fix=f"use one of {', '.join(m.name for m in self.metrics)}")

    def to_dict(self) -> dict:
        """JSON form: label, seeds, run paths and ``{metric: {mean, std, values}}``."""
        return {"label": self.label, "seeds": list(self.seeds), "runs": [str(r.path) for r in self.runs],
                "metrics": {m.name: m.to_dict() for m in self.metrics}}


def beyond_spread(a: MetricStats, b: MetricStats) -> bool:
    """Whether two groups' means differ by more than their seed-to-seed spread: ``|mean_a − mean_b| > std_a + std_b``.

    A rough screen (sample standard deviations, no test of significance); both need two or more seeds.

    Example:
        >>> a = MetricStats.of("rank1", [0.60, 0.70, 0.65])                   # 65 ± 5 %
        >>> beyond_spread(a, MetricStats.of("rank1", [0.80, 0.82, 0.84])), beyond_spread(
        ...     a, MetricStats.of("rank1", [0.68, 0.70, 0.72]))             # 82 ± 2 % / 70 ± 2 %
        (True, False)

    Raises:
        ValueError: a group has a single seed (no spread).
    """
    if a.std is None or b.std is None:
        raise ValueError("the seed-to-seed spread needs two or more seeds in each group")
    return abs(a.mean - b.mean) > a.std + b.std


def final_metrics(run: RunDir) -> dict[str, float]:
    """The final Rank-k, mAP and mINP of a finished run (its :class:`~reid.engine.summary.RunSummary`), by name.

    The one place this module reads a summary; empty when the run never evaluated.
    """
    final = run.read_summary().final
    if final is None:
        return {}
    result = final.result
    return {f"rank{k}": result.rank(k) for k in result.ranks} | {"mAP": result.mAP, "mINP": result.mINP}


def metric_names(spec: Spec) -> list[str]:
    """The final metrics a group reports: Rank-k for ``eval.ranks``, then mAP and mINP.

    Example:
        >>> metric_names(Spec())
        ['rank1', 'rank5', 'rank10', 'mAP', 'mINP']
    """
    return [f"rank{r}" for r in spec.eval.ranks] + ["mAP", "mINP"]


def group_key(spec: Spec) -> str:
    """What must be equal for two runs to share a group: the spec without ``seed``, ``name`` and ``runtime.threads``.

    Example:
        >>> group_key(Spec(seed=1, name="a")) == group_key(Spec(seed=2, name="b"))
        True
        >>> group_key(Spec(runtime={"threads": 1})) == group_key(Spec()) != group_key(Spec(optim={"lr": 1e-3}))
        True
    """
    return json.dumps(spec.model_dump(mode="json", exclude={"seed": True, "name": True, "runtime": {"threads"}}),
                      sort_keys=True)


def finished_runs(root: Path | str) -> list[Path]:
    """Every finished run directory at or below ``root`` (one with ``spec.toml`` and ``summary.json``), sorted."""
    root = Path(root)
    return sorted(p.parent for p in root.rglob(SUMMARY_FILE) if (p.parent / SPEC_FILE).is_file())


def group_label(paths: Sequence[Path]) -> str:
    """The directory that names a group: the common parent of ``seed-N`` runs, else the common path.

    Example:
        >>> group_label([Path("runs/q8/seed-0"), Path("runs/q8/seed-1")])
        'runs/q8'
        >>> group_label([Path("runs/a")])
        'runs/a'
    """
    if all(SEED_DIR.match(p.name) for p in paths):
        paths = [p.parent for p in paths]
    return os.path.commonpath([str(p) for p in paths]) if len(set(paths)) > 1 else str(paths[0])


def group_runs(paths: Iterable[Path | str], skip_repeated_seeds: bool = False) -> list[SeedGroup]:
    """Group finished run directories by :func:`group_key`; groups in order of first appearance.

    ``skip_repeated_seeds``: a run whose seed its group already has is left out (the first given stays),
    as when a report compares a run with a copy or a rerun of itself; otherwise that is an error.

    Raises:
        ReidError: a path is not a finished run directory, or two runs of a group share a seed.
    """
    buckets: dict[str, list[tuple[Path, Spec]]] = {}
    for path in paths:
        run = RunDir(path)
        spec = load_spec_text(run.spec_text(), source=str(run.path / SPEC_FILE))
        bucket = buckets.setdefault(group_key(spec), [])
        if not (skip_repeated_seeds and any(s.seed == spec.seed for _, s in bucket)):
            bucket.append((run.path, spec))
    return [_group(members) for members in buckets.values()]


def _group(members: list[tuple[Path, Spec]]) -> SeedGroup:
    members = sorted(members, key=lambda m: (m[1].seed, str(m[0])))
    seeds = [spec.seed for _, spec in members]
    for a, b in zip(members, members[1:]):
        if a[1].seed == b[1].seed:
            raise ReidError(f"two runs of one group have the same seed {a[1].seed} ({a[0]} and {b[0]})",
                            where=str(b[0]), fix="give each repeated run its own seed (reid run --seeds)")
    runs = tuple(SeedRun(path, seed, final_metrics(RunDir(path))) for (path, _), seed in zip(members, seeds))
    spec = members[0][1]
    stats = tuple(MetricStats.of(name, [r.final[name] for r in runs])
                  for name in metric_names(spec) if all(name in r.final for r in runs))
    return SeedGroup(group_label([r.path for r in runs]), spec, runs, stats)
