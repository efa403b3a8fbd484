"""Waiting in tests for something another process does (a checkpoint appears, an epoch is logged)."""

from __future__ import annotations

import subprocess
import time
from typing import Callable


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 300.0,
               proc: subprocess.Popen | None = None, every: float = 0.05) -> None:
    """Poll ``predicate`` until it holds; fail naming ``what`` after ``timeout`` seconds, or with ``proc``'s
    output as soon as that process has ended (it cannot bring the awaited state any more)."""
    deadline = time.time() + timeout
    while not predicate():
        if proc is not None and proc.poll() is not None:
            output = proc.stdout.read() if proc.stdout is not None else ""
            raise AssertionError(f"the process ended (exit {proc.returncode}) before {what}:\n{output}")
        assert time.time() < deadline, f"timed out after {timeout:.0f} s waiting for {what}"
        time.sleep(every)
