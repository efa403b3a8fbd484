"""The prepared GPU check (issue 13): one table of everything a GPU session must measure.

Rows: the ``cuda``-marked tests; a short quickstart run on cuda; the same run under
``torchrun --nproc_per_node 1`` (the NCCL code path with one GPU); training img/s of reid
against the loop a user would write (fp32, ``DataLoader`` with workers and torchvision
transforms) and the same loop with bf16 AMP; the input pipeline alone; embedding img/s;
Market-1501-size evaluation (3,368 × 15,913 × 512 random features through
:func:`reid.metrics.evaluate_features`); and the share of the measured bf16 convolution
throughput that training reaches (3 × forward FLOPs per image).

Every section runs on its own: one that fails gives an ``error`` row and the others still run.
Timed work ends with a device synchronise, and variants run in turns
(:func:`benchmarks.timing.interleave`). ``--cpu-smoke`` runs the in-process sections at tiny
sizes on the CPU in seconds (tests/test_gpu_check.py), so the script cannot rot unseen.

Usage (on the device machine, through benchmarks/gpu_check.sh)::

    python -m benchmarks.gpu_check --json $OUT/gpu_check.json
    python -m benchmarks.gpu_check --cpu-smoke          # anywhere, seconds
    python -m benchmarks.gpu_check --from-json gpu_check.json --out BENCHMARKS.md   # the table of a past check
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from benchmarks.bench_eval import make_problem
from benchmarks.bench_train import consume, reid_trainer, run_compile, torchvision_transform
from benchmarks.device_call import DeviceCall, call_parser, met
from benchmarks.markdown_block import markers
from benchmarks.timing import interleave
from benchmarks.workload import Workload, load_workload
from reid.data.loaders import TrainLoader
from reid.engine.evaluation import extract_features
from reid.engine.runtime import resolve_runtime
from reid.metrics import evaluate_features

#: Sizes of the check on one GPU, and of the CPU smoke run.
SIZES = {
    "gpu": {"identities": 1000, "images": 10, "train_ids": 900, "side": 128, "batch": 256, "iters": 30, "repeats": 3,
            "warmup": 1, "workers": 8, "input_batches": 30, "eval": (3368, 15913, 512, 751, 6),
            "convs": [(256, 64, 32), (256, 128, 16), (256, 256, 8)], "compile": True},
    "smoke": {"identities": 10, "images": 4, "train_ids": 6, "side": 16, "batch": 4, "iters": 1, "repeats": 1,
              "warmup": 0, "workers": 0, "input_batches": 2, "eval": (40, 200, 16, 20, 2), "convs": [(2, 8, 8)], "compile": False},
}

#: Issue 13's targets (ratios measured in one run on one H100).
TARGETS = {"over_plain": 3.0, "over_amp": 1.5, "conv_share": 0.40, "input_over_train": 5.0, "eval_seconds": 0.3}

#: ``--set`` overrides of the quickstart runs: a few short epochs on the GPU.
QUICKSTART_SETS = ['runtime.device="cuda"', "schedule.epochs=2", "schedule.max_iters_per_epoch=40", "eval.every=2"]


def synced(fn: Callable[[], float], device: torch.device) -> Callable[[], float]:
    """``fn`` followed by a device synchronise (so a timer around it sees the GPU's work finished)."""
    def call() -> float:
        items = fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return items
    return call


def workload(size: dict, device: str, cache_dir: str | None) -> Workload:
    """The benchmark workload: Q8's ResNet-18 recipe at ``size``'s crop and batch on ``device``."""
    s = size
    return load_workload("specs/q8.toml", cache_dir=cache_dir, overrides=[
        f"data.identities={s['identities']}", f"data.images_per_identity={s['images']}", f"data.train_ids={s['train_ids']}",
        f"data.height={s['side']}", f"data.width={s['side']}", 'data.cache="memory"', 'sampler.type="random"',
        f"sampler.batch_size={s['batch']}", f'runtime.device="{device}"', "schedule.warmup_epochs=0",
        f"eval.batch_size={s['batch']}"])


class _Images(torch.utils.data.Dataset):
    """Decoded uint8 images with per-image torchvision transforms: what a user's Dataset returns."""

    def __init__(self, w: Workload):
        self.images, self.pids, self.transform = w.data.train.images, w.data.train.pids, torchvision_transform(w)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        return self.transform(self.images[i]), self.pids[i]


def dataloader_loop(w: Workload, iters: int, device: torch.device, workers: int, amp: bool,
                    model: nn.Module | None = None, channels_last: bool = False) -> Callable[[], int]:
    """The loop a user writes: ``DataLoader`` (workers, pinned memory, torchvision transforms), fp32 or bf16 AMP, Adam.

    ``model`` is any classifier of the batch (logits, or a dict holding them; default: the workload's reid model);
    ``channels_last`` puts it and each batch in the NHWC memory format.
    """
    model = (model if model is not None else w.model()).to(device).train()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=w.spec.optim.lr, weight_decay=w.spec.optim.weight_decay)
    criterion = nn.CrossEntropyLoss()
    loader = torch.utils.data.DataLoader(_Images(w), batch_size=w.batch_size, shuffle=True, drop_last=True,
                                         num_workers=workers, pin_memory=device.type == "cuda",
                                         persistent_workers=workers > 0)
    batches = iter(())

    def chunk() -> int:
        nonlocal batches
        done = 0
        while done < iters:
            try:
                x, y = next(batches)
            except StopIteration:
                batches = iter(loader)
                continue
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                out = model(x)
                loss = criterion(out["logits"] if isinstance(out, dict) else out, y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            done += 1
        return done * w.batch_size

    return chunk


def conv_peak(device: torch.device, shapes: list[tuple[int, int, int]], repeats: int = 20) -> dict:
    """Best measured TFLOP/s of bf16 3×3 convolutions (forward, channels_last) over ``shapes`` (batch, channels, side)."""
    best = {"tflops": 0.0}
    for n, c, side in shapes:
        conv = nn.Conv2d(c, c, 3, padding=1, bias=False).to(device, memory_format=torch.channels_last)
        x = torch.randn(n, c, side, side, device=device).to(memory_format=torch.channels_last)
        flops = 2.0 * n * c * c * 9 * side * side
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16):
            run = synced(lambda: [conv(x) for _ in range(repeats)] and repeats * flops, device)
            run()
            t = interleave({"conv": run}, repeats=3)["conv"]
        if t.best_rate / 1e12 > best["tflops"]:
            best = {"tflops": t.best_rate / 1e12, "shape": [n, c, side]}
    return best


