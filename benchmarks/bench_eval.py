"""Benchmark: re-ID evaluation at Market-1501 size, against a per-query numpy loop.

Times ``compute_distance + evaluate`` (and the fused, memory-bounded
``evaluate_features``) on seeded random features of Market-1501's shape (3,368 queries ×
15,913 gallery × 512-d, 751 identities, 6 cameras), compares them with a straightforward
per-query numpy loop in the style of torchreid's pure-Python ``eval_market1501`` (argsort,
mask, cumsum per query; run on a subset of queries and extrapolated), checks that both
give the same CMC / mAP / mINP on that subset, then evaluates a gallery ``scale`` times
larger with ``evaluate_features`` and reports its peak memory.

Wall times on a shared machine are noisy: the median of ``repeats`` runs is reported, with
the process CPU time next to it.

Usage:
    python benchmarks/bench_eval.py              # full size
    python benchmarks/bench_eval.py --quick      # small shapes, seconds
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time

import numpy as np
import torch

from reid.metrics import compute_distance, evaluate, evaluate_features


def make_problem(nq: int, ng: int, dim: int, ids: int, cams: int, seed: int) -> dict:
    """Seeded random features, identities and cameras."""
    g = torch.Generator().manual_seed(seed)
    return {
        "qf": torch.randn(nq, dim, generator=g), "gf": torch.randn(ng, dim, generator=g),
        "q_pids": torch.randint(0, ids, (nq,), generator=g).numpy(), "g_pids": torch.randint(0, ids, (ng,), generator=g).numpy(),
        "q_camids": torch.randint(0, cams, (nq,), generator=g).numpy(), "g_camids": torch.randint(0, cams, (ng,), generator=g).numpy(),
    }


def loop_evaluate(distmat: np.ndarray, q_pids, g_pids, q_camids, g_camids, max_rank: int = 50) -> dict:
    """Per-query numpy loop (torchreid's pure-Python path, plus mINP; stable argsort for ties)."""
    max_rank = min(max_rank, distmat.shape[1])
    all_cmc, all_ap, all_inp = [], [], []
    for i in range(distmat.shape[0]):
        order = np.argsort(distmat[i], kind="stable")
        keep = ~((g_pids[order] == q_pids[i]) & (g_camids[order] == q_camids[i]))
        raw = (g_pids[order][keep] == q_pids[i]).astype(np.int64)
        if not raw.any():
            continue
        hits = raw.cumsum()
        all_cmc.append(np.minimum(hits, 1)[:max_rank])
        positions = np.flatnonzero(raw)
        all_ap.append((hits[positions] / (positions + 1.0)).mean())
        all_inp.append(hits[positions[-1]] / (positions[-1] + 1.0))
    return {"cmc": np.mean(all_cmc, axis=0), "mAP": float(np.mean(all_ap)), "mINP": float(np.mean(all_inp)),
            "num_valid": len(all_cmc)}


def _timed(fn, repeats: int) -> tuple[float, float, object]:
    """Median wall seconds, median CPU seconds and the last result of ``repeats`` calls."""
    walls, cpus = [], []
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        result = fn()
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return statistics.median(walls), statistics.median(cpus), result


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


def _peak_rss_during(fn) -> tuple[float, float, object]:
    """RSS before ``fn`` and the peak RSS while it runs (sampled every 2 ms), in MiB, and its result."""
    before, peak, done = _rss_mb(), [0.0], threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], _rss_mb())
            time.sleep(0.002)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        result = fn()
    finally:
        done.set()
        sampler.join()
    return before, max(peak[0], _rss_mb()), result


