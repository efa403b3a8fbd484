"""Benchmark: embedding extraction with reid's evaluation path against a plain fp32 loop.

``reid``: :func:`reid.engine.evaluation.extract_features` — :func:`~reid.data.loaders.eval_batches`
and ``model.embed`` under the runtime's autocast and memory format (the model converted
to channels_last as ``reid run`` does), features gathered as float32.

``plain``: ``model.eval()``, ``torch.no_grad()``, fp32 contiguous NCHW batches of the same
size normalised from the same in-memory uint8 tensor, ``model.embed``.

Both models hold the same weights, so the two feature sets also show how far the reduced
precision moves the embeddings (cosine similarity, and whether nearest neighbours agree).

Usage:
    python -m benchmarks.bench_embed [--quick]
"""

from __future__ import annotations

import argparse
from typing import Callable

import torch
import torch.nn.functional as F

from benchmarks.timing import interleave
from benchmarks.workload import Workload, load_workload
from reid.engine.evaluation import extract_features
from reid.engine.runtime import resolve_runtime


def plain_embed(w: Workload, model: torch.nn.Module) -> Callable[[], torch.Tensor]:
    """A plain fp32 no-grad loop embedding the gallery of ``w`` with ``model``."""
    images, bs = w.data.gallery.images, w.spec.eval.batch_size
    mean, std = w.mean_std()
    model.eval()

    @torch.no_grad()
    def embed() -> torch.Tensor:
        return torch.cat([model.embed((images[i : i + bs].float() / 255 - mean) / std) for i in range(0, len(images), bs)])

    return embed


def run(w: Workload, repeats: int = 3) -> dict:
    """Images per second of both paths on ``w``'s gallery (medians of ``repeats``), and their agreement."""
    runtime = resolve_runtime(w.spec.runtime)
    model = w.model().to(runtime.device)
    if runtime.channels_last:
        model = model.to(memory_format=torch.channels_last)
    model.eval()
    gallery = w.data.gallery
    out: dict = {}

    def reid() -> int:
        out["reid"] = extract_features(model, gallery, runtime, w.spec.eval, w.spec.augment).features
        return len(gallery)

    plain_fn = plain_embed(w, w.model())

    def plain() -> int:
        out["plain"] = plain_fn()
        return len(gallery)

    t = interleave({"reid": reid, "plain": plain}, repeats=repeats, warmup=1)
    a, b = out["reid"], out["plain"]
    cos = F.cosine_similarity(a, b, dim=1)
    nn_a = torch.cdist(a, a).fill_diagonal_(float("inf")).argmin(1)
    nn_b = torch.cdist(b, b).fill_diagonal_(float("inf")).argmin(1)
    return {
        "images": len(gallery), "batch": w.spec.eval.batch_size, "repeats": repeats,
        "precision": runtime.precision, "channels_last": runtime.channels_last,
        "reid_img_s": t["reid"].median_rate, "plain_img_s": t["plain"].median_rate,
        "speedup": t["reid"].median_rate / t["plain"].median_rate,
        "cosine_min": float(cos.min()), "cosine_mean": float(cos.mean()),
        "nearest_neighbour_agreement": float((nn_a == nn_b).float().mean()),
    }


def main() -> None:
    """Command-line entry: ``python -m benchmarks.bench_embed [--quick]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a smoke test)")
    parser.add_argument("--spec", default="specs/q8.toml")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    r = run(load_workload(args.spec, quick=args.quick), repeats=args.repeats)
    print(f"embedding img/s: reid {r['reid_img_s']:.1f} ({r['precision']}) · plain fp32 {r['plain_img_s']:.1f} · "
          f"×{r['speedup']:.2f}; cosine ≥ {r['cosine_min']:.4f}, nearest neighbours agree "
          f"{r['nearest_neighbour_agreement']:.1%}")


if __name__ == "__main__":
    main()