def section_train(w: Workload, size: dict, device: torch.device, out: dict) -> None:
    """reid vs the fp32 DataLoader loop vs the same with AMP, in turns; then the utilisation."""
    from reid.model.flops import count_flops

    with tempfile.TemporaryDirectory() as tmp:
        trainer, reid_chunk = reid_trainer(w, size["iters"], Path(tmp) / "run")
        variants = {"reid": synced(reid_chunk, device),
                    "plain": synced(dataloader_loop(w, size["iters"], device, size["workers"], amp=False), device),
                    "plain_amp": synced(dataloader_loop(w, size["iters"], device, size["workers"], amp=True), device)}
        t = interleave(variants, repeats=size["repeats"], warmup=size["warmup"])
    out["train"] = {name: timing.median_rate for name, timing in t.items()}
    out["train"]["precision"], out["train"]["batch"] = trainer.runtime.precision, w.batch_size
    out["flops_per_image"] = 2.0 * count_flops(w.model()).total  # fvcore counts a multiply-add as one flop


def section_compile(w: Workload, size: dict, device: torch.device, out: dict, mode: str = "default") -> None:
    """reid's engine with ``runtime.compile`` (torch.compile, ``mode``) against eager, in turns; the compiling chunk apart."""
    c = run_compile(w, size["iters"], size["repeats"], wrap=lambda chunk: synced(chunk, device), mode=mode)
    key = "compile" if mode == "default" else f"compile_{mode}"
    out[key] = {"eager": c["eager_img_s"], "compiled": c["compiled_img_s"], "first_chunk_s": c["first_chunk_s"]}