def run(nq: int = 3368, ng: int = 15913, dim: int = 512, ids: int = 751, cams: int = 6, repeats: int = 3,
        loop_queries: int = 300, scale: int = 10, seed: int = 0) -> dict:
    """Run the benchmark and return its numbers (seconds, MiB, ratios); see the module docstring."""
    p = make_problem(nq, ng, dim, ids, cams, seed)
    labels = (p["q_pids"], p["g_pids"], p["q_camids"], p["g_camids"])
    out: dict = {"shape": [nq, ng, dim], "threads": torch.get_num_threads(), "repeats": repeats}

    out["distance_s"], out["distance_cpu_s"], distmat = _timed(lambda: compute_distance(p["qf"], p["gf"]), repeats)
    out["evaluate_s"], out["evaluate_cpu_s"], _ = _timed(lambda: evaluate(distmat, *labels), repeats)
    out["two_step_s"], out["two_step_cpu_s"], ours = _timed(lambda: evaluate(compute_distance(p["qf"], p["gf"]), *labels), repeats)
    out["fused_s"], out["fused_cpu_s"], fused = _timed(lambda: evaluate_features(p["qf"], p["gf"], *labels), repeats)
    out["mAP"], out["rank1"], out["mINP"] = ours["mAP"], float(ours["cmc"][0]), ours["mINP"]
    out["fused_identical"] = bool(fused["mAP"] == ours["mAP"] and np.array_equal(fused["cmc"], ours["cmc"]))

    k = min(loop_queries, nq)
    sub = (p["q_pids"][:k], p["g_pids"], p["q_camids"][:k], p["g_camids"])
    d_np = distmat.numpy()
    loop_s, _, loop = _timed(lambda: loop_evaluate(d_np[:k], *sub), 1)
    mine = evaluate(distmat[:k], *sub)
    out["loop_queries"] = k
    out["loop_subset_s"] = loop_s
    out["loop_evaluate_s"] = loop_s * nq / k  # extrapolated to all queries
    out["loop_max_abs_diff"] = max(float(np.abs(loop["cmc"] - mine["cmc"]).max()), abs(loop["mAP"] - mine["mAP"]),
                                   abs(loop["mINP"] - mine["mINP"]))
    out["loop_identical"] = out["loop_max_abs_diff"] < 1e-12 and loop["num_valid"] == mine["num_valid"]
    out["speedup_evaluate"] = out["loop_evaluate_s"] / out["evaluate_s"]
    out["speedup_total"] = (out["distance_s"] + out["loop_evaluate_s"]) / out["two_step_s"]
    del distmat, d_np

    if scale > 1:
        big = make_problem(nq, ng * scale, dim, ids, cams, seed + 1)
        big_labels = (big["q_pids"], big["g_pids"], big["q_camids"], big["g_camids"])
        start = time.perf_counter()
        before, peak, _ = _peak_rss_during(lambda: evaluate_features(big["qf"], big["gf"], *big_labels))
        out["big_shape"] = [nq, ng * scale, dim]
        out["big_s"] = time.perf_counter() - start
        out["big_rss_before_mib"], out["big_peak_rss_mib"] = before, peak
        out["big_extra_mib"] = peak - before
        out["big_full_matrix_mib"] = nq * ng * scale * 4 / 2**20
    return out


def report(r: dict) -> str:
    """The benchmark numbers as a small text table."""
    nq, ng, dim = r["shape"]
    lines = [
        f"re-ID evaluation, {nq} queries × {ng} gallery × {dim}-d, {r['threads']} torch threads, median of {r['repeats']}",
        f"{'step':44s}{'wall s':>9s}{'cpu s':>9s}",
        f"{'compute_distance':44s}{r['distance_s']:9.3f}{r['distance_cpu_s']:9.3f}",
        f"{'evaluate (CMC, mAP, mINP)':44s}{r['evaluate_s']:9.3f}{r['evaluate_cpu_s']:9.3f}",
        f"{'compute_distance + evaluate':44s}{r['two_step_s']:9.3f}{r['two_step_cpu_s']:9.3f}",
        f"{'evaluate_features (fused, 32 MB blocks)':44s}{r['fused_s']:9.3f}{r['fused_cpu_s']:9.3f}",
        f"{'per-query numpy loop (extrapolated)':44s}{r['loop_evaluate_s']:9.3f}{'':>9s}",
        f"  loop run on {r['loop_queries']} queries in {r['loop_subset_s']:.3f} s, scaled ×{nq / r['loop_queries']:.1f};"
        f" same numbers: {r['loop_identical']} (max |diff| {r['loop_max_abs_diff']:.1e})",
        f"speed-up vs loop: evaluate ×{r['speedup_evaluate']:.1f}, distance + evaluate ×{r['speedup_total']:.1f}",
        f"result: Rank-1 {r['rank1']:.4f}  mAP {r['mAP']:.4f}  mINP {r['mINP']:.4f}  (fused identical: {r['fused_identical']})",
    ]
    if "big_shape" in r:
        bq, bg, _ = r["big_shape"]
        lines.append(
            f"{bq} × {bg} gallery, evaluate_features: {r['big_s']:.2f} s, peak RSS {r['big_peak_rss_mib']:.0f} MiB"
            f" (+{r['big_extra_mib']:.0f} MiB over the {r['big_rss_before_mib']:.0f} MiB holding the features;"
            f" the full distance matrix would be {r['big_full_matrix_mib']:.0f} MiB)")
    return "\n".join(lines)


def main() -> None:
    """Command-line entry: ``python benchmarks/bench_eval.py [--quick]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small shapes (a smoke test)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--scale", type=int, default=10, help="gallery multiplier of the memory run (1: skip)")
    args = parser.parse_args()
    kwargs = dict(nq=300, ng=1500, dim=64, ids=100, loop_queries=100) if args.quick else {}
    print(report(run(repeats=args.repeats, scale=args.scale, **kwargs)))


if __name__ == "__main__":
    main()
