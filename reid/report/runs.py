"""Run directories as the report reads them: spec, metrics, summary, and the question each answers.

A run answers Q8 when it trains with the ID loss only (a classifier head, ``triplet_weight = 0``)
and Q11 when it trains with the triplet loss only (``id_weight = 0``); a run that mixes both is
assigned by its name (``q8`` / ``q11``) or only compared.

Example::

    run = load_run("runs/q8")
    run.question, run.summary["final"]["rank1"], run.evaluated[-1]["mAP"]
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from reid.engine.rundir import RunDir
from reid.errors import ReidError
from reid.spec import DataSpec, Spec, load_spec_text

#: question → the command that produces its run
RUN_COMMANDS = {"q8": "reid run specs/q8.toml", "q11": "reid run specs/q11.toml"}


@dataclass
class Run:
    """One finished run directory, read once.

    Attributes:
        path: the directory as the user named it (shown in the report).
        spec: the resolved spec (``spec.toml``).
        iters: ``iter`` records of ``metrics.jsonl`` in order.
        epochs: ``epoch`` records in order.
        summary: ``summary.json``.
    """

    path: Path
    spec: Spec
    iters: list[dict]
    epochs: list[dict]
    summary: dict

    @property
    def name(self) -> str:
        """The spec's name."""
        return self.spec.name

    @property
    def evaluated(self) -> list[dict]:
        """Epoch records that carry evaluation metrics."""
        return [r for r in self.epochs if "rank1" in r]

    @property
    def rank_keys(self) -> list[str]:
        """``rank1``, ``rank5`` … for the spec's ``eval.ranks``."""
        return [f"rank{r}" for r in self.spec.eval.ranks]

    @property
    def question(self) -> str | None:
        """``"q8"``, ``"q11"`` or None (see the module docstring)."""
        return question_of(self.spec)

    @property
    def rundir(self) -> RunDir:
        """The :class:`RunDir` (checkpoint paths)."""
        return RunDir(self.path)


def question_of(spec: Spec) -> str | None:
    """Which assignment question a run with ``spec`` answers: by its losses and head, else by its name."""
    if spec.loss.id_weight > 0 and spec.loss.triplet_weight == 0 and spec.head.type == "classifier":
        return "q8"
    if spec.loss.id_weight == 0 and spec.loss.triplet_weight > 0:
        return "q11"
    return spec.name if spec.name in RUN_COMMANDS else None


def load_run(path: str | Path) -> Run:
    """Read a finished run directory.

    Raises:
        ReidError: the path is not a directory, has no ``spec.toml`` or no ``summary.json``.
    """
    path = Path(path)
    if not path.is_dir():
        raise ReidError("not a run directory (no such directory)", where=str(path),
                        fix="pass a directory written by `reid run`, e.g. runs/q8")
    run = RunDir(path)
    spec = load_spec_text(run.spec_text(), source=str(path / "spec.toml"))
    summary = run.read_summary()
    records = list(run.read_metrics())
    return Run(path=path, spec=spec, iters=[r for r in records if r.get("kind") == "iter"],
               epochs=[r for r in records if r.get("kind") == "epoch"], summary=summary)


def assign_runs(runs: list[Run]) -> dict[str, Run | None]:
    """The run used for each of Q8 and Q11: the first given run that answers it (None when none does)."""
    return {q: next((r for r in runs if r.question == q), None) for q in RUN_COMMANDS}


def missing_run_line(question: str) -> str:
    """The sentence shown instead of a question's results when its run was not given."""
    command = RUN_COMMANDS[question]
    return (f"_No {question.upper()} run was given, so this answer has no results yet._ Produce it with "
            f"`{command}` (it writes `runs/{question}`), then regenerate with `reid report runs/q8 runs/q11`.")


def dataset_line(run: Run) -> str:
    """The dataset a run used, from its ``summary.json`` (what ``build_data(...).describe()`` said)."""
    return dataset_text(run.summary["dataset"], run.spec.data)


def dataset_text(info: dict, data: DataSpec) -> str:
    """One line describing a dataset from its ``describe()`` dict and its ``[data]`` table."""
    d = info
    if d["same_set"]:
        val = f"{d['validation_identities']} identities, {d['query']['images']} images as one leave-one-out set"
    else:
        val = (f"{d['validation_identities']} identities, query {d['query']['images']} images / "
               f"gallery {d['gallery']['images']} images")
    source = "synthetic pedestrians" if data.dataset == "synthetic" else f"`{data.root}`"
    return (f"{d['name']} ({source}), {data.height}×{data.width} crops, "
            f"{max(d['train']['cameras'], d['query']['cameras'])} camera(s) — training: {d['train']['identities']} "
            f"identities, {d['train']['images']} images; validation: {val}")


PROTOCOL_RULES = {
    "market": ("gallery images of the query's identity taken by the query's camera are ignored (junk); "
               "queries left without a true match are skipped"),
    "all": "nothing is ignored except, in a leave-one-out set, the query image itself",
}


def protocol_line(run: Run) -> str:
    """The evaluation protocol of a run: distance, normalisation, flip, junk rule, AP and mINP definitions."""
    ev = run.summary["evaluation"]
    distance = "squared euclidean" if ev["distance"] == "euclidean" else "cosine (1 − cos)"
    norm = "after L2 normalisation" if ev["normalize"] or ev["distance"] == "cosine" else "on raw embeddings"
    flip = "image + mirror averaged" if ev["flip"] else "no flip averaging"
    final = run.summary["final"]
    skipped = f" ({final['num_skipped']} skipped, {final['num_valid']} valid)" if final else ""
    return (f"protocol `{ev['protocol']}`: {PROTOCOL_RULES[ev['protocol']]}{skipped}; {distance} distance "
            f"{norm}, {flip}; stable ranking (ties by gallery order); Rank-k = share of queries with a true match "
            f"in the top k; AP = mean precision at each true match (torchreid's `evaluate_rank`), mAP its mean; "
            f"mINP = true matches / rank of the hardest one, averaged")


def run_line(run: Run) -> str:
    """Which run a number came from: path, spec name, description, epochs, device."""
    s = run.summary
    desc = f" — {run.spec.description}" if run.spec.description else ""
    return (f"`{run.path}` (spec `{run.name}`{desc}; {s['epochs']} epochs on {s['device']['device_name']}, "
            f"{s['device']['precision']})")


def provenance(run: Run) -> str:
    """The three-line block every run-based section starts with: run, dataset, evaluation."""
    return "\n".join([f"- **Run:** {run_line(run)}", f"- **Dataset:** {dataset_line(run)}",
                      f"- **Evaluation:** {protocol_line(run)}"])