def section_profile(w: Workload, size: dict, device: torch.device, out: dict) -> None:
    """One chunk of reid's training under :mod:`torch.profiler`: the device's busy share of the wall time, top kernels.

    A low share means the GPU waits on the host (Python, kernel launches); the profiler's own overhead lowers it a little.
    """
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with tempfile.TemporaryDirectory() as tmp:
        chunk = synced(reid_trainer(w, size["iters"], Path(tmp) / "run")[1], device)
        chunk()  # warm-up
        with profile(activities=activities) as prof:
            start = time.perf_counter()
            chunk()
            wall = time.perf_counter() - start
    kernels = sorted((e for e in prof.key_averages() if e.device_type == DeviceType.CUDA),  # kernels, not the ops
                     key=lambda e: e.self_device_time_total, reverse=True)                   # that launch them
    busy = sum(e.self_device_time_total for e in kernels) / 1e6
    out["profile"] = {"wall_s": wall, "device_busy_share": busy / wall,
                      "top": [{"name": e.key[:60], "share": e.self_device_time_total / 1e6 / wall} for e in kernels[:5]]}


def section_input(w: Workload, size: dict, device: torch.device, out: dict) -> None:
    """TrainLoader batches on the device (its uint8 cache and augmentation there, as `reid run` builds it), nothing else."""
    runtime = resolve_runtime(w.spec.runtime)
    loader = TrainLoader(w.data.train, w.spec.sampler, w.spec.augment, seed=w.spec.seed, device=runtime.device)
    batches = consume(loader, min(size["input_batches"], len(loader)), runtime.to_device)

    out["input_img_s"] = interleave({"input": synced(batches, device)}, repeats=size["repeats"], warmup=size["warmup"])["input"].median_rate


def section_embed(w: Workload, size: dict, device: torch.device, out: dict) -> None:
    """reid's feature extraction (:func:`extract_features`) of the gallery."""
    runtime = resolve_runtime(w.spec.runtime)
    model = w.model().to(runtime.device)
    if runtime.channels_last:
        model = model.to(memory_format=torch.channels_last)
    gallery = w.data.gallery

    def embed() -> int:
        extract_features(model, gallery, runtime, w.spec.eval, w.spec.augment)
        return len(gallery)

    out["embed_img_s"] = interleave({"embed": synced(embed, device)}, repeats=size["repeats"], warmup=size["warmup"])["embed"].median_rate


def section_eval(size: dict, device: torch.device, out: dict) -> None:
    """Market-size evaluation from features on the device: distances, ranking, CMC/mAP/mINP."""
    nq, ng, dim, ids, cams = size["eval"]
    p = make_problem(nq, ng, dim, ids, cams, seed=0)
    qf, gf = p["qf"].to(device), p["gf"].to(device)

    def evaluate() -> int:
        evaluate_features(qf, gf, p["q_pids"], p["g_pids"], p["q_camids"], p["g_camids"])
        return 1

    t = interleave({"eval": synced(evaluate, device)}, repeats=size["repeats"], warmup=size["warmup"])["eval"]
    out["eval"] = {"seconds": t.median_seconds, "shape": [nq, ng, dim]}


def section_conv(size: dict, device: torch.device, out: dict) -> None:
    """The bf16 convolution peak that utilisation is measured against."""
    out["conv"] = conv_peak(device, size["convs"])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_command(name: str, cmd: list[str], out: dict, run_dir: Path, timeout: int) -> None:
    """Run ``cmd``; record its exit status, wall seconds, the summary's Rank-1 and the output's tail."""
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    record = {"rc": proc.returncode, "seconds": time.perf_counter() - start,
              "tail": (proc.stdout + proc.stderr)[-2000:]}
    summary = run_dir / "summary.json"
    if summary.is_file():
        final = json.loads(summary.read_text()).get("final", {})
        record["rank1"], record["mAP"] = final.get("rank1"), final.get("mAP")
    out[name] = record


def section_commands(work: Path, out: dict) -> None:
    """The cuda tests, a quickstart on cuda, and the same under ``torchrun --nproc_per_node 1`` (NCCL)."""
    start = time.perf_counter()
    # "-o addopts=": the project's own -q would make this -qq, which prints no "N passed" line to count
    proc = subprocess.run([sys.executable, "-m", "pytest", "-m", "cuda", "-o", "addopts=", "-q", "-rfEs",
                           "-p", "no:cacheprovider", "tests/test_cuda.py"], capture_output=True, text=True, timeout=180)
    counts = {k: int(v) for v, k in re.findall(r"(\d+) (passed|failed|skipped|error)", proc.stdout)}
    out["tests"] = {"rc": proc.returncode, "seconds": time.perf_counter() - start, **counts, "tail": proc.stdout[-3000:]}
    sets = [a for s in QUICKSTART_SETS for a in ("--set", s)]
    quick = [sys.executable, "-m", "reid", "run", "specs/quickstart.toml", "--plain", *sets]
    run_command("quickstart", quick + ["--out", str(work / "quickstart")], out, work / "quickstart", timeout=240)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "1", "--master_port", str(_free_port()),
                "-m", "reid", "run", "specs/quickstart.toml", "--plain", *sets, "--out", str(work / "torchrun")]
    run_command("torchrun", torchrun, out, work / "torchrun", timeout=240)


