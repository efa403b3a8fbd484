"""Benchmark: peak memory (max RSS) of a short ``reid run`` in a subprocess.

Runs ``python -m reid run SPEC --set schedule.epochs=1 --set schedule.warmup_epochs=0
--set schedule.max_iters_per_epoch=N``
(data loading, ``N`` training steps, one evaluation, checkpoints) into a temporary run
directory and reads the child's own resource usage with :func:`os.wait4`, so nothing else
this process started is counted. The run is repeated for each precision asked for.

Usage:
    python -m benchmarks.bench_memory [--iters 20]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from reid.errors import ReidError


def measure_run(spec_path: str | Path, overrides: list[str], cache_dir: str | Path | None = None) -> dict:
    """Run ``reid run spec_path`` with ``overrides``; its peak RSS (MiB), wall seconds and CPU seconds.

    Raises:
        ReidError: the run failed (its last output lines are in the message).
    """
    env = dict(os.environ)
    if cache_dir is not None:
        env["REID_CACHE"] = str(cache_dir)
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "reid", "run", str(spec_path), "--out", str(Path(tmp) / "run"), "--plain"]
        for item in overrides:
            cmd += ["--set", item]
        log = Path(tmp) / "log.txt"
        start = time.perf_counter()
        with open(log, "wb") as f:
            proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env)
            _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            tail = " | ".join(log.read_text(errors="replace").strip().splitlines()[-3:])
            raise ReidError(f"the measured run failed with status {proc.returncode}: {tail}", where=" ".join(cmd[1:]))
    return {"peak_rss_mib": usage.ru_maxrss / 1024, "wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime,
            "command": "reid run " + " ".join(cmd[4:5] + [f"--set {o}" for o in overrides])}


def run(spec_path: str | Path = "specs/q8.toml", iters: int = 20, precisions: tuple[str, ...] = ("auto", "fp32"),
        overrides: list[str] | None = None, cache_dir: str | Path | None = None) -> dict:
    """Peak RSS of a one-epoch run capped at ``iters`` steps, for each of ``precisions``."""
    base = list(overrides or []) + ["schedule.epochs=1", "schedule.warmup_epochs=0", f"schedule.max_iters_per_epoch={iters}"]
    return {"iters": iters, "runs": {p: measure_run(spec_path, base + [f"runtime.precision=\"{p}\""], cache_dir)
                                     for p in precisions}}


def main() -> None:
    """Command-line entry: ``python -m benchmarks.bench_memory [--spec S] [--iters N]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default="specs/q8.toml")
    parser.add_argument("--iters", type=int, default=20)
    args = parser.parse_args()
    for precision, r in run(args.spec, args.iters)["runs"].items():
        print(f"{precision}: peak RSS {r['peak_rss_mib']:.0f} MiB, {r['wall_s']:.1f} s wall, {r['cpu_s']:.1f} s CPU")


if __name__ == "__main__":
    main()
