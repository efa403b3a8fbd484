"""Data loading on the CPU: decoding JPEGs vs reading the decoded-image cache, and augmentation img/s.

Measures, on the images of a spec's dataset (default: the synthetic set of ``specs/q8.toml``,
train + query), the first build of an :class:`~reid.data.imageset.ImageSet` (decode every
JPEG and write the cache file), a second build (read the cache file into RAM), and a
streaming build (memory-map the file, then read one pass of batches from it). Then the
batched augmentation of one training batch with each implementation of pad-crop and
erasing (per-image windows, the CPU default, and whole-batch index arithmetic, the GPU
path), and the :class:`~reid.data.loaders.TrainLoader` alone. Prints a Markdown section
for BENCHMARKS.md::

    python -m benchmarks.bench_data              # ≈ 1 min on 2 cores
    python -m benchmarks.bench_data --quick      # a smoke run of a few seconds
"""

from __future__ import annotations

import argparse
import datetime as _dt
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.timing import interleave, load_average, machine
from benchmarks.workload import QUICK_OVERRIDES
from reid.data.build import prepare_splits
from reid.data.imageset import ImageSet
from reid.data.loaders import TrainLoader
from reid.data.transforms import augment_batch
from reid.spec import Spec, load_spec


def _seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def decode_vs_cache(spec: Spec, cache_dir: str | Path | None, repeats: int = 3) -> dict:
    """Seconds to decode the split's JPEGs (writing the cache file), to read that file back and to stream it once.

    Every repeat starts from an empty decoded-image cache; reads come from the page cache
    (the file was just written), as on a second run soon after the first.
    """
    splits = prepare_splits(spec.data, cache_dir)
    samples = splits.train + ([] if splits.same_set else splits.gallery) + splits.query
    h, w = spec.data.height, spec.data.width
    out: dict = {"images": len(samples), "size": [h, w], "decode_s": [], "load_s": [], "stream_s": []}
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as root:
            out["decode_s"].append(_seconds(lambda: ImageSet(samples, h, w, cache="memory", cache_dir=root)))
            out["load_s"].append(_seconds(lambda: ImageSet(samples, h, w, cache="memory", cache_dir=root)))

            def stream_once() -> None:
                s = ImageSet(samples, h, w, cache="stream", cache_dir=root)
                order = torch.randperm(len(s)).split(64)
                for _ in s.batches(order):
                    pass

            out["stream_s"].append(_seconds(stream_once))
    out["bytes"] = len(samples) * 3 * h * w
    return out


def augmentation(spec: Spec, batch: int, repeats: int = 3, batches: int = 40) -> dict:
    """img/s of :func:`augment_batch` with per-image windows vs whole-batch indexing, and of the TrainLoader alone."""
    h, w = spec.data.height, spec.data.width
    x = torch.randint(0, 256, (batch, 3, h, w), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))

    def path(vectorised: bool):
        def go() -> int:
            g = torch.Generator().manual_seed(0)
            for _ in range(batches):
                augment_batch(x, spec.augment, g, vectorised=vectorised)
            return batches * batch
        return go

    t = interleave({"windows": path(False), "vectorised": path(True)}, repeats=repeats, warmup=1)
    return {"batch": batch, "batches": batches, "windows_img_s": t["windows"].median_rate,
            "vectorised_img_s": t["vectorised"].median_rate}


def loader_rate(spec: Spec, cache_dir: str | Path | None, repeats: int = 3, batches: int = 40) -> float:
    """Median img/s of the CPU TrainLoader (sampling, gathering, augmentation) over ``batches`` batches."""
    from reid.data import build_data

    data = build_data(spec.data, cache_dir=cache_dir)
    loader = TrainLoader(data.train, spec.sampler, spec.augment, seed=spec.seed)
    epoch = [0]

    def run() -> int:
        loader.set_epoch(epoch[0])
        epoch[0] += 1
        n = 0
        for i, (xb, _) in enumerate(loader):
            if i >= batches:
                break
            n += xb.shape[0]
        return n

    return interleave({"loader": run}, repeats=repeats, warmup=1)["loader"].median_rate


def markdown(r: dict, command: str) -> str:
    """The BENCHMARKS.md section for the numbers of :func:`main`."""
    m, d, a = r["machine"], r["decode"], r["augment"]
    med = {k: sorted(d[k])[len(d[k]) // 2] for k in ("decode_s", "load_s", "stream_s")}
    mib = d["bytes"] / 1024**2
    h, w = d["size"]
    return "\n".join([
        "## Data loading: decoded-image cache and augmentation (CPU)",
        "",
        f"Made by `{command}` on {r['date']} (spec `{r['spec']}`; medians of {r['repeats']} repeats).",
        f"CPU: {m['cpu']}, {m['physical_cores']} physical cores, {m['threads']} torch threads; "
        f"load average before {r['load_before'][0]:.2f}, after {r['load_after'][0]:.2f}.",
        "",
        f"| {d['images']} images at {h}×{w} ({mib:.0f} MiB of uint8) | seconds | img/s |",
        "|---|---|---|",
        f"| first build: decode every JPEG, write the cache file | {med['decode_s']:.2f} | {d['images'] / med['decode_s']:.0f} |",
        f"| second build: read the cache file into RAM | {med['load_s']:.3f} | {d['images'] / med['load_s']:.0f} |",
        f"| stream: memory-map the file, read one shuffled pass in batches of 64 | {med['stream_s']:.3f} | {d['images'] / med['stream_s']:.0f} |",
        "",
        f"Second build ×{med['decode_s'] / med['load_s']:.0f} faster than decoding (file in the page cache).",
        "",
        f"| augmentation of {a['batch']} × {h}×{w} batches | img/s |",
        "|---|---|",
        f"| per-image windows for pad-crop and erasing (CPU default) | {a['windows_img_s']:.0f} |",
        f"| whole-batch index arithmetic and masks (GPU path) | {a['vectorised_img_s']:.0f} |",
        f"| TrainLoader alone on the CPU (sampling + gathering + augmentation) | {r['loader_img_s']:.0f} |",
        "",
    ])


def main() -> None:
    """Command-line entry: ``python -m benchmarks.bench_data [--quick]``; prints the Markdown section."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a smoke test)")
    parser.add_argument("--spec", default="specs/q8.toml")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cache-dir", default=None, help="where the synthetic JPEGs are cached (default: reid's)")
    args = parser.parse_args()
    spec = load_spec(args.spec, QUICK_OVERRIDES if args.quick else [])
    batch = spec.sampler.p * spec.sampler.k if spec.sampler.type == "pk" else spec.sampler.batch_size
    batches = 3 if args.quick else 40
    r = {"machine": machine(), "spec": args.spec, "repeats": args.repeats, "load_before": load_average(),
         "date": _dt.datetime.now().isoformat(timespec="seconds")}
    r["decode"] = decode_vs_cache(spec, args.cache_dir, repeats=args.repeats)
    r["augment"] = augmentation(spec, batch, repeats=args.repeats, batches=batches)
    r["loader_img_s"] = loader_rate(spec, args.cache_dir, repeats=args.repeats, batches=batches)
    r["load_after"] = load_average()
    command = "python -m benchmarks.bench_data" + (" --quick" if args.quick else "")
    print(markdown(r, command))


if __name__ == "__main__":
    main()
