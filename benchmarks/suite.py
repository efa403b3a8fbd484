"""The whole benchmark suite in one process: measure, compare with the targets, render.

Sections (``--only`` picks some): ``gemm`` (the machine's matmul peak), ``train`` (reid's
engine against a plain fp32 loop, with a profile), ``fp32`` (reid's engine in fp32: NCHW,
channels_last, one thread, against the plain loop — the path of CPUs without bf16), ``input`` (the loader alone), ``embed``
(feature extraction), ``eval`` (ranking at Market-1501 size, :mod:`benchmarks.bench_eval`),
``memory`` (peak RSS of a short ``reid run``) and, on request only, ``compile``
(``runtime.compile``). Utilisation — achieved FLOP/s over the measured GEMM peak — needs
``gemm`` and ``train``.

:func:`run_suite` returns every number; :func:`rows` compares them with the targets;
:func:`markdown` renders the report block that ``reid bench --out`` writes between two
markers, leaving hand-written text around them alone (:func:`write_report`).

Example:
    >>> sorted(DEFAULT_SECTIONS) == sorted(set(SECTIONS) - {"compile"})
    True
"""

from __future__ import annotations

import datetime as _dt
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from benchmarks import bench_embed, bench_eval, bench_gemm, bench_memory, bench_train
from benchmarks.markdown_block import markers, write_block
from benchmarks.timing import cpu_snapshot, load_average, machine, others_share
from benchmarks.workload import QUICK_OVERRIDES, load_workload
from reid.errors import ReidError

SECTIONS = ("gemm", "train", "fp32", "input", "embed", "eval", "memory", "compile")
DEFAULT_SECTIONS = ("gemm", "train", "fp32", "input", "embed", "eval", "memory")
BEGIN, END = markers("reid bench", "generated")

#: Sizes of a full run and of a ``--quick`` smoke run.
FULL = {"train_iters": 10, "input_batches": 40, "gemm_n": 2048, "memory_iters": 20, "compile_iters": 10,
        "eval": {}}
QUICK = {"train_iters": 2, "input_batches": 3, "gemm_n": 256, "memory_iters": 2, "compile_iters": 2,
         "eval": {"nq": 200, "ng": 1000, "dim": 64, "ids": 50, "loop_queries": 50}}

#: Targets on a CPU with native bf16 (see BENCHMARKS.md).
TARGETS = {"train_speedup": 3.5, "embed_speedup": 4.5, "eval_seconds": 1.5, "eval_speedup": 25.0,
           "input_over_train": 3.0, "train_utilisation": 0.45}


def parse_sections(only: str | None) -> tuple[str, ...]:
    """``"train,eval"`` → ``("train", "eval")`` in suite order; ``None`` → :data:`DEFAULT_SECTIONS`.

    Raises:
        ReidError: an unknown section name.
    """
    if not only:
        return DEFAULT_SECTIONS
    names = [s.strip() for s in only.split(",") if s.strip()]
    unknown = [s for s in names if s not in SECTIONS]
    if unknown or not names:
        raise ReidError(f"unknown benchmark section(s): {', '.join(unknown) or only!r}", where="--only",
                        fix=f"choose from {', '.join(SECTIONS)}")
    return tuple(s for s in SECTIONS if s in names)


