"""Benchmark: the machine's matrix-multiply peak in fp32 and bf16 (the ceiling for convolutions).

Times ``torch.mm`` of two square ``n × n`` matrices (``2 n³`` FLOPs, a multiply-add counted
as two) in fp32 and in bf16, in turns. The *peak* is the best repeat (the least disturbed
by other processes); the median is reported next to it.

Usage:
    python -m benchmarks.bench_gemm [--n 2048]
"""

from __future__ import annotations

import argparse

import torch

from benchmarks.timing import interleave


def run(n: int = 2048, repeats: int = 5, bf16: bool = True) -> dict:
    """fp32 (and bf16) GEMM throughput in TFLOP/s: ``{precision}_peak_tflops`` and ``{precision}_median_tflops``."""
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(n, n, generator=g), torch.randn(n, n, generator=g)
    flops = 2.0 * n**3
    variants = {"fp32": lambda: (torch.mm(a, b), flops)[1]}
    if bf16:
        a16, b16 = a.bfloat16(), b.bfloat16()
        variants["bf16"] = lambda: (torch.mm(a16, b16), flops)[1]
    t = interleave(variants, repeats=repeats, warmup=1)
    out: dict = {"n": n, "repeats": repeats, "threads": torch.get_num_threads()}
    for name, timing in t.items():
        out[f"{name}_peak_tflops"] = timing.best_rate / 1e12
        out[f"{name}_median_tflops"] = timing.median_rate / 1e12
    return out


def main() -> None:
    """Command-line entry: ``python -m benchmarks.bench_gemm [--n N]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    r = run(args.n, args.repeats)
    for p in ("fp32", "bf16"):
        if f"{p}_peak_tflops" in r:
            print(f"{p}: peak {r[f'{p}_peak_tflops']:.3f} TFLOP/s, median {r[f'{p}_median_tflops']:.3f}")


if __name__ == "__main__":
    main()
