"""The prepared GPU check cannot rot: its driver runs every in-process section at tiny sizes on the CPU."""

from __future__ import annotations

import json
import sys

from benchmarks.device_call import markdown_table
from benchmarks.gpu_check import CALL, QUICKSTART_SETS, main, rows, run_check
from reid.spec import load_spec


def test_cpu_smoke_runs_every_section_and_prints_one_table(tmp_path):
    snapshots = []
    r = run_check(smoke=True, cache_dir=str(tmp_path / "cache"), log=lambda message: None,
                  saved=lambda so_far: snapshots.append(set(so_far)))
    assert r["errors"] == {}
    assert len(snapshots) == 7 and "train" not in snapshots[0] and "train" in snapshots[1]  # kept section by section
    assert {"train", "input_img_s", "embed_img_s", "eval", "conv", "flops_per_image"} <= set(r)
    assert r["train"]["reid"] > 0 and r["train"]["plain"] > 0 and r["train"]["plain_amp"] > 0
    checks = [row[0] for row in rows(r)]
    assert any("plain fp32 DataLoader" in c for c in checks) and any("conv peak" in c for c in checks)
    assert markdown_table(CALL.rows(r)).startswith("| check | measured | target | met |")


def test_the_quickstart_overrides_still_validate():
    spec = load_spec("specs/quickstart.toml", QUICKSTART_SETS)
    assert spec.runtime.device == "cuda" and spec.schedule.epochs == 2


def test_a_past_check_is_rendered_into_benchmarks_between_its_markers(tmp_path, monkeypatch):
    numbers = {"device": "NVIDIA Test", "torch": "2.x", "date": "2026-01-02", "errors": {},
               "tests": {"rc": 0, "seconds": 9.0, "passed": 5},
               "quickstart": {"rc": 0, "seconds": 12.0, "rank1": 0.0204, "mAP": 0.01},
               "eval": {"seconds": 0.145, "shape": [3368, 15913, 512]}}
    (tmp_path / "check.json").write_text(json.dumps(numbers))
    md = tmp_path / "BENCHMARKS.md"
    md.write_text("# Benchmarks\n\nbefore\n")
    numbers["date"], numbers["conv"] = "2026-01-03", {"tflops": 321.0}
    (tmp_path / "check2.json").write_text(json.dumps(numbers))
    for files in (["check.json"], ["check.json", "check2.json"]):  # the second write replaces the first block
        monkeypatch.setattr(sys, "argv", ["gpu_check", "--from-json", *(str(tmp_path / f) for f in files), "--out", str(md)])
        main()
    text = md.read_text()
    assert "on 2026-01-03 on NVIDIA Test" in text and "Across 2 checks: bf16 conv peak 321–321 TFLOP/s" in text
    assert text.startswith("# Benchmarks\n\nbefore\n") and text.count("<!-- gpu_check: begin") == 1
    assert "| cuda-marked tests | 5 passed, 0 failed, 0 skipped (9 s) | all pass | yes |" in text
    assert "| quickstart on cuda (2 epochs × 40 iterations) | exit 0, 12 s, Rank-1 0.020 | exit 0 | yes |" in text
    assert "| evaluation 3368 × 15913 × 512 (evaluate_features) | 0.145 s | < 0.3 s | yes |" in text
