"""The command line and the table of the prepared device calls (``gpu_check``, ``gpu_recipe``, ``graphs_accuracy``),
written once.

Each call measures on the GPU (or, with ``--cpu-smoke``, at tiny sizes on the CPU), saving its numbers to
``--json`` after each section so that a call cut short keeps them; or, with ``--from-json``, measures nothing
and renders past calls (the last one's table, and how much several moved where the call says). Either way it
prints the table and, with ``--out``, writes it between the call's markers in BENCHMARKS.md; a measuring call
exits 1 when a section failed.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from benchmarks.markdown_block import write_block

Row = tuple[str, str, str, str]  # (check, measured, target, met)


def met(ok: bool | None) -> str:
    """The table's "met" cell: ``yes``, ``NO``, or empty where there is no target."""
    return "" if ok is None else ("yes" if ok else "NO")


def markdown_table(checks: list[Row]) -> str:
    """(check, measured, target, met) rows as one Markdown table."""
    lines = ["| check | measured | target | met |", "| --- | --- | --- | --- |"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in checks]
    return "\n".join(lines)


def call_parser(doc: str, budget_s: float | None = None) -> argparse.ArgumentParser:
    """The options every device call takes (its own are added by the caller); ``budget_s``: the default budget of a
    call that keeps one itself (``--budget``, ``--since``, ``--work``; without it, its shell script's timeout does).

    Example:
        >>> args = call_parser("A check.\\nMore.", 420).parse_args(["--cpu-smoke", "--json", "x.json"])
        >>> args.cpu_smoke, str(args.json), args.from_json, args.budget
        (True, 'x.json', None, None)
        >>> [str(p) for p in call_parser("A check.").parse_args(["--from-json", "a.json", "b.json"]).from_json]
        ['a.json', 'b.json']
    """
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--cpu-smoke", action="store_true", help="tiny sizes on the CPU, same code path (seconds)")
    if budget_s is not None:
        parser.add_argument("--budget", type=float, help=f"seconds the whole call may take (default {budget_s:.0f} on a GPU)")
        parser.add_argument("--since", type=float, help="count the budget from this Unix time (the calling script's start)")
        parser.add_argument("--work", type=Path, help="folder for the run directories and logs (default: temporary)")
    parser.add_argument("--json", type=Path, help="write all numbers here, after each section")
    parser.add_argument("--from-json", type=Path, nargs="+",
                        help="measure nothing: render past calls (the table of the last; with several, how much they moved)")
    parser.add_argument("--out", type=Path, help="write the table into this Markdown file (e.g. BENCHMARKS.md)")
    return parser


@dataclass(frozen=True)
class DeviceCall:
    """One prepared device call's table: its name, its shell script, its rows, its BENCHMARKS.md markers and, where
    several calls are rendered together, the sentence saying how much they moved (``spread``).

    Example:
        >>> call = DeviceCall("demo", "benchmarks/demo.sh", lambda r: [("check", "1", "", "")], "<!-- b -->", "<!-- e -->")
        >>> r = {"date": "2026-01-02", "device": "GPU", "torch": "2.x", "errors": {"plain": "OSError: no room"}}
        >>> call.rows(r)[-1]
        ('plain: error', 'OSError: no room', '', 'NO')
        >>> print(call.block([r], ["demo.json"]))  # doctest: +NORMALIZE_WHITESPACE
        <!-- b -->
        Measured by `bash benchmarks/demo.sh` on 2026-01-02 on GPU, torch 2.x (numbers: `demo.json`, rendered by
        `python -m benchmarks.demo --from-json`).
        <BLANKLINE>
        | check | measured | target | met |
        | --- | --- | --- | --- |
        | check | 1 |  |  |
        | plain: error | OSError: no room |  | NO |
        <!-- e -->
    """

    name: str
    script: str
    checks: Callable[[dict], list[Row]]
    begin: str
    end: str
    spread: Callable[[list[dict]], str] | None = None

    def rows(self, r: dict) -> list[Row]:
        """(check, measured, target, met) rows of the results ``r``: the call's checks, then a row per failed section."""
        return self.checks(r) + [(f"{name}: error", message, "", "NO") for name, message in r.get("errors", {}).items()]

    def block(self, runs: list[dict], sources: list[str]) -> str:
        """The BENCHMARKS.md block, between the call's markers: the table of the last results of ``runs`` (read from
        the last of ``sources``) and, for several, :attr:`spread`'s sentence naming every source."""
        r = runs[-1]
        when = f" on {r['date']}" if r.get("date") else ""
        lines = [self.begin, f"Measured by `bash {self.script}`{when} on {r['device']}, torch {r['torch']} "
                 f"(numbers: `{sources[-1]}`, rendered by `python -m benchmarks.{self.name} --from-json`).", "",
                 markdown_table(self.rows(r))]
        if len(runs) > 1 and self.spread is not None:
            lines += ["", self.spread(runs) + " (" + ", ".join(f"`{s}`" for s in sources) + ")"]
        return "\n".join(lines + [self.end]) + "\n"

    def main(self, args: argparse.Namespace, measure: Callable[[Callable[[dict], None]], dict]) -> None:
        """Measure (``measure(saved)``, which calls ``saved`` with the results so far) or read ``--from-json``;
        print the table, write the block into ``--out``; a measuring call exits 1 if a section failed."""
        if args.from_json:
            runs = [json.loads(path.read_text(encoding="utf-8")) for path in args.from_json]
            sources = [str(path) for path in args.from_json]
        else:
            if not args.cpu_smoke and not torch.cuda.is_available():
                sys.exit(f"{self.name}: no CUDA GPU visible (use --cpu-smoke to exercise the script on the CPU)")

            def save(so_far: dict) -> None:
                if args.json:
                    args.json.write_text(json.dumps(so_far, indent=1, default=str))

            runs, sources = [measure(save)], [str(args.json or "(not saved)")]
        r = runs[-1]
        print(f"\n{r['device']} · torch {r['torch']}\n")
        print(markdown_table(self.rows(r)))
        if args.out:
            write_block(args.out, self.block(runs, sources), self.begin, self.end)
        if not args.from_json:
            sys.exit(1 if r["errors"] else 0)
