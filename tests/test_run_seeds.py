"""`reid run SPEC --seeds`: one run directory per seed, mean ± sample std from their summaries, re-runs skip."""

from __future__ import annotations

import json
import statistics

import pytest

from reid.cli import main
from reid.engine.rundir import RunDir
from reid.spec import load_spec_text
from tiny_specs import FP32_DETERMINISTIC, TINY_DATA

SPEC = 'name = "tiny-seeds"\n' + TINY_DATA + FP32_DETERMINISTIC + """
[schedule]
epochs = 1
max_iters_per_epoch = 2
[eval]
batch_size = 16
"""


def test_seeds_write_one_run_each_and_report_mean_and_sample_std(tmp_path, capsys):
    spec, out = tmp_path / "s.toml", tmp_path / "group"
    spec.write_text(SPEC, encoding="utf-8")
    main(["run", str(spec), "--seeds", "2", "--out", str(out), "--plain", "--format", "json"])
    printed = json.loads(capsys.readouterr().out)
    runs = [RunDir(out / f"seed-{s}") for s in (0, 1)]
    assert [load_spec_text(r.spec_text()).seed for r in runs] == [0, 1]
    finals = [json.loads(r.summary_path.read_text())["final"] for r in runs]
    assert finals[0] != finals[1]  # different seeds, different models
    for key in ("rank1", "mAP", "mINP"):  # by hand from the summaries
        values = [f[key] for f in finals]
        assert printed["metrics"][key]["values"] == values
        assert printed["metrics"][key]["mean"] == pytest.approx((values[0] + values[1]) / 2)
        assert printed["metrics"][key]["std"] == pytest.approx(abs(values[0] - values[1]) / 2 ** 0.5)
        assert printed["metrics"][key]["std"] == pytest.approx(statistics.stdev(values))

    before = [r.metrics_path.read_bytes() for r in runs]
    runs[1].summary_path.unlink()  # as if seed 1 had been interrupted at its end
    main(["run", str(spec), "--seeds", "0,1", "--out", str(out), "--plain"])
    text = " ".join(capsys.readouterr().out.split())  # undo the console's line wrapping
    assert f"seed 0: {runs[0].path} is finished, skipped" in text and f"seed 1: resuming {runs[1].path}" in text
    assert runs[0].metrics_path.read_bytes() == before[0] and runs[1].is_finished()
    assert "mAP" in text and "±" in text



def test_seeds_cannot_be_combined_with_resume(tmp_path):
    with pytest.raises(SystemExit) as e:
        main(["run", "--resume", str(tmp_path), "--seeds", "2"])
    assert e.value.code == 2
