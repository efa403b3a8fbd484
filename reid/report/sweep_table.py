"""The sweep table: one row per grid point, mean ± sample std over its seeds, sorted by any metric.

Rows come from a :class:`reid.sweep.plan.Plan`; each point's finished runs form a
:class:`~reid.report.seed_groups.SeedGroup`. A point without a finished run stays in the table
(as ``–``) and sorts last. ``sweep.md`` is for people, ``sweep.json`` keeps every seed's value.

Example::

    rows = sweep_rows(plan)
    print(sweep_markdown(sort_rows(rows, "mAP"), [a.key for a in axes], "mAP"))
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from reid.engine.checkpoint import atomic_write_text
from reid.errors import ReidError
from reid.report.markdown import metric_label, table
from reid.report.seed_groups import SeedGroup, group_runs, metric_names
from reid.sweep.grid import GridPoint, canonical
from reid.sweep.plan import Plan, RunState

MARKDOWN_FILE = "sweep.md"
JSON_FILE = "sweep.json"


@dataclass(frozen=True)
class SweepRow:
    """One grid point: its settings, its directory, how many seeds finished, and their statistics."""

    point: GridPoint
    path: Path
    planned: int
    group: SeedGroup | None

    @property
    def finished(self) -> int:
        """Seeds with a finished run."""
        return len(self.group.runs) if self.group else 0

    def mean(self, metric: str) -> float | None:
        """The mean of ``metric`` over finished seeds (None when none finished)."""
        return self.group.metric(metric).mean if self.group else None

    def to_dict(self) -> dict:
        """JSON form: settings, directory, seeds planned / finished, and the group's statistics."""
        return {"settings": dict(self.point.settings), "path": str(self.path), "planned": self.planned,
                "finished": self.finished, "metrics": self.group.to_dict()["metrics"] if self.group else {},
                "seeds": list(self.group.seeds) if self.group else []}


def sweep_rows(plan: Plan) -> list[SweepRow]:
    """A row per grid point of ``plan``, in plan order."""
    rows = []
    for point in plan.points:
        runs = plan.runs_of(point)
        done = [r.path for r in runs if r.state is RunState.finished]
        groups = group_runs(done)  # one group: a point's runs differ only in seed
        rows.append(SweepRow(point, plan.out / point.name, len(runs), groups[0] if groups else None))
    return rows


def metric_choices(rows: list[SweepRow]) -> list[str]:
    """The metrics every finished row has (Rank-k, mAP, mINP)."""
    names = [[m.name for m in r.group.metrics] for r in rows if r.group]
    return [n for n in names[0] if all(n in other for other in names)] if names else []


def sort_rows(rows: list[SweepRow], metric: str) -> list[SweepRow]:
    """Rows by the mean of ``metric``, best first (rows without a finished run last).

    ``metric`` is a summary key (``rank1``, ``rank5``, ``mAP``, ``mINP``; case-insensitive).
    """
    choices = metric_choices(rows)
    if not choices:
        return list(rows)
    key = sort_metric(metric, choices)
    return sorted(rows, key=lambda r: (r.group is None, -(r.mean(key) or 0.0)))


def sort_metric(metric: str, choices: list[str]) -> str:
    """The metric of ``choices`` that ``metric`` names (case-insensitive); a :class:`ReidError` listing them otherwise.

    Example:
        >>> sort_metric("map", ["rank1", "mAP"])
        'mAP'
    """
    for choice in choices:
        if choice.lower() == metric.lower():
            return choice
    raise ReidError(f"cannot sort by {metric!r}", where="--sort", fix=f"use one of {', '.join(choices)}")


def sweep_markdown(rows: list[SweepRow], keys: list[str], sort: str) -> str:
    """The table: a column per swept key, seeds finished, mean ± std per metric, every seed of the sort metric."""
    metrics = metric_choices(rows)
    sort_key = sort_metric(sort, metrics) if metrics else None  # no metrics until a run has finished
    headers = keys + ["seeds"] + [metric_label(m) for m in metrics]
    if sort_key:
        headers.append(f"{metric_label(sort_key)} per seed")
    body = []
    for row in rows:
        cells = [canonical(v) for _, v in row.point.settings] + [f"{row.finished}/{row.planned}"]
        cells += [row.group.metric(m).format() if row.group else "–" for m in metrics]
        if sort_key:
            cells.append(", ".join(f"{100 * v:.2f}" for v in row.group.metric(sort_key).values) if row.group else "–")
        body.append(cells)
    align = "l" * len(keys) + "r" * (len(headers) - len(keys))
    note = (f"Mean ± sample standard deviation (n − 1) over seeds, in %; sorted by {metric_label(sort_key)}."
            if sort_key else "No run has finished yet.")
    return table(headers, body, align=align) + "\n\n" + note + "\n"


def write_sweep_table(plan: Plan, sort: str = "rank1") -> tuple[Path, Path]:
    """Write ``sweep.md`` and ``sweep.json`` into the plan's output directory; return their paths."""
    sort_metric(sort, metric_names(plan.runs[0].spec))
    rows = sort_rows(sweep_rows(plan), sort)
    keys = [k for k, _ in plan.points[0].settings] if plan.points else []
    md, js = plan.out / MARKDOWN_FILE, plan.out / JSON_FILE
    plan.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(md, f"# Sweep of `{plan.spec_path}`\n\n" + sweep_markdown(rows, keys, sort))
    data = {"spec": str(plan.spec_path), "keys": keys, "seeds": list(plan.seeds), "sort": sort,
            "rows": [r.to_dict() for r in rows]}
    atomic_write_text(js, json.dumps(data, indent=2, sort_keys=True) + "\n")
    return md, js