def run_suite(sections: tuple[str, ...] = DEFAULT_SECTIONS, spec_path: str | Path = "specs/q8.toml",
              quick: bool = False, repeats: int = 3, cache_dir: str | Path | None = None,
              log: Callable[[str], None] = print) -> dict:
    """Run ``sections`` on the spec's workload and return all numbers (plus machine and load).

    Args:
        sections: which benchmarks (see :data:`SECTIONS`).
        spec_path: the experiment whose setting is measured (default: the assignment's Q8).
        quick: tiny sizes, for a smoke run.
        repeats: timed repeats per variant (medians are reported).
        cache_dir: where the synthetic data is cached (default: reid's cache).
        log: progress messages.
    """
    size = QUICK if quick else FULL
    out: dict = {"machine": machine(), "sections": list(sections), "quick": quick, "repeats": repeats,
                 "spec": str(spec_path), "date": _dt.datetime.now().isoformat(timespec="seconds")}
    started, snapshot = time.perf_counter(), cpu_snapshot()
    model_sections = {"train", "fp32", "input", "embed", "compile"} & set(sections)
    w = load_workload(spec_path, quick=quick, cache_dir=cache_dir) if model_sections else None

    def step(name: str, fn: Callable[[], dict]) -> None:
        if name in sections:
            log(f"{name} …")
            t = time.perf_counter()
            try:
                out[name] = fn()
            except ReidError as e:  # one failed section must not lose the others' numbers
                out.setdefault("errors", {})[name] = e.message
                log(f"{name} failed: {e.message}")
                return
            log(f"{name} done in {time.perf_counter() - t:.0f} s (load {load_average()[0]:.1f})")

    step("gemm", lambda: bench_gemm.run(size["gemm_n"], repeats=max(repeats, 3)))
    step("train", lambda: bench_train.run(w, iters=size["train_iters"], repeats=repeats))
    step("fp32", lambda: bench_train.fp32_variants(w, iters=size["train_iters"], repeats=repeats))
    step("input", lambda: bench_train.input_pipeline(w, batches=size["input_batches"], repeats=repeats))
    step("embed", lambda: bench_embed.run(w, repeats=repeats))
    step("eval", lambda: bench_eval.run(repeats=repeats, scale=1, **size["eval"]))
    step("memory", lambda: bench_memory.run(spec_path, iters=size["memory_iters"], cache_dir=cache_dir,
                                            overrides=QUICK_OVERRIDES if quick else []))
    step("compile", lambda: bench_train.run_compile(w, iters=size["compile_iters"], repeats=repeats))
    if w is not None and {"train", "fp32", "embed"} & set(sections):
        from reid.model.flops import count_flops

        out["flops_per_image"] = count_flops(w.model()).total  # fvcore: a multiply-add is one flop
        out["image"] = list(w.image_size)
    out["seconds"] = time.perf_counter() - started
    out["machine"]["load_after"] = load_average()
    out["machine"]["others_cpu_share"] = others_share(snapshot, cpu_snapshot())
    return out


@dataclass
class Row:
    """One line of the results table; ``met`` is ``None`` where there is no target."""

    name: str
    reid: str
    baseline: str
    ratio: str
    target: str
    met: bool | None


def utilisation(r: dict) -> dict:
    """Achieved TFLOP/s of training (3 × forward) and embedding (1 × forward) and their share of the GEMM peak.

    Forward FLOPs per image = 2 × fvcore's count (fvcore counts a multiply-add as one).
    Each is compared with the peak of its own precision, measured in the same run.
    """
    if "flops_per_image" not in r or "gemm" not in r:
        return {}
    fwd, g, out = 2.0 * r["flops_per_image"], r["gemm"], {}

    def peak(precision: str) -> float:
        return g.get(f"{'bf16' if precision == 'bf16' else 'fp32'}_peak_tflops", g["fp32_peak_tflops"])

    if "train" in r:
        t = r["train"]
        out["train_tflops"] = t["reid_img_s"] * 3 * fwd / 1e12
        out["train_share"] = out["train_tflops"] / peak(t["precision"])
        out["plain_train_tflops"] = t["plain_img_s"] * 3 * fwd / 1e12
        out["plain_train_share"] = out["plain_train_tflops"] / peak("fp32")
    if "fp32" in r:
        out["fp32_train_tflops"] = max(r["fp32"]["nchw_img_s"], r["fp32"]["channels_last_img_s"]) * 3 * fwd / 1e12
        out["fp32_train_share"] = out["fp32_train_tflops"] / peak("fp32")
    if "embed" in r:
        e = r["embed"]
        out["embed_tflops"] = e["reid_img_s"] * fwd / 1e12
        out["embed_share"] = out["embed_tflops"] / peak(e["precision"])
    return out


