"""Generated blocks in BENCHMARKS.md: each benchmark owns the text between its two markers."""

from __future__ import annotations

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
