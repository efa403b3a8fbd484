"""The prepared GPU check cannot rot: its driver runs every in-process section at tiny sizes on the CPU."""

from __future__ import annotations

from benchmarks.gpu_check import QUICKSTART_SETS, rows, run_check, table
from reid.spec import load_spec


def test_cpu_smoke_runs_every_section_and_prints_one_table(tmp_path):
    r = run_check(smoke=True, cache_dir=str(tmp_path / "cache"), log=lambda message: None)
    assert r["errors"] == {}
    assert {"train", "input_img_s", "embed_img_s", "eval", "conv", "flops_per_image"} <= set(r)
    assert r["train"]["reid"] > 0 and r["train"]["plain"] > 0 and r["train"]["plain_amp"] > 0
    checks = [row[0] for row in rows(r)]
    assert any("plain fp32 DataLoader" in c for c in checks) and any("conv peak" in c for c in checks)
    assert table(r).startswith("| check | measured | target | met |")


def test_the_quickstart_overrides_still_validate():
    spec = load_spec("specs/quickstart.toml", QUICKSTART_SETS)
    assert spec.runtime.device == "cuda" and spec.schedule.epochs == 2
