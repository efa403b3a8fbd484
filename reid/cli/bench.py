"""``reid bench``: speed against plain PyTorch and the machine's limits → BENCHMARKS.md.

The measurements live in the checkout's ``benchmarks/`` package (:mod:`benchmarks.suite`);
this command runs them in one process, prints a table and writes the report block of
``BENCHMARKS.md`` (text outside its markers is kept).
"""

from __future__ import annotations

import importlib
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from reid.cli.app import FormatOption, OutputFormat, app
from reid.errors import ReidError

DEFAULT_SPEC = Path("specs/q8.toml")


def _suite():
    """Import :mod:`benchmarks.suite` from a source checkout: the one this package lives in (``pip install -e .``),
    else the current folder.

    Raises:
        ReidError: neither is a checkout, as when reid is installed from a wheel (the benchmarks are not in it).
    """
    for root in (Path(__file__).resolve().parents[2], Path.cwd()):
        if (root / "benchmarks" / "suite.py").is_file():
            if str(root) not in sys.path:
                sys.path.insert(0, str(root))
            break
    try:
        return importlib.import_module("benchmarks.suite")
    except ModuleNotFoundError as e:
        if e.name and e.name.startswith("benchmarks"):
            raise ReidError("it needs the benchmarks/ folder of a source checkout, which an installed wheel does not "
                            "include", where="reid bench",
                            fix="run it inside a checkout of the reid repository (cd into it; `pip install -e .` "
                                "there makes `reid` use it)") from None
        raise


def _command(quick: bool, only: Optional[str], out: Optional[Path], spec: Path, repeats: Optional[int]) -> str:
    parts = ["reid bench"] + (["--quick"] if quick else []) + ([f"--only {only}"] if only else [])
    parts += [str(spec)] if spec != DEFAULT_SPEC else []
    parts += [f"--repeats {repeats}"] if repeats is not None else []
    return " ".join(parts + ([f"--out {out}"] if out is not None else []))


@app.command()
def bench(
    spec: Annotated[Path, typer.Argument(metavar="[SPEC]", help="the experiment whose setting is measured")] = DEFAULT_SPEC,
    quick: Annotated[bool, typer.Option("--quick", help="tiny sizes: a smoke run of the machinery in seconds")] = False,
    only: Annotated[Optional[str], typer.Option("--only", help="comma-separated sections: gemm,train,fp32,input,embed,eval,memory,compile")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="report file (default BENCHMARKS.md; none with --quick)")] = None,
    spec_option: Annotated[Optional[Path], typer.Option("--spec", hidden=True, help="The older spelling of SPEC.")] = None,
    repeats: Annotated[Optional[int], typer.Option("--repeats", min=1, max=50, help="timed repeats per variant (default 3; 2 with --quick)")] = None,
    fmt: FormatOption = OutputFormat.text,
) -> None:
    """Benchmark training, embedding, evaluation, input and memory against plain PyTorch and the GEMM peak.

    Variants are timed in turns inside one process and medians are reported, so each ratio
    compares runs made under the same conditions; the report says whether other processes
    loaded the machine (on a small CPU they slow multi-threaded kernels badly).
    Examples: `reid bench`, `reid bench --quick`, `reid bench specs/quickstart.toml --only train,gemm -o /tmp/b.md`,
    `reid bench --quick --format json` (the numbers and the table rows, for scripts).
    """
    suite = _suite()
    sections = suite.parse_sections(only)
    spec = spec_option or spec
    if not spec.is_file():
        raise ReidError("spec file not found", where=str(spec), fix="give a .toml spec, e.g. reid bench specs/q8.toml")
    console = Console(highlight=False, stderr=fmt is OutputFormat.json)  # JSON alone on stdout
    target = out if out is not None else (None if quick else Path("BENCHMARKS.md"))
    results = suite.run_suite(sections, spec_path=spec, quick=quick, repeats=repeats or (2 if quick else 3),
                              log=lambda msg: console.print(f"[dim]{msg}[/]"))
    rows = suite.rows(results)
    if fmt is OutputFormat.json:
        typer.echo(json.dumps({"results": results, "rows": [asdict(r) for r in rows]}, indent=2, default=str))
    else:
        table = Table(title="reid bench" + (" (quick)" if quick else ""))
        for column in ("benchmark", "reid", "baseline", "ratio", "target", "met"):
            table.add_column(column)
        for row in rows:
            met = "" if row.met is None else ("[green]yes[/]" if row.met else "[red]no[/]")
            table.add_row(row.name, row.reid, row.baseline, row.ratio, row.target, met)
        console.print(table)
    console.print(f"other processes used {results['machine']['others_cpu_share']:.0%} of the CPU time during the run")
    if target is not None:
        suite.write_report(target, suite.markdown(results, _command(quick, only, out, spec, repeats)))
        console.print(f"wrote {target}")
