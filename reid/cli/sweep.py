"""``reid sweep SPEC --grid key=v1,v2 ...``: one run per grid point and seed, then a sortable table.

Examples:
    reid sweep specs/q8.toml --grid optim.lr=1e-3,3.5e-4 --grid loss.margin=0.2,0.3 --seeds 3
    reid sweep specs/q8.toml --grid optim.lr=1e-3,3.5e-4 --parallel 2 --sort mAP
    reid sweep specs/q8.toml --grid optim.lr=1e-3,3.5e-4 --launcher slurm --partition gpu --gpus 2 --cpus 16

Running the same command again skips finished runs, resumes interrupted ones and rewrites the table
(so ``--sort`` can change).
"""

from __future__ import annotations

import json
import shutil
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from reid.cli.app import FormatOption, OutputFormat, Overrides, app, print_json
from reid.errors import ReidError
from reid.spec import load_spec


class Launcher(str, Enum):
    """Where a sweep's runs execute."""

    local = "local"
    slurm = "slurm"


@app.command()
def sweep(
    spec: Annotated[Path, typer.Argument(help="experiment spec (.toml)")],
    grid: Annotated[list[str], typer.Option("--grid", "-g", help="a swept key and its values: --grid optim.lr=1e-3,3.5e-4 "
                                            "(repeatable: the product of all is run)")] = [],  # noqa: B006
    seeds: Annotated[str, typer.Option("--seeds", help="seeds per grid point: a list (0,1,2) or a count (3)")] = "1",
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="sweep directory [default: runs/sweep-<spec name>]")] = None,
    set_: Overrides = [],  # noqa: B006
    launcher: Annotated[Launcher, typer.Option("--launcher", help="local: this machine; slurm: one submitit job per run")] = Launcher.local,
    parallel: Annotated[int, typer.Option("--parallel", "-j", min=1, help="runs at once (local: the cores are split "
                                          "between them; slurm: job-array parallelism)")] = 1,
    sort: Annotated[str, typer.Option("--sort", help="table order: rank1, rank5, rank10, mAP or mINP (best first)")] = "rank1",
    partition: Annotated[Optional[str], typer.Option("--partition", help="slurm: partition")] = None,
    gpus: Annotated[int, typer.Option("--gpus", min=0, help="slurm: GPUs per run (more than 1: torchrun inside)")] = 1,
    cpus: Annotated[int, typer.Option("--cpus", min=1, help="slurm: CPU cores per run")] = 8,
    minutes: Annotated[int, typer.Option("--minutes", min=1, help="slurm: time limit per job (longer runs are "
                                         "requeued and resumed)")] = 240,
    fmt: FormatOption = OutputFormat.text,
) -> None:
    """Run SPEC for every combination of --grid values and every seed; write OUT/sweep.md and OUT/sweep.json."""
    from reid.report.seed_groups import metric_names
    from reid.report.sweep_table import sort_metric, write_sweep_table
    from reid.sweep.grid import expand, parse_axis, parse_seeds
    from reid.sweep.plan import build_plan

    name = load_spec(spec, set_).name
    plan = build_plan(spec, out or Path("runs") / f"sweep-{name}", expand([parse_axis(g) for g in grid]),
                      parse_seeds(seeds), set_)
    sort_metric(sort, metric_names(plan.runs[0].spec))  # an unknown --sort fails now, not after the runs
    console = Console(stderr=fmt is OutputFormat.json, highlight=False)
    counts = plan.counts()
    console.print(f"sweep → {plan.out}: {len(plan.points)} grid point(s) × {len(plan.seeds)} seed(s) = {len(plan.runs)} "
                  f"runs ({counts['finished']} finished, {counts['started']} to resume, {counts['pending']} to start)")

    def report(outcome) -> None:
        colour = {"done": "green", "skipped": "dim", "failed": "red"}[outcome.status]
        console.print(f"[{colour}]{outcome.status}[/] {outcome.run.path}" + (f" ({outcome.detail})" if outcome.detail else ""))

    if launcher is Launcher.local:
        from reid.sweep.local import run_local

        outcomes = run_local(plan, parallel, report)
    else:
        outcomes = _run_on_slurm(plan, partition, gpus, cpus, minutes, parallel, report)
    md, js = write_sweep_table(plan, sort)
    failed = [o for o in outcomes if o.status == "failed"]
    if fmt is OutputFormat.json:
        print_json(json.loads(js.read_text(encoding="utf-8")))
    else:
        console.print(md.read_text(encoding="utf-8"))
        console.print(f"table: {md} · {js}")
    if failed:
        raise ReidError(f"{len(failed)} of {len(outcomes)} runs failed (see their logs above)", where=str(plan.out),
                        fix="fix the cause and run the same command again: finished runs are skipped")


def _run_on_slurm(plan, partition, gpus, cpus, minutes, parallel, report):
    try:
        from reid.sweep.slurm import SlurmResources, run_slurm
    except ImportError:
        raise ReidError("the slurm launcher needs submitit, which is not installed", where="--launcher slurm",
                        fix="pip install 'reid[sweep]'") from None
    if shutil.which("sbatch") is None:
        raise ReidError("Slurm is not available here (no sbatch on PATH)", where="--launcher slurm",
                        fix="run on a Slurm login node, or use --launcher local")
    resources = SlurmResources(partition=partition, gpus=gpus, cpus=cpus, minutes=minutes, parallel=parallel)
    return run_slurm(plan, resources, report=report)