def rows(r: dict) -> list[Row]:
    """The results table: each measured quantity against its baseline and target."""
    t, out = TARGETS, []
    if "train" in r:
        x = r["train"]
        out.append(Row(f"training img/s (batch {x['batch']}, {x['image'][0]}×{x['image'][1]})",
                       f"{x['reid_img_s']:.1f} ({x['precision']}{', channels_last' if x['channels_last'] else ''})",
                       f"{x['plain_img_s']:.1f} (plain fp32)", f"×{x['speedup']:.2f}", f"≥ ×{t['train_speedup']}",
                       x["speedup"] >= t["train_speedup"]))
    if "fp32" in r:
        x = r["fp32"]
        out.append(Row("fp32 training img/s: channels_last vs contiguous (NCHW)", f"{x['channels_last_img_s']:.1f}",
                       f"{x['nchw_img_s']:.1f} (reid fp32, NCHW)", f"×{x['channels_last_img_s'] / x['nchw_img_s']:.2f}",
                       "", None))
        out.append(Row("fp32 training img/s: reid (NCHW) vs plain fp32 loop", f"{x['nchw_img_s']:.1f}",
                       f"{x['plain_img_s']:.1f} (plain fp32)", f"×{x['nchw_img_s'] / x['plain_img_s']:.2f}", "", None))
        if "one_thread_img_s" in x:
            out.append(Row(f"fp32 training img/s: {x['threads']} threads vs 1", f"{x['nchw_img_s']:.1f}",
                           f"{x['one_thread_img_s']:.1f} (1 thread)", f"×{x['nchw_img_s'] / x['one_thread_img_s']:.2f}",
                           "", None))
    if "embed" in r:
        x = r["embed"]
        out.append(Row(f"embedding img/s ({x['images']} images, batch {x['batch']})",
                       f"{x['reid_img_s']:.1f} ({x['precision']})", f"{x['plain_img_s']:.1f} (plain fp32)",
                       f"×{x['speedup']:.2f}", f"≥ ×{t['embed_speedup']}", x["speedup"] >= t["embed_speedup"]))
    if "eval" in r:
        x = r["eval"]
        nq, ng, dim = x["shape"]
        ok = x["two_step_s"] <= t["eval_seconds"] and x["speedup_total"] >= t["eval_speedup"] and x["loop_identical"]
        out.append(Row(f"evaluation s ({nq}×{ng}×{dim}: distances + CMC/mAP/mINP)", f"{x['two_step_s']:.2f} s",
                       f"{x['distance_s'] + x['loop_evaluate_s']:.1f} s (per-query numpy loop)",
                       f"×{x['speedup_total']:.1f} (ranking alone ×{x['speedup_evaluate']:.1f}),"
                       f" {'identical' if x['loop_identical'] else 'DIFFERENT'}",
                       f"≤ {t['eval_seconds']} s, ≥ ×{t['eval_speedup']:.0f}, identical", ok))
    if "input" in r:
        x = r["input"]
        if "train" in r:
            ratio = x["reid_img_s"] / r["train"]["reid_img_s"]
            out.append(Row("input pipeline img/s (TrainLoader alone)", f"{x['reid_img_s']:.0f}",
                           f"{r['train']['reid_img_s']:.1f} (reid training)", f"×{ratio:.1f}",
                           f"≥ ×{t['input_over_train']}", ratio >= t["input_over_train"]))
        out.append(Row("input pipeline img/s vs torchvision per image", f"{x['reid_img_s']:.0f}",
                       f"{x['torchvision_img_s']:.0f} (torchvision v2)",
                       f"×{x['reid_img_s'] / x['torchvision_img_s']:.1f}", "", None))
    u = utilisation(r)
    if "train_share" in u:
        x, g = r["train"], r["gemm"]
        p = "bf16" if x["precision"] == "bf16" else "fp32"
        out.append(Row("training utilisation (3 × forward FLOPs)", f"{u['train_tflops']:.3f} TFLOP/s",
                       f"{g[f'{p}_peak_tflops']:.3f} TFLOP/s ({p} GEMM peak)", f"{u['train_share']:.0%}",
                       f"≥ {t['train_utilisation']:.0%}", u["train_share"] >= t["train_utilisation"]))
        out.append(Row("plain fp32 training utilisation", f"{u['plain_train_tflops']:.3f} TFLOP/s",
                       f"{g['fp32_peak_tflops']:.3f} TFLOP/s (fp32 GEMM peak)", f"{u['plain_train_share']:.0%}", "", None))
    if "fp32_train_share" in u:
        out.append(Row("fp32 training utilisation (faster fp32 layout)", f"{u['fp32_train_tflops']:.3f} TFLOP/s",
                       f"{r['gemm']['fp32_peak_tflops']:.3f} TFLOP/s (fp32 GEMM peak)", f"{u['fp32_train_share']:.0%}",
                       "", None))
    if "embed_share" in u:
        p = "bf16" if r["embed"]["precision"] == "bf16" else "fp32"
        out.append(Row("embedding utilisation (forward FLOPs)", f"{u['embed_tflops']:.3f} TFLOP/s",
                       f"{r['gemm'][f'{p}_peak_tflops']:.3f} TFLOP/s ({p} GEMM peak)", f"{u['embed_share']:.0%}", "", None))
    if "gemm" in r and "bf16_peak_tflops" in r["gemm"] and r["machine"].get("mkldnn_bf16"):  # no bf16 column where it is emulated
        g = r["gemm"]
        out.append(Row(f"GEMM peak ({g['n']}² matmul)", f"{g['bf16_peak_tflops']:.3f} TFLOP/s bf16",
                       f"{g['fp32_peak_tflops']:.3f} TFLOP/s fp32", f"×{g['bf16_peak_tflops'] / g['fp32_peak_tflops']:.1f}",
                       "", None))
    if "memory" in r:
        runs = r["memory"]["runs"]
        names = list(runs)
        out.append(Row(f"peak RSS of `reid run` ({r['memory']['iters']} steps + evaluation)",
                       f"{runs[names[0]]['peak_rss_mib']:.0f} MiB ({names[0]})",
                       f"{runs[names[1]]['peak_rss_mib']:.0f} MiB ({names[1]})" if len(names) > 1 else "",
                       "", "", None))
    if "compile" in r:
        x = r["compile"]
        out.append(Row("training img/s with runtime.compile", f"{x['compiled_img_s']:.1f} (compiled)",
                       f"{x['eager_img_s']:.1f} (eager)", f"×{x['speedup']:.2f}",
                       f"first chunk {x['first_chunk_s']:.0f} s", None))
    return out


