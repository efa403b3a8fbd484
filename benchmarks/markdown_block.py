"""Generated blocks in BENCHMARKS.md: each benchmark owns the text between its two markers.

As a command, it copies a table that a reid command wrote (e.g. a sweep's ``sweep.md``) into its own block,
so the numbers in BENCHMARKS.md stay the ones the command computed::

    python -m benchmarks.markdown_block precision runs/sweep-quickstart-precision/sweep.md --out BENCHMARKS.md
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path


def write_block(path: str | Path, block: str, begin: str, end: str) -> None:
    """Replace the text from ``begin`` to ``end`` in ``path`` with ``block`` (which holds both markers), or
    append ``block`` when the markers are absent; text outside the markers is left alone."""
    path = Path(path)
    text = path.read_text(encoding="utf-8") if path.is_file() else "# Benchmarks\n"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + block.rstrip("\n") + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + block
    path.write_text(text, encoding="utf-8")


def copied_block(name: str, source: Path) -> tuple[str, str, str]:
    """(block, begin, end): ``source``'s Markdown without its first heading and without the markers of the block
    it was written as (a copy holds only its own), between markers named ``name``.

    Example:
        >>> import tempfile
        >>> md = Path(tempfile.mkdtemp()) / "sweep.md"
        >>> _ = md.write_text("<!-- x: begin (generated) -->\\n## Sweep of `x.toml`\\n\\n| a |\\n| --: |\\n| 1 |\\n<!-- x: end -->\\n")
        >>> print(copied_block("demo", md)[0])  # doctest: +ELLIPSIS
        <!-- demo: begin (copied from ...sweep.md by benchmarks/markdown_block.py; edit outside the markers) -->
        | a |
        | --: |
        | 1 |
        <!-- demo: end -->
        <BLANKLINE>
    """
    lines = [line for line in source.read_text(encoding="utf-8").strip().splitlines()
             if not re.fullmatch(r"<!-- [^>]*: (begin|end)\b[^>]*-->", line.strip())]
    text = "\n".join(lines).strip()
    if text.startswith("#"):
        text = text.partition("\n")[2].strip()
    begin = f"<!-- {name}: begin (copied from {source} by benchmarks/markdown_block.py; edit outside the markers) -->"
    end = f"<!-- {name}: end -->"
    return f"{begin}\n{text}\n{end}\n", begin.split(" (")[0], end


def main() -> None:
    """Command-line entry: copy SOURCE into the block NAME of --out."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", help="the block's name (its markers: <!-- NAME: begin … --> … <!-- NAME: end -->)")
    parser.add_argument("source", type=Path, help="a Markdown file a reid command wrote (e.g. OUT/sweep.md)")
    parser.add_argument("--out", type=Path, default=Path("BENCHMARKS.md"), help="the file that holds the block")
    args = parser.parse_args()
    write_block(args.out, *copied_block(args.name, args.source))


if __name__ == "__main__":
    main()
