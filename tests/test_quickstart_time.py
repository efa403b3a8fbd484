"""The quickstart timing table: one row per kept measurement, classes never measured say so."""

from benchmarks.quickstart_time import CLASSES, END, predicted_seconds, table


def _result(cls: str, capped: str | None) -> dict:
    return {"date": "2026-12-04", "cpu": "AMD EPYC", "cpu_class": cls, "capped": capped, "precision": "fp32",
            "process_seconds": 201.0, "train_seconds": 150.0, "eval_seconds": 12.0, "run_seconds": 162.4,
            "images_per_second": 41.2, "predicted_seconds": 170.0, "rank1": 0.214, "mAP": 0.263,
            "baseline_rank1": 0.0102, "baseline_mAP": 0.027}


def test_table_has_a_row_per_result_and_names_the_classes_not_measured():
    text = table([_result("AVX2", "avx2"), _result("AVX-512-BF16", None)])
    rows = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| CPU class")]
    assert [r.split(" | ")[0] for r in rows] == [f"| {c}" for c in CLASSES]
    assert "AMD EPYC with its ISA capped at AVX2" in rows[0] and "2 min 42 s (150 s + 12 s)" in rows[0]
    assert "21.4 % / 26.3 %" in rows[0] and "1.0 %" in rows[0] and "2 min 50 s" in rows[0]
    assert "not measured yet" in rows[2] and text.rstrip().endswith(END)


def test_eta_line_is_parsed_in_every_unit():
    assert predicted_seconds("ETA · 9 img/s … · whole run ≈ 45 s (training 40 s left)") == 45.0
    assert predicted_seconds("whole run ≈ 1 h 02 min (training …)") == 3720.0
    assert predicted_seconds("no estimate here") is None
