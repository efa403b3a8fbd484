"""The "What reid survives" table in BENCHMARKS.md, rendered from the fault tests' own numbers.

The fault tests (``tests/test_faults_*.py``) record each fault they inject — how, how many cases, how many
ended as required, and the outcome — into a JSON file when ``$REID_FAULT_LOG`` names one
(``tests/fault_log.py``). This script turns that file into a table between the ``faults`` markers::

    REID_FAULT_LOG=$PWD/benchmarks/results/faults.json python -m pytest tests/test_faults_*.py
    python -m benchmarks.faults_table benchmarks/results/faults.json --out BENCHMARKS.md
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchmarks.markdown_block import markers, write_block


def faults_table(rows: dict[str, dict]) -> str:
    """Markdown table of the recorded faults, in key order.

    Example:
        >>> print(faults_table({"a": {"fault": "torn file", "injected": "cut", "cases": 3, "passed": 3,
        ...                          "outcome": "resumed"}}))
        | fault | how it was injected | cases | survived | outcome |
        | --- | --- | --: | --: | --- |
        | torn file | cut | 3 | 3 | resumed |
    """
    lines = ["| fault | how it was injected | cases | survived | outcome |", "| --- | --- | --: | --: | --- |"]
    lines += [f"| {r['fault']} | {r['injected']} | {r['cases']:,} | {r['passed']:,} | {r['outcome']} |"
              for _, r in sorted(rows.items())]
    return "\n".join(lines)


def faults_markers(source: Path) -> tuple[str, str]:
    """The block's markers, naming the file it was rendered from."""
    return markers("faults", f"rendered from {source} by benchmarks/faults_table.py")


def block(source: Path) -> str:
    """The table between its markers."""
    rows = json.loads(source.read_text(encoding="utf-8"))
    begin, end = faults_markers(source)
    return f"{begin}\n{faults_table(rows)}\n{end}\n"


def main() -> None:
    """Command-line entry: render SOURCE into the faults block of --out."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="the JSON file the fault tests wrote ($REID_FAULT_LOG)")
    parser.add_argument("--out", type=Path, default=Path("BENCHMARKS.md"), help="the file that holds the table")
    args = parser.parse_args()
    write_block(args.out, block(args.source), *faults_markers(args.source))


if __name__ == "__main__":
    main()
