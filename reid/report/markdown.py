"""Small Markdown helpers with fixed number formatting, so regenerated reports are byte-identical.

Example:
    >>> print(table(["layer", "params"], [["Conv2d-1", count(9408)]], align="lr"))
    | layer | params |
    | :-- | --: |
    | Conv2d-1 | 9,408 |
    >>> pct(0.71875), num(0.123456), count(47403000)
    ('71.88 %', '0.1235', '47,403,000')
"""

from __future__ import annotations

from typing import Sequence


def table(headers: Sequence[str], rows: Sequence[Sequence[object]], align: str | None = None) -> str:
    """A GitHub Markdown table; ``align`` is one letter per column (``l``, ``r``, ``c``; default left)."""
    align = align or "l" * len(headers)
    marks = {"l": ":--", "r": "--:", "c": ":-:"}
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(marks[a] for a in align) + " |"]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines)


def pct(x: float | None, digits: int = 2) -> str:
    """A 0–1 score as a percentage, e.g. ``pct(0.5)`` → ``'50.00 %'`` (``'–'`` for None)."""
    return "–" if x is None else f"{100 * x:.{digits}f} %"


def num(x: float | None, digits: int = 4) -> str:
    """A float with ``digits`` decimals (``'–'`` for None)."""
    return "–" if x is None else f"{x:.{digits}f}"


def count(n: int) -> str:
    """An integer with thousands separators."""
    return f"{n:,}"


def seconds(s: float) -> str:
    """A duration, e.g. ``seconds(75.5)`` → ``'75.5 s (1 min 16 s)'``."""
    if s < 60:
        return f"{s:.1f} s"
    minutes, rest = divmod(round(s), 60)
    return f"{s:.1f} s ({minutes} min {rest} s)"


def image(alt: str, path: str) -> str:
    """A Markdown image link."""
    return f"![{alt}]({path})"


def code(text: str) -> str:
    """Inline code."""
    return f"`{text}`"


def bullets(items: Sequence[str]) -> str:
    """A bullet list."""
    return "\n".join(f"- {item}" for item in items)


def metric_label(key: str) -> str:
    """``rank5`` → ``Rank-5``; ``mAP`` / ``mINP`` unchanged.

    Example:
        >>> metric_label("rank5"), metric_label("mAP")
        ('Rank-5', 'mAP')
    """
    return f"Rank-{key[4:]}" if key.startswith("rank") else key
