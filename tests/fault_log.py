"""The fault-injection tests' own numbers, for the "What reid survives" table in BENCHMARKS.md.

With ``$REID_FAULT_LOG`` set to a JSON file, each fault test records what it injected, how many cases it ran
and what came out; ``python -m benchmarks.faults_table`` renders that file between the table's markers.
Without the variable nothing is written.
"""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

ENV = "REID_FAULT_LOG"


def record(key: str, fault: str, injected: str, cases: int, outcome: str, passed: int | None = None) -> None:
    """Add (or replace) the row ``key``: ``cases`` injected faults, ``passed`` of them with ``outcome`` (default: all)."""
    target = os.environ.get(ENV)
    if not target:
        return
    path = Path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+", encoding="utf-8") as f:  # tests of several processes may record at once
        fcntl.flock(f, fcntl.LOCK_EX)
        f.seek(0)
        text = f.read()
        rows = json.loads(text) if text.strip() else {}
        rows[key] = {"fault": fault, "injected": injected, "cases": cases,
                     "passed": cases if passed is None else passed, "outcome": outcome}
        f.seek(0)
        f.truncate()
        f.write(json.dumps(rows, indent=1, sort_keys=True) + "\n")
