"""Benchmark: training throughput of reid's engine against a plain fp32 PyTorch loop.

``reid``: what ``reid run`` does for one step — :class:`~reid.data.loaders.TrainLoader`
(sampling + batched augmentation), :meth:`Trainer.run_step` under the runtime's autocast and
memory format, the spec's loss, the timm optimiser and LR schedule, and the per-step
logging hooks (metrics file, progress), built as :func:`reid.engine.experiment.run_experiment`
builds them. Evaluation and checkpoints (once per epoch) are left out.

``plain``: the loop a PyTorch tutorial writes — the same model class and batch size, fp32,
contiguous NCHW, ``model.train()``, random batches from the same in-memory uint8 tensor
normalised per batch (no augmentation, so its input costs almost nothing),
``nn.CrossEntropyLoss`` and ``torch.optim.Adam`` with its defaults.

Both run in turns (A B A B …) and the medians of ``repeats`` chunks of ``iters`` steps are
compared. :func:`profile_reid` lists the operators a reid step spends its time in, and
:func:`input_pipeline` times the loader alone against torchvision's per-image transforms.

Usage:
    python -m benchmarks.bench_train            # Q8 setting
    python -m benchmarks.bench_train --quick    # seconds
"""

from __future__ import annotations

import argparse
import io
import tempfile
import time
from pathlib import Path
from typing import Callable

import torch
from rich.console import Console
from torch import nn

from benchmarks.timing import interleave
from benchmarks.workload import Workload, load_workload
from reid.data.loaders import TrainLoader
from reid.engine.distributed import DistContext
from reid.engine.experiment import wrap_for_training
from reid.engine.hooks import MetricsHook, ProgressHook
from reid.engine.optim import LRSchedule, build_optimizer
from reid.engine.rundir import RunDir
from reid.engine.runtime import resolve_runtime
from reid.engine.trainer import Hook, Trainer
from reid.losses import build_loss
from reid.spec import Spec


class _ImageCount(Hook):
    """Counts the images trained on."""

    def __init__(self) -> None:
        self.images = 0

    def after_step(self, trainer: Trainer) -> None:
        """Add the step's batch size."""
        self.images += trainer.step_output.batch_size


def reid_trainer(w: Workload, iters: int, run_dir: Path, spec: Spec | None = None) -> tuple[Trainer, Callable[[], int]]:
    """reid's training engine for ``w`` (or ``spec``) and a function that trains one chunk of ``iters`` steps.

    The chunk is one more epoch of :meth:`Trainer.train` capped at ``iters`` iterations; it
    returns the number of images trained on.
    """
    spec = spec or w.spec
    runtime = resolve_runtime(spec.runtime)
    model = w.model().to(runtime.device)
    if runtime.channels_last:
        model = model.to(memory_format=torch.channels_last)
    loader = TrainLoader(w.data.train, spec.sampler, spec.augment, seed=spec.seed, device=runtime.device)  # as run_experiment
    optimizer = build_optimizer(model, spec.optim)
    schedule = LRSchedule(optimizer, spec.schedule, iters_per_epoch=min(iters, len(loader)))
    run = RunDir(run_dir)
    run.create(spec.to_toml(), force=True)
    count = _ImageCount()
    hooks = [count, MetricsHook(run, spec.runtime.log_every), ProgressHook(Console(file=io.StringIO()), plain=True)]
    trainer = Trainer(wrap_for_training(model, spec, DistContext(), runtime), build_loss(spec.loss), optimizer,
                      schedule, loader, runtime, epochs=0, hooks=hooks, iters_per_epoch=iters,
                      sync_every=spec.runtime.log_every)  # as run_experiment: read the loss back every log_every steps

    def chunk() -> int:
        before = count.images
        trainer.epochs += 1
        trainer.train()
        return count.images - before

    return trainer, chunk


