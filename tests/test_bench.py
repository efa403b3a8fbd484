"""Smoke tests of the benchmark machinery (tiny sizes; no timing assertions)."""

from __future__ import annotations

import pytest
import torch

from reid.cli import main
from reid.cli.bench import _suite
from reid.errors import ReidError

suite = _suite()  # puts the checkout's benchmarks/ package on the path
from benchmarks.timing import interleave  # noqa: E402


@pytest.fixture
def one_thread():
    """One intra-op thread: a smoke run must not fight other test processes for both cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_quick_suite_measures_everything_and_renders(tmp_path, one_thread):
    log: list[str] = []
    r = suite.run_suite(("gemm", "train", "input", "embed", "eval"), quick=True, repeats=1,
                        cache_dir=tmp_path / "cache", log=log.append)
    assert r["train"]["reid_img_s"] > 0 and r["train"]["plain_img_s"] > 0 and r["train"]["profile"]["ops"]
    assert r["train"]["optimizer"] == "Adam (fused=True)"
    if r["train"]["precision"] == "bf16":  # CPUs with native bf16: the whole fast path is in effect
        assert r["train"]["fast_path"] == {"input_channels_last": True, "weight_channels_last": True, "conv_dtype": "bfloat16"}
    assert r["input"]["reid_img_s"] > 0 and r["embed"]["cosine_min"] > 0.99
    assert r["eval"]["loop_identical"] and r["gemm"]["fp32_peak_tflops"] > 0 and r["flops_per_image"] > 0
    assert any(m.startswith("train done") for m in log)
    names = [row.name for row in suite.rows(r)]
    assert any(n.startswith("training img/s") for n in names) and any("utilisation" in n for n in names)
    assert all(row.met in (True, False) for row in suite.rows(r) if row.target and "first chunk" not in row.target)

    report = tmp_path / "BENCHMARKS.md"
    suite.write_report(report, suite.markdown(r, "reid bench --quick"))
    first = report.read_text()
    assert first.startswith("# Benchmarks") and suite.BEGIN in first and "| training img/s" in first
    report.write_text("intro\n\n" + first + "\nanalysis written by hand\n")
    suite.write_report(report, suite.markdown(r, "reid bench --quick --only x"))
    text = report.read_text()
    assert text.startswith("intro") and text.endswith("analysis written by hand\n")
    assert "--only x" in text and text.count(suite.BEGIN) == 1 and text.count(suite.END) == 1


def test_sections_are_validated_and_kept_in_suite_order():
    assert suite.parse_sections(None) == suite.DEFAULT_SECTIONS
    assert suite.parse_sections("eval, train") == ("train", "eval")
    with pytest.raises(ReidError, match="unknown benchmark section"):
        suite.parse_sections("train,fast")


def test_interleave_takes_turns_and_counts_items():
    calls: list[str] = []
    t = interleave({"a": lambda: calls.append("a") or 4, "b": lambda: calls.append("b") or 8}, repeats=3, warmup=1)
    assert calls == ["a", "b"] * 4
    assert t["a"].items == [4.0] * 3 and len(t["b"].rates) == 3 and t["b"].median_rate > 0


def test_cli_reports_a_bad_section_in_one_line(capsys):
    with pytest.raises(SystemExit) as e:
        main(["bench", "--only", "warp"])
    assert e.value.code == 2 and "unknown benchmark section" in capsys.readouterr().err