def _mark(met: bool | None) -> str:
    return "" if met is None else ("yes" if met else "**no**")


def markdown(r: dict, command: str) -> str:
    """The report block (between :data:`BEGIN` and :data:`END`): header, table and details."""
    m = r["machine"]
    before, after, others = m["load"], m["load_after"], m["others_cpu_share"]
    loaded = others > 0.05
    lines = [
        BEGIN,
        "## Results",
        "",
        f"Made by `{command}` on {r['date']} in {r['seconds']:.0f} s (spec `{r['spec']}`"
        f"{', quick sizes' if r['quick'] else ''}; medians of {r['repeats']} interleaved repeats).",
        "",
        f"- CPU: {m['cpu']}, {m['physical_cores']} physical cores / {m['logical_cpus']} logical"
        f" ({', '.join(m['isa']) or 'no AVX'}); GPU: {m['gpu'] or 'none'}",
        f"- torch {m['torch']} (Python {m['python']}), {m['threads']} intra-op / {m['interop_threads']} inter-op threads,"
        f" oneDNN bf16: {'yes' if m['mkldnn_bf16'] else 'no'}",
        f"- load average (1/5/15 min) before: {before[0]:.2f} / {before[1]:.2f} / {before[2]:.2f},"
        f" after: {after[0]:.2f} / {after[1]:.2f} / {after[2]:.2f} (this run's own threads count in it);"
        f" other processes used {others:.0%} of the CPU time during the run — "
        + ("**the machine was loaded**: absolute numbers are low and noisy; the ratios compare variants"
           " timed in turns under the same load" if loaded else "the machine was otherwise idle"),
        "",
        "| benchmark | reid | baseline | ratio | target | met |",
        "|---|---|---|---|---|---|",
    ]
    lines += [f"| {x.name} | {x.reid} | {x.baseline} | {x.ratio} | {x.target} | {_mark(x.met)} |" for x in rows(r)]
    lines += ["", "### Details", ""]
    if "train" in r:
        x = r["train"]
        lines.append(f"- training: {x['iters']} steps per repeat; reid {x['precision']}"
                     f"{' + channels_last' if x['channels_last'] else ''}, {x['optimizer']}; per-repeat img/s reid "
                     f"{_rates(x['reid_rates'])}, plain {_rates(x['plain_rates'])}")
        f = x["fast_path"]
        lines.append(f"- fast path seen inside a reid step (first convolution): input channels_last"
                     f" {f['input_channels_last']}, weights channels_last {f['weight_channels_last']},"
                     f" output dtype {f['conv_dtype']}")
        p = x["profile"]
        lines += ["", f"Where a reid training step spends its time (torch.profiler over {p['steps']} steps, own CPU"
                      f" time of each operator; {p['total_ms'] / p['steps']:.0f} ms per step in all):", "",
                  "| operator | share | ms | calls |", "|---|---|---|---|"]
        lines += [f"| `{o['op']}` | {o['share']:.1%} | {o['ms']:.0f} | {o['calls']} |" for o in p["ops"]]
        lines.append("")
    if "flops_per_image" in r:
        h, w = r["image"]
        lines.append(f"- FLOPs per {h}×{w} image, forward: {2 * r['flops_per_image'] / 1e9:.2f} G"
                     f" (fvcore {r['flops_per_image'] / 1e9:.2f} G multiply-adds × 2); a training step counts 3 × forward")
    if "embed" in r:
        x = r["embed"]
        lines.append(f"- embedding: bf16 vs fp32 features of the same weights: cosine ≥ {x['cosine_min']:.5f}"
                     f" (mean {x['cosine_mean']:.5f}); nearest neighbours agree for {x['nearest_neighbour_agreement']:.1%}")
    if "eval" in r:
        x = r["eval"]
        lines.append(f"- evaluation: compute_distance {x['distance_s']:.2f} s + evaluate {x['evaluate_s']:.2f} s;"
                     f" fused evaluate_features {x['fused_s']:.2f} s; numpy loop timed on {x['loop_queries']} queries"
                     f" ({x['loop_subset_s']:.2f} s) and scaled to all; max |difference| {x['loop_max_abs_diff']:.1e};"
                     f" Rank-1 {x['rank1']:.4f}, mAP {x['mAP']:.4f}, mINP {x['mINP']:.4f}")
    if "input" in r:
        x = r["input"]
        lines.append(f"- input: {x['batches']} batches per repeat (sampling, flip, pad + crop, normalise, erase)")
    if "memory" in r:
        for name, run in r["memory"]["runs"].items():
            lines.append(f"- memory ({name}): `{run['command']}` — peak RSS {run['peak_rss_mib']:.0f} MiB,"
                         f" {run['wall_s']:.0f} s wall, {run['cpu_s']:.0f} s CPU")
    if "compile" in r:
        x = r["compile"]
        lines.append(f"- compile: first compiled chunk of {x['iters']} steps took {x['first_chunk_s']:.0f} s"
                     f" (tracing + code generation)")
    for name, message in r.get("errors", {}).items():
        lines.append(f"- **{name} failed**: {message}")
    lines.append(END)
    return "\n".join(lines) + "\n"


def _rates(rates: list[float]) -> str:
    return ", ".join(f"{v:.1f}" for v in rates)


def write_report(path: str | Path, block: str) -> None:
    """Put ``block`` into ``path`` between the suite's markers (appended when the file has none)."""
    write_block(path, block, BEGIN, END)
