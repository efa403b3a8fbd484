"""``reid run SPEC``: train and evaluate an experiment, leaving a run directory (or one per seed with ``--seeds``).

Examples:
    reid run specs/quickstart.toml
    reid run specs/q8.toml --set schedule.epochs=5
    reid run --resume runs/q8                       # continue after an interruption
    reid run specs/q8.toml --seeds 3                # runs/q8/seed-0, seed-1, seed-2, then mean ± std
    reid run specs/q8.toml --seeds 0,1,2 --format json
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from reid.cli.app import FormatOption, OutputFormat, Overrides, PlainOption, app, print_json
from reid.cli.progress import progress_bar
from reid.errors import ReidError
from reid.spec import load_spec


@app.command()
def run(
    spec: Annotated[Optional[Path], typer.Argument(help="experiment spec (.toml); optional with --resume")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="run directory (with --seeds: the group's "
                                                "directory, seed N in OUT/seed-N) [default: runs/<spec name>]")] = None,
    set_: Overrides = [],  # noqa: B006  (Typer reads the default; it is never mutated)
    resume: Annotated[Optional[Path], typer.Option("--resume", help="continue the run in this directory")] = None,
    force: Annotated[bool, typer.Option("--force", help="overwrite an existing run directory")] = False,
    seeds: Annotated[Optional[str], typer.Option("--seeds", help="run once per seed into OUT/seed-N: a list (0,1,2) "
                                                 "or a count (3 = seeds 0,1,2); finished seeds are skipped, "
                                                 "unfinished ones resumed")] = None,
    fmt: FormatOption = OutputFormat.text,
    plain: PlainOption = False,
) -> None:
    """Train and evaluate SPEC; write spec.toml, metrics.jsonl, checkpoints/ and summary.json."""
    if spec is None and resume is None:
        raise ReidError("no spec given", where="reid run", fix="give a spec file (reid run specs/quickstart.toml) or --resume DIR")
    if resume is not None and out is not None and out != resume:
        raise ReidError("--out and --resume name different directories", where="reid run", fix="give only --resume DIR")
    if seeds is not None and resume is not None:
        raise ReidError("--seeds and --resume cannot be combined", where="reid run",
                        fix="re-run `reid run SPEC --seeds ...` (unfinished seeds are resumed), or resume one OUT/seed-N")
    parsed = load_spec(spec, set_) if spec is not None else None
    if resume is not None and set_ and parsed is None:
        raise ReidError("--set needs a spec", where="reid run --resume", fix="a resumed run keeps the spec it started with")
    if parsed is not None and parsed.role is not None:  # a mistyped role fails now, not after training
        from reid.report.assignment.roles import check_role

        check_role(parsed.role, str(spec))
    console = Console(force_terminal=None if not plain else False, stderr=fmt is OutputFormat.json)  # stdout: the JSON
    plain = plain or not console.is_terminal or bool(os.environ.get("CI"))
    if seeds is not None:
        _run_seeds(spec, set_, out or Path("runs") / parsed.name, seeds, force, plain, fmt, console)
        return
    from reid.engine.experiment import run_experiment  # heavy: import after the spec is known to be valid

    target = resume or out or Path("runs") / parsed.name
    summary = run_experiment(parsed, target, resume=resume is not None, force=force, plain=plain, console=console,
                             progress_of_decoding=lambda label, total: progress_bar(console, label, total, plain))
    if summary is None:  # ranks other than 0 under torchrun
        return
    _publish(target, console)
    if fmt is OutputFormat.json:
        print_json(summary.to_json())
    elif summary.final is not None:
        final = summary.final.result
        console.print(f"[bold green]done[/] {target}: " + " · ".join(
            [f"rank{k} {final.rank(k):.4f}" for k in final.ranks] + [f"mAP {final.mAP:.4f}", f"mINP {final.mINP:.4f}"]))


def _run_seeds(spec: Path, overrides: list[str], out: Path, seeds: str, force: bool, plain: bool,
               fmt: OutputFormat, console: Console) -> None:
    """Run SPEC once per seed into OUT/seed-N, one after the other, then print mean ± std over the seeds."""
    from reid.engine.experiment import run_experiment
    from reid.report.seed_groups import group_runs
    from reid.sweep.grid import expand, parse_seeds
    from reid.sweep.plan import RunState, build_plan

    plan = build_plan(spec, out, expand([]), parse_seeds(seeds), overrides)
    for planned in plan.runs:
        state = RunState.pending if force else planned.state
        if state is RunState.finished:
            console.print(f"seed {planned.seed}: {planned.path} is finished, skipped")
            continue
        if state is RunState.started:
            console.print(f"seed {planned.seed}: resuming {planned.path}")
        if run_experiment(planned.spec, planned.path, resume=state is RunState.started, force=force, plain=plain,
                          console=console) is not None:
            _publish(planned.path, console)
    if not all(r.state is RunState.finished for r in plan.runs):  # ranks other than 0 under torchrun
        return
    (group,) = group_runs([r.path for r in plan.runs])
    if fmt is OutputFormat.json:
        print_json(group.to_dict())
        return
    console.print(f"[bold green]done[/] {out}: {len(group.runs)} seeds ({', '.join(map(str, group.seeds))}), "
                  "mean ± sample std")
    for m in group.metrics:
        console.print(f"  {m.name:<6} {m.format()}   ({', '.join(f'{100 * v:.2f}' for v in m.values)})")


def _publish(path: Path, console: Console) -> None:
    """Add ``summary.json`` and the report page to the run's MLflow run, when it logs to MLflow (else nothing)."""
    from reid.engine.mlflow_hook import unpublished
    from reid.engine.rundir import RunDir
    from reid.engine.tracking import warning_printer

    run = RunDir(path)
    state = unpublished(run)
    if state is None:  # nothing to add: the report layer (matplotlib, ~1 s to import) stays out
        return
    from reid.report.mlflow_publish import publish_run

    publish_run(run, state, warn=warning_printer(console))
