"""Shared measuring tools: interleaved timing with medians, and a description of the machine.

On a shared machine, other processes come and go while a benchmark runs. Comparing two
variants measured minutes apart compares two machine states; :func:`interleave` instead
times the variants in turns (A B A B …) inside one process, so each ratio is taken under
the same conditions, and reports medians.

Example:
    >>> r = interleave({"a": lambda: 10, "b": lambda: 20}, repeats=3)
    >>> sorted(r), len(r["a"].rates)
    (['a', 'b'], 3)
"""

from __future__ import annotations

import os
import platform
import resource
import statistics
import time
from dataclasses import dataclass
from typing import Callable

import torch

from reid.engine.runtime import cpu_name


@dataclass
class Timing:
    """Per-repeat wall seconds and items (images, flops …) of one variant."""

    seconds: list[float]
    items: list[float]

    @property
    def rates(self) -> list[float]:
        """Items per second of each repeat."""
        return [n / max(s, 1e-12) for n, s in zip(self.items, self.seconds)]

    @property
    def median_rate(self) -> float:
        """Median items per second."""
        return statistics.median(self.rates)

    @property
    def best_rate(self) -> float:
        """Highest items per second (the repeat least disturbed by other processes)."""
        return max(self.rates)

    @property
    def median_seconds(self) -> float:
        """Median wall seconds of one repeat."""
        return statistics.median(self.seconds)


def interleave(variants: dict[str, Callable[[], float]], repeats: int, warmup: int = 0) -> dict[str, Timing]:
    """Time each variant ``repeats`` times, in turns; every call returns how many items it processed.

    ``warmup`` untimed rounds come first (allocator, oneDNN primitive caches, lazy init).
    """
    for _ in range(warmup):
        for fn in variants.values():
            fn()
    out = {name: Timing([], []) for name in variants}
    for _ in range(repeats):
        for name, fn in variants.items():
            start = time.perf_counter()
            items = fn()
            out[name].seconds.append(time.perf_counter() - start)
            out[name].items.append(float(items))
    return out


def cpu_model() -> str:
    """The CPU's model name (or ``platform.processor()`` where /proc/cpuinfo has none)."""
    name = cpu_name()
    return name if name != "cpu" else (platform.processor() or "unknown CPU")


def cpu_flags() -> set[str]:
    """CPU feature flags (empty where /proc/cpuinfo is missing)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def physical_cores() -> int:
    """Distinct (physical id, core id) pairs in /proc/cpuinfo; the logical count where unknown."""
    cores, phys = set(), "0"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("physical id"):
                    phys = line.split(":", 1)[1].strip()
                elif line.startswith("core id"):
                    cores.add((phys, line.split(":", 1)[1].strip()))
    except OSError:
        pass
    return len(cores) or (os.cpu_count() or 1)


def load_average() -> tuple[float, float, float]:
    """1, 5 and 15 minute load averages (zeros where the OS has none)."""
    try:
        return os.getloadavg()
    except OSError:
        return (0.0, 0.0, 0.0)


def cpu_snapshot() -> tuple[float, float, float]:
    """(wall clock, CPU seconds the whole machine has been busy, CPU seconds of this process and its children).

    Two snapshots give the share of the machine other processes used in between
    (:func:`others_share`); the busy time is 0 where /proc/stat is missing.
    """
    busy = 0.0
    try:
        with open("/proc/stat") as f:
            fields = [float(v) for v in f.readline().split()[1:]]
        busy = (sum(fields[:3]) + sum(fields[5:8])) / os.sysconf("SC_CLK_TCK")  # all but idle and iowait
    except (OSError, ValueError):
        pass
    own = sum(getattr(resource.getrusage(who), k) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
              for k in ("ru_utime", "ru_stime"))
    return time.time(), busy, own


def others_share(before: tuple[float, float, float], after: tuple[float, float, float]) -> float:
    """Share of the machine's CPU capacity that *other* processes used between two :func:`cpu_snapshot` s."""
    wall = max(after[0] - before[0], 1e-9)
    other = (after[1] - before[1]) - (after[2] - before[2])
    return min(max(other / (wall * (os.cpu_count() or 1)), 0.0), 1.0)


def machine() -> dict:
    """CPU, cores, threads, accelerator, library versions and current load, for the report header."""
    flags = cpu_flags()
    isa = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags]
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "cpu": cpu_model(),
        "logical_cpus": os.cpu_count() or 1,
        "physical_cores": physical_cores(),
        "isa": isa,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "mkldnn_bf16": bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()),
        "gpu": gpu,
        "python": platform.python_version(),
        "load": load_average(),
    }