def rows(r: dict) -> list[tuple[str, str, str, str]]:
    """(check, measured, target, met) rows of the table from the results ``r`` (failed sections: :class:`DeviceCall`)."""
    out: list[tuple[str, str, str, str]] = []
    if "tests" in r:
        t = r["tests"]
        out.append(("cuda-marked tests", f"{t.get('passed', 0)} passed, {t.get('failed', 0)} failed, "
                    f"{t.get('skipped', 0)} skipped ({t['seconds']:.0f} s)", "all pass", met(t["rc"] == 0 and not t.get("skipped"))))
    for name, label in (("quickstart", "quickstart on cuda (2 epochs × 40 iterations)"),
                        ("torchrun", "torchrun --nproc_per_node 1 (NCCL path)")):
        if name in r:
            c = r[name]
            rank1 = f"{c['rank1']:.3f}" if c.get("rank1") is not None else "–"
            out.append((label, f"exit {c['rc']}, {c['seconds']:.0f} s, Rank-1 {rank1}", "exit 0", met(c["rc"] == 0)))
    if "train" in r:
        t = r["train"]
        out.append((f"training img/s, reid ({t['precision']}, batch {t['batch']})", f"{t['reid']:.0f}", "", ""))
        out.append(("training img/s, plain fp32 DataLoader loop", f"{t['plain']:.0f}",
                    f"reid ≥ {TARGETS['over_plain']}×", met(t["reid"] >= TARGETS["over_plain"] * t["plain"])))
        out.append(("training img/s, same loop with bf16 AMP", f"{t['plain_amp']:.0f}",
                    f"reid ≥ {TARGETS['over_amp']}×", met(t["reid"] >= TARGETS["over_amp"] * t["plain_amp"])))
        out.append(("reid over plain fp32 / over AMP", f"×{t['reid'] / t['plain']:.2f} / ×{t['reid'] / t['plain_amp']:.2f}", "", ""))
    if "input_img_s" in r:
        ratio = r["input_img_s"] / r["train"]["reid"] if "train" in r else None
        out.append(("input pipeline img/s (TrainLoader → device)",
                    f"{r['input_img_s']:.0f}" + (f" (×{ratio:.1f} training)" if ratio else ""),
                    f"≥ {TARGETS['input_over_train']}× training", met(None if ratio is None else ratio >= TARGETS["input_over_train"])))
    for key, label in (("compile", "runtime.compile"), ("compile_reduce-overhead", 'compile_mode "reduce-overhead"')):
        if key in r:
            c = r[key]
            out.append((f"training img/s, reid with {label} (torch.compile)",
                        f"{c['compiled']:.0f} (×{c['compiled'] / c['eager']:.2f} eager; first chunk {c['first_chunk_s']:.0f} s)", "", ""))
            if "train" in r:
                ratio = c["compiled"] / r["train"]["plain"]
                out.append((f"reid with {label} over plain fp32", f"×{ratio:.2f}", f"≥ {TARGETS['over_plain']}×",
                            met(ratio >= TARGETS["over_plain"])))
    if r.get("profile", {}).get("device_busy_share"):  # no device time on the CPU
        p = r["profile"]
        top = ", ".join(f"{k['name']} {k['share']:.0%}" for k in p["top"][:3])
        out.append(("GPU busy share of reid's training wall time (profiler)", f"{p['device_busy_share']:.0%} (top: {top})", "", ""))
    if "embed_img_s" in r:
        out.append(("embedding img/s (extract_features)", f"{r['embed_img_s']:.0f}", "", ""))
    if "eval" in r:
        e = r["eval"]
        out.append((f"evaluation {' × '.join(map(str, e['shape']))} (evaluate_features)", f"{e['seconds']:.3f} s",
                    f"< {TARGETS['eval_seconds']} s", met(e["seconds"] < TARGETS["eval_seconds"])))
    if "conv" in r:
        c = r["conv"]
        out.append((f"bf16 conv peak ({c.get('shape')})", f"{c['tflops']:.1f} TFLOP/s", "", ""))
        if "train" in r and "flops_per_image" in r and c["tflops"] > 0:
            share = r["train"]["reid"] * 3 * r["flops_per_image"] / 1e12 / c["tflops"]
            out.append(("training share of the bf16 conv peak (3 × forward FLOPs)", f"{share:.0%}",
                        f"≥ {TARGETS['conv_share']:.0%}", met(share >= TARGETS["conv_share"])))
    return out