def plain_loop(w: Workload, iters: int) -> Callable[[], int]:
    """A plain fp32 PyTorch training loop over ``w``'s model and batch size; returns images per chunk."""
    model = w.model()
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=w.spec.optim.lr, weight_decay=w.spec.optim.weight_decay)
    criterion = nn.CrossEntropyLoss()
    images, labels = w.data.train.images, w.data.train.pids
    mean, std = w.mean_std()
    g = torch.Generator().manual_seed(0)
    n = w.batch_size

    def chunk() -> int:
        for _ in range(iters):
            idx = torch.randperm(len(images), generator=g)[:n]
            x = (images[idx].float() / 255 - mean) / std
            loss = criterion(model(x)["logits"], labels[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        return iters * min(n, len(images))

    return chunk


def profile_reid(chunk: Callable[[], int], top: int = 8) -> dict:
    """Profile one chunk with :mod:`torch.profiler`: the ``top`` operators by own CPU time, with shares."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        chunk()
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    total = sum(e.self_cpu_time_total for e in events) or 1.0
    events.sort(key=lambda e: e.self_cpu_time_total, reverse=True)
    return {"total_ms": total / 1e3,
            "ops": [{"op": e.key, "ms": e.self_cpu_time_total / 1e3, "calls": e.count,
                     "share": e.self_cpu_time_total / total} for e in events[:top]]}


def fast_path_in_effect(model: nn.Module, chunk: Callable[[], int]) -> dict:
    """Run ``chunk`` watching the first convolution: its input layout, weight layout and output dtype."""
    conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    seen: dict = {}

    def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        seen.setdefault("input_channels_last", inputs[0].is_contiguous(memory_format=torch.channels_last))
        seen.setdefault("weight_channels_last", module.weight.is_contiguous(memory_format=torch.channels_last))
        seen.setdefault("conv_dtype", str(output.dtype).removeprefix("torch."))

    handle = conv.register_forward_hook(hook)
    try:
        chunk()
    finally:
        handle.remove()
    return seen


def run(w: Workload, iters: int = 10, repeats: int = 3, profile_iters: int = 2) -> dict:
    """Time reid's engine against the plain loop (medians of ``repeats`` chunks of ``iters`` steps) and profile reid."""
    with tempfile.TemporaryDirectory() as tmp:
        trainer, reid_chunk = reid_trainer(w, iters, Path(tmp) / "run")
        t = interleave({"reid": reid_chunk, "plain": plain_loop(w, iters)}, repeats=repeats, warmup=1)
        trainer.iters_per_epoch = profile_iters
        profile = profile_reid(reid_chunk)
        profile["steps"] = profile_iters
        trainer.iters_per_epoch = 1
        checks = fast_path_in_effect(trainer.model, reid_chunk)
    rt = trainer.runtime
    return {
        "batch": w.batch_size, "image": list(w.image_size), "iters": iters, "repeats": repeats,
        "precision": rt.precision, "channels_last": rt.channels_last,
        "optimizer": f"{type(trainer.optimizer).__name__} (fused={trainer.optimizer.defaults.get('fused')})",
        "reid_img_s": t["reid"].median_rate, "plain_img_s": t["plain"].median_rate,
        "reid_rates": t["reid"].rates, "plain_rates": t["plain"].rates,
        "speedup": t["reid"].median_rate / t["plain"].median_rate,
        "profile": profile, "fast_path": checks,
    }


def fp32_variants(w: Workload, iters: int = 10, repeats: int = 3) -> dict:
    """reid's engine in fp32 — contiguous NCHW (what ``auto`` picks without bf16), channels_last, one thread — and
    the plain fp32 loop, timed in turns: whether the easy settings gain anything where there is no bf16.
    """
    runtime = w.spec.runtime.model_copy(update={"precision": "fp32", "compile": False})
    threads = torch.get_num_threads()

    def fp32(channels_last: str) -> Spec:
        return w.spec.model_copy(update={"runtime": runtime.model_copy(update={"channels_last": channels_last})})

    def one_thread(chunk: Callable[[], int]) -> Callable[[], int]:
        def timed() -> int:
            torch.set_num_threads(1)
            try:
                return chunk()
            finally:
                torch.set_num_threads(threads)
        return timed

    with tempfile.TemporaryDirectory() as tmp:
        nchw = reid_trainer(w, iters, Path(tmp) / "nchw", spec=fp32("off"))[1]
        variants = {"nchw": nchw, "channels_last": reid_trainer(w, iters, Path(tmp) / "cl", spec=fp32("on"))[1],
                    "plain": plain_loop(w, iters)}
        if threads > 1:
            variants["one_thread"] = one_thread(nchw)
        t = interleave(variants, repeats=repeats, warmup=1)
    return {"threads": threads, "iters": iters, "repeats": repeats,
            **{f"{name}_img_s": timing.median_rate for name, timing in t.items()}}


def run_compile(w: Workload, iters: int = 10, repeats: int = 3,
                wrap: Callable[[Callable[[], int]], Callable[[], int]] = lambda chunk: chunk, mode: str = "default") -> dict:
    """reid's engine with and without ``runtime.compile`` (torch.compile), in turns; compile time reported apart.

    ``wrap`` is applied to each timed chunk (on a GPU: one that synchronises the device at its end); ``mode`` is
    ``runtime.compile_mode``.
    """
    compiled_spec = w.spec.model_copy(update={"runtime": w.spec.runtime.model_copy(
        update={"compile": True, "compile_mode": mode})})
    with tempfile.TemporaryDirectory() as tmp:
        eager = wrap(reid_trainer(w, iters, Path(tmp) / "eager")[1])
        compiled = wrap(reid_trainer(w, iters, Path(tmp) / "compiled", spec=compiled_spec)[1])
        start = time.perf_counter()
        compiled()  # first chunk: tracing and code generation
        first_chunk_s = time.perf_counter() - start
        t = interleave({"eager": eager, "compiled": compiled}, repeats=repeats, warmup=1)
    return {"eager_img_s": t["eager"].median_rate, "compiled_img_s": t["compiled"].median_rate,
            "speedup": t["compiled"].median_rate / t["eager"].median_rate, "first_chunk_s": first_chunk_s,
            "iters": iters, "repeats": repeats}


def torchvision_transform(w: Workload) -> Callable[[torch.Tensor], torch.Tensor]:
    """The spec's flip / pad-crop / normalise / erase as torchvision v2 per-image transforms."""
    from torchvision.transforms import v2

    a, (h, wd) = w.spec.augment, w.image_size
    steps = [v2.RandomHorizontalFlip(a.flip)]
    if a.pad:
        steps += [v2.Pad(a.pad), v2.RandomCrop((h, wd))]
    steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(a.mean), list(a.std))]
    if a.erase:
        steps.append(v2.RandomErasing(a.erase, value=0))
    return v2.Compose(steps)


