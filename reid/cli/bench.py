"""``reid bench``: speed against plain PyTorch and the machine's limits → BENCHMARKS.md.

The measurements live in the checkout's ``benchmarks/`` package (:mod:`benchmarks.suite`);
this command runs them in one process, prints a table and writes the report block of
``BENCHMARKS.md`` (text outside its markers is kept).
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from reid.cli.app import app
from reid.errors import ReidError


def _suite():
    """Import :mod:`benchmarks.suite` from the source checkout this package lives in."""
    root = Path(__file__).resolve().parents[2]
    if (root / "benchmarks" / "suite.py").is_file() and str(root) not in sys.path:
        sys.path.insert(0, str(root))
    try:
        return importlib.import_module("benchmarks.suite")
    except ModuleNotFoundError as e:
        if e.name and e.name.startswith("benchmarks"):
            raise ReidError("the benchmarks are not installed with the package", where="reid bench",
                            fix="run `reid bench` from a source checkout (pip install -e .)") from None
        raise


def _command(quick: bool, only: Optional[str], out: Optional[Path], spec: Path, repeats: Optional[int]) -> str:
    parts = ["reid bench"] + (["--quick"] if quick else []) + ([f"--only {only}"] if only else [])
    parts += [f"--spec {spec}"] if spec != Path("specs/q8.toml") else []
    parts += [f"--repeats {repeats}"] if repeats is not None else []
    return " ".join(parts + ([f"--out {out}"] if out is not None else []))


@app.command()
def bench(
    quick: bool = typer.Option(False, "--quick", help="tiny sizes: a smoke run of the machinery in seconds"),
    only: Optional[str] = typer.Option(None, "--only", help="comma-separated sections: gemm,train,input,embed,eval,memory,compile"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="report file (default BENCHMARKS.md; none with --quick)"),
    spec: Path = typer.Option(Path("specs/q8.toml"), "--spec", help="the experiment whose setting is measured"),
    repeats: Optional[int] = typer.Option(None, "--repeats", min=1, max=50, help="timed repeats per variant (default 3; 2 with --quick)"),
) -> None:
    """Benchmark training, embedding, evaluation, input and memory against plain PyTorch and the GEMM peak.

    Variants are timed in turns inside one process and medians are reported, so each ratio
    compares runs made under the same conditions; the report says whether other processes
    loaded the machine (on a small CPU they slow multi-threaded kernels badly).
    Examples: `reid bench`, `reid bench --quick`, `reid bench --only train,gemm --out /tmp/b.md`.
    """
    suite = _suite()
    sections = suite.parse_sections(only)
    if not spec.is_file():
        raise ReidError("spec file not found", where=str(spec), fix="give --spec a .toml spec, e.g. specs/q8.toml")
    console = Console(highlight=False)
    target = out if out is not None else (None if quick else Path("BENCHMARKS.md"))
    results = suite.run_suite(sections, spec_path=spec, quick=quick, repeats=repeats or (2 if quick else 3),
                              log=lambda msg: console.print(f"[dim]{msg}[/]"))
    table = Table(title="reid bench" + (" (quick)" if quick else ""))
    for column in ("benchmark", "reid", "baseline", "ratio", "target", "met"):
        table.add_column(column)
    for row in suite.rows(results):
        met = "" if row.met is None else ("[green]yes[/]" if row.met else "[red]no[/]")
        table.add_row(row.name, row.reid, row.baseline, row.ratio, row.target, met)
    console.print(table)
    console.print(f"other processes used {results['machine']['others_cpu_share']:.0%} of the CPU time during the run")
    if target is not None:
        suite.write_report(target, suite.markdown(results, _command(quick, only, out, spec, repeats)))
        console.print(f"wrote {target}")
