"""The prepared CUDA-graph accuracy check (benchmarks/graphs_accuracy.py) cannot rot: its CPU smoke runs the same code."""

from __future__ import annotations

import statistics

from hypothesis import given, strategies as st

from benchmarks.graphs_accuracy import BEGIN, CALL, END, level, main, run_check
from device_calls import rendered_twice


def test_cpu_smoke_trains_both_groups_and_saves_after_each(tmp_path):
    snapshots = []
    r = run_check(["specs/q8.toml"], smoke=True, work=tmp_path, log=lambda message: None,
                  saved=lambda so_far: snapshots.append(sorted(so_far["specs"]["specs/q8.toml"]["groups"])))
    assert r["errors"] == {}
    assert snapshots[:2] == [["eager"], ["eager", "reduce-overhead"]]  # a cut-off call keeps the first group
    entry = r["specs"]["specs/q8.toml"]
    for g in entry["groups"].values():
        assert g["rc"] == 0 and g["seeds"] == [0, 1] and g["img_s"] > 0 and len(g["rank1"]["values"]) == 2
    # the smoke run trains the compiled side eagerly, in fp32 on one process: the same numbers, hence level
    assert entry["groups"]["eager"]["mAP"] == entry["groups"]["reduce-overhead"]["mAP"] and entry["level"] is True
    assert sorted(p.name for p in tmp_path.iterdir()) == ["q8-eager", "q8-reduce-overhead"]
    assert any("(smoke: run eager)" in row[0] for row in CALL.rows(r))


def test_a_group_that_fails_is_an_error_row_and_no_verdict(tmp_path):
    spec = tmp_path / "broken.toml"
    spec.write_text(f'name = "broken"\n[data]\ndataset = "folder"\nroot = "{tmp_path / "missing"}"\n')
    r = run_check([str(spec)], smoke=True, work=tmp_path / "work", log=lambda message: None)
    assert set(r["errors"]) == {"broken eager", "broken reduce-overhead"}
    assert r["specs"][str(spec)]["level"] is None
    assert r["specs"][str(spec)]["groups"]["eager"]["rc"] not in (0, None)
    checks = {row[0]: row for row in CALL.rows(r)}
    assert checks["CUDA graphs (reduce-overhead) as the default on CUDA"][1:] == ("not measured on every spec", "level", "")
    assert checks["broken eager: error"][3] == "NO"


values = st.lists(st.floats(0, 1, allow_nan=False), min_size=2, max_size=5)


@given(values, values, values, values)
def test_level_means_every_metric_within_the_sum_of_the_sample_stds(r1a, r1b, ma, mb):
    def within(a, b):
        return abs(statistics.fmean(a) - statistics.fmean(b)) <= statistics.stdev(a) + statistics.stdev(b)

    eager = {"rank1": {"values": r1a}, "mAP": {"values": ma}}
    graphs = {"rank1": {"values": r1b}, "mAP": {"values": mb}}
    assert level(eager, graphs) == (within(r1a, r1b) and within(ma, mb))


def test_a_past_call_is_rendered_between_its_markers(tmp_path, monkeypatch):
    def group(rank1, mAP, img_s):
        return {"rc": 0, "wall_s": 60.0, "seeds": [0, 1, 2], "img_s": img_s,
                "rank1": {"values": rank1, "mean": statistics.fmean(rank1)},
                "mAP": {"values": mAP, "mean": statistics.fmean(mAP)}}

    numbers = {"device": "NVIDIA Test", "torch": "2.x", "date": "2026-01-02", "seeds": 3, "smoke": False, "errors": {},
               "specs": {"specs/q8.toml": {"level": False, "groups": {
                   "eager": group([0.60, 0.62, 0.64], [0.40, 0.41, 0.42], 20000.0),
                   "reduce-overhead": group([0.50, 0.51, 0.52], [0.40, 0.41, 0.42], 30000.0)}}}}
    text = rendered_twice(main, numbers, tmp_path, monkeypatch)
    assert text.startswith("# Benchmarks\n\nbefore\n") and text.count(BEGIN) == 1 and END in text
    assert "| `specs/q8.toml`, eager (3 seeds) | Rank-1 62.0 ± 2.0 %, mAP 41.0 ± 1.0 %; 20000 img/s, 60 s |  |  |" in text
    assert "| `specs/q8.toml`: reduce-overhead − eager | rank1 -11.0 pt, mAP +0.0 pt; ×1.50 img/s | Δ within std + std | NO |" in text
    assert "| CUDA graphs (reduce-overhead) as the default on CUDA | not level: eager stays the default | level | NO |" in text