def consume(loader: TrainLoader, n: int, move: Callable[[torch.Tensor], torch.Tensor] = lambda x: x) -> Callable[[], int]:
    """A timing variant: each call reads the first ``n`` batches of the loader's next epoch (each through
    ``move``) and returns how many images it read."""
    epoch = [0]

    def read() -> int:
        loader.set_epoch(epoch[0])
        epoch[0] += 1
        count = 0
        for i, (x, _) in enumerate(loader):
            if i >= n:
                break
            count += move(x).shape[0]
        return count

    return read


def input_pipeline(w: Workload, batches: int = 40, repeats: int = 3) -> dict:
    """Images per second of the TrainLoader alone (sampling + batched augmentation) and of per-image torchvision."""
    loader = TrainLoader(w.data.train, w.spec.sampler, w.spec.augment, seed=w.spec.seed)
    n = min(batches, len(loader))
    transform, images = torchvision_transform(w), w.data.train.images
    reid = consume(loader, n)

    def per_image() -> int:
        count = 0
        for idx in torch.randperm(len(images))[: n * w.batch_size].split(w.batch_size):
            count += torch.stack([transform(images[i]) for i in idx.tolist()]).shape[0]
        return count

    t = interleave({"reid": reid, "torchvision": per_image}, repeats=repeats, warmup=1)
    return {"reid_img_s": t["reid"].median_rate, "torchvision_img_s": t["torchvision"].median_rate,
            "batches": n, "repeats": repeats}


def main() -> None:
    """Command-line entry: ``python -m benchmarks.bench_train [--quick]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a smoke test)")
    parser.add_argument("--spec", default="specs/q8.toml")
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    w = load_workload(args.spec, quick=args.quick)
    r = run(w, iters=2 if args.quick else args.iters, repeats=args.repeats)
    print(f"training img/s: reid {r['reid_img_s']:.1f} ({r['precision']}, channels_last={r['channels_last']}, "
          f"{r['optimizer']}) · plain fp32 {r['plain_img_s']:.1f} · ×{r['speedup']:.2f}")
    for op in r["profile"]["ops"]:
        print(f"  {op['op']:40s} {op['share']:6.1%}")
    i = input_pipeline(w, batches=4 if args.quick else 40, repeats=args.repeats)
    print(f"input img/s: reid TrainLoader {i['reid_img_s']:.0f} · torchvision per image {i['torchvision_img_s']:.0f}")


if __name__ == "__main__":
    main()
