"""Run directories as reports read them: spec, metrics log, typed summary; provenance lines.

Example::

    run = load_run("runs/quickstart")
    run.summary.final.result.rank(1), run.evaluated[-1]["mAP"]
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from reid.data.describe import DatasetInfo
from reid.engine.rundir import RunDir
from reid.engine.summary import RunSummary
from reid.errors import ReidError
from reid.report.seed_groups import finished_runs
from reid.spec import DataSpec, Spec, load_spec_text


@dataclass
class Run:
    """One finished run directory, read once.

    Attributes:
        path: the directory as the user named it (shown in the report).
        spec: the resolved spec (``spec.toml``).
        iters: ``iter`` records of ``metrics.jsonl`` in order.
        epochs: ``epoch`` records in order.
        summary: the typed ``summary.json``.
    """

    path: Path
    spec: Spec
    iters: list[dict]
    epochs: list[dict]
    summary: RunSummary

    @property
    def name(self) -> str:
        """The spec's name."""
        return self.spec.name

    @property
    def evaluated(self) -> list[dict]:
        """Epoch records (``metrics.jsonl``) that carry evaluation metrics."""
        return [r for r in self.epochs if "rank1" in r]

    @property
    def rank_keys(self) -> list[str]:
        """``rank1``, ``rank5`` … for the spec's ``eval.ranks`` (keys of the epoch records)."""
        return [f"rank{r}" for r in self.spec.eval.ranks]

    @property
    def rundir(self) -> RunDir:
        """The :class:`RunDir` (checkpoint paths)."""
        return RunDir(self.path)


def load_run(path: str | Path) -> Run:
    """Read a finished run directory.

    Raises:
        ReidError: the path is not a directory, has no ``spec.toml`` or no ``summary.json``.
    """
    path = Path(path)
    if not path.is_dir():
        raise ReidError("not a run directory (no such directory)", where=str(path),
                        fix="pass a directory written by `reid run`, e.g. runs/quickstart")
    run = RunDir(path)
    spec = load_spec_text(run.spec_text(), source=str(path / "spec.toml"))
    summary = run.read_summary()
    records = list(run.read_metrics())
    return Run(path=path, spec=spec, iters=[r for r in records if r.get("kind") == "iter"],
               epochs=[r for r in records if r.get("kind") == "epoch"], summary=summary)


def expand_run_paths(paths: Sequence[str | Path]) -> list[Path]:
    """The run directories ``paths`` name: a run itself, or every finished run below a folder that is not one
    (e.g. ``runs/sweep`` holding ``seed-0``, ``seed-1`` …); a path named twice counts once.

    Raises:
        ReidError: no path was given, or a path is neither a run nor holds a finished run.
    """
    if not paths:
        raise ReidError("no run directory given", where="reid report",
                        fix="pass run directories written by `reid run`, e.g. reid report runs/quickstart")
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir() and not (p / "spec.toml").is_file():
            found = finished_runs(p)
            if not found:
                raise ReidError("not a run directory (no spec.toml), and no finished run below it", where=str(p),
                                fix="pass a directory written by `reid run`, e.g. runs/quickstart")
            out += found
        else:
            out.append(p)
    seen: set[Path] = set()
    return [p for p in out if not (p.resolve() in seen or seen.add(p.resolve()))]


def dataset_line(run: Run) -> str:
    """The dataset a run used, from its summary (what ``build_data(...).describe()`` said)."""
    return dataset_text(run.summary.dataset, run.spec.data)


def dataset_text(d: DatasetInfo, data: DataSpec) -> str:
    """One line describing a dataset from its :class:`DatasetInfo` and its ``[data]`` table."""
    if d.same_set:
        val = f"{d.validation_identities} identities, {d.query.images} images as one leave-one-out set"
    else:
        val = (f"{d.validation_identities} identities, query {d.query.images} images / "
               f"gallery {d.gallery.images} images")
    source = "synthetic pedestrians" if data.dataset == "synthetic" else f"`{data.root}`"
    return (f"{d.name} ({source}), {data.height}×{data.width} crops, "
            f"{d.cameras} camera(s) — training: {d.train.identities} "
            f"identities, {d.train.images} images; validation: {val}")


PROTOCOL_RULES = {
    "market": ("gallery images of the query's identity taken by the query's camera are ignored (junk); "
               "queries left without a true match are skipped"),
    "all": "nothing is ignored except, in a leave-one-out set, the query image itself",
}


def protocol_line(run: Run) -> str:
    """The evaluation protocol of a run: distance, normalisation, flip, junk rule, AP and mINP definitions."""
    ev = run.summary.evaluation
    distance = "squared euclidean" if ev.distance == "euclidean" else "cosine (1 − cos)"
    norm = "after L2 normalisation" if ev.normalize or ev.distance == "cosine" else "on raw embeddings"
    flip = "image + mirror averaged" if ev.flip else "no flip averaging"
    final = run.summary.final.result if run.summary.final else None
    skipped = f" ({final.num_skipped} skipped, {final.num_valid} valid)" if final else ""
    return (f"protocol `{ev.protocol}`: {PROTOCOL_RULES[ev.protocol]}{skipped}; {distance} distance "
            f"{norm}, {flip}; stable ranking (ties by gallery order); Rank-k = share of queries with a true match "
            f"in the top k; AP = mean precision at each true match (torchreid's `evaluate_rank`), mAP its mean; "
            f"mINP = true matches / rank of the hardest one, averaged")


def run_line(run: Run) -> str:
    """Which run a number came from: path, spec name, description, epochs, device."""
    s = run.summary
    desc = f" — {run.spec.description}" if run.spec.description else ""
    return (f"`{run.path}` (spec `{run.name}`{desc}; {s.epochs} epochs on {s.device.device_name}, "
            f"{s.device.precision})")


def provenance(run: Run) -> str:
    """The three-line block every run-based section starts with: run, dataset, evaluation."""
    return "\n".join([f"- **Run:** {run_line(run)}", f"- **Dataset:** {dataset_line(run)}",
                      f"- **Evaluation:** {protocol_line(run)}"])
