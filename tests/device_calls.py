"""What the tests of the prepared device calls share: rendering a past call's numbers into a Markdown file."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Callable


def rendered_twice(main: Callable[[], None], numbers: dict, folder: Path, monkeypatch) -> str:
    """Write ``numbers`` as a past call's JSON, run ``main`` with ``--from-json … --out BENCHMARKS.md`` twice (the
    second write must replace the first block) over a file that holds other text, and return the file's text."""
    source, md = folder / "call.json", folder / "BENCHMARKS.md"
    source.write_text(json.dumps(numbers))
    md.write_text("# Benchmarks\n\nbefore\n")
    for _ in range(2):
        monkeypatch.setattr(sys, "argv", ["device-call", "--from-json", str(source), "--out", str(md)])
        main()
    return md.read_text()