def run_check(smoke: bool = False, cache_dir: str | None = None, commands: bool | None = None,
              log: Callable[[str], None] = print, saved: Callable[[dict], None] = lambda r: None) -> dict:
    """Run every section (``smoke``: tiny, on the CPU, without the subprocess commands) and return the results.

    ``saved`` receives the results so far after each section (so a check cut off by a timeout keeps them).
    """
    size = SIZES["smoke" if smoke else "gpu"]
    device = torch.device("cpu" if smoke else "cuda")
    r: dict = {"device": torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu", "torch": torch.__version__,
               "date": time.strftime("%Y-%m-%d"), "errors": {}}

    def section(name: str, fn: Callable[[], None]) -> None:
        start = time.perf_counter()
        try:
            fn()
            log(f"[{name}] done in {time.perf_counter() - start:.1f} s")
        except Exception as e:  # one failing section must not hide the others' numbers
            r["errors"][name] = f"{type(e).__name__}: {e}".splitlines()[0][:300]
            log(f"[{name}] FAILED\n{traceback.format_exc()}")
        saved(r)

    with tempfile.TemporaryDirectory() as work:
        if commands if commands is not None else not smoke:
            section("commands", lambda: section_commands(Path(work), r))
        w: dict = {}
        section("workload", lambda: w.setdefault("w", workload(size, device.type, cache_dir)))
        if "w" in w:
            section("train", lambda: section_train(w["w"], size, device, r))
            if size["compile"]:
                section("compile", lambda: section_compile(w["w"], size, device, r))
                section("compile_reduce-overhead", lambda: section_compile(w["w"], size, device, r, "reduce-overhead"))
            section("profile", lambda: section_profile(w["w"], size, device, r))
            section("input", lambda: section_input(w["w"], size, device, r))
            section("embed", lambda: section_embed(w["w"], size, device, r))
        section("eval", lambda: section_eval(size, device, r))
        section("conv", lambda: section_conv(size, device, r))
    return r


BEGIN, END = markers("gpu_check", "generated by benchmarks/gpu_check.py")


def spread(runs: list[dict]) -> str:
    """How much the headline numbers moved across several checks: ``min–max`` of each over ``runs``.

    Example:
        >>> spread([{"train": {"reid": 100.0, "plain": 50.0}, "conv": {"tflops": 300.0}},
        ...         {"train": {"reid": 140.0, "plain": 60.0}, "conv": {"tflops": 500.0}}])
        'Across 2 checks: reid 100–140 img/s, plain fp32 loop 50–60 img/s, bf16 conv peak 300–500 TFLOP/s.'
    """
    def span(values: list[float], unit: str) -> str:
        return f"{min(values):.0f}–{max(values):.0f} {unit}"

    trained = [r for r in runs if "train" in r]
    parts = [f"reid {span([r['train']['reid'] for r in trained], 'img/s')}",
             f"plain fp32 loop {span([r['train']['plain'] for r in trained], 'img/s')}"] if trained else []
    parts += [f"bf16 conv peak {span([r['conv']['tflops'] for r in runs if 'conv' in r], 'TFLOP/s')}"]
    return f"Across {len(runs)} checks: {', '.join(parts)}."


CALL = DeviceCall("gpu_check", "benchmarks/gpu_check.sh", rows, BEGIN, END, spread=spread)


def main() -> None:
    """Command-line entry: run the check (or render past ones), print the table, optionally write JSON / BENCHMARKS.md."""
    args = call_parser(__doc__).parse_args()
    CALL.main(args, lambda saved: run_check(smoke=args.cpu_smoke, cache_dir=os.environ.get("REID_CACHE"), saved=saved))


if __name__ == "__main__":
    main()
