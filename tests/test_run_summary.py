"""summary.json: a new summary round-trips its final / best whole results; every older one (flat records
without the CMC) still loads with the same numbers, its CMC taken from metrics.jsonl where the run has it."""

from __future__ import annotations

import copy
import json

from reid.engine.rundir import RunDir
from reid.engine.summary import EvalSettings, RunSummary
from reid.spec import Spec

FINAL = {"epoch": 8, "mAP": 0.215, "mINP": 0.099, "num_skipped": 0, "num_valid": 490, "rank1": 0.265,
         "rank10": 0.729, "rank5": 0.549, "val_loss": 19.38}
BEST = {**FINAL, "epoch": 6, "rank1": 0.27, "mAP": 0.2}
CMC = [0.265, 0.37, 0.44, 0.51, 0.549, 0.62, 0.66, 0.68, 0.71, 0.729, 0.75, 0.77]

# as summaries were written before final / best carried their whole result (cf. runs/real/*/seed-0/summary.json)
OLD_SUMMARY = {
    "best": BEST, "final": FINAL, "epochs": 8, "name": "q8-synthetic", "run_dir": "/somewhere/q8/seed-0",
    "dataset": {"cache": "memory", "converted_images": 0, "name": "synthetic", "num_classes": 230, "protocol": "all",
                "root": "/root/.cache/reid/synthetic", "same_set": True, "skipped": {}, "triplets": 47403000,
                "validation_identities": 49,
                **{split: {"cameras": 2, "identities": 49, "images": 490, "max_images_per_identity": 10,
                           "min_images_per_identity": 10} for split in ("train", "query", "gallery")}},
    "device": {"channels_last": True, "device": "cpu", "device_name": "Intel(R) Xeon(R) Processor",
               "precision": "bf16", "threads": 2},
    "environment": {"git_commit": "7e59d92", "python": "3.11.7", "reid": "0.2.0", "torch": "2.14.1"},
    "evaluation": {"distance": "euclidean", "flip": False, "max_rank": 12, "normalize": False, "protocol": "all"},
    "last_session_seconds": 183.27, "mean_images_per_second": 108.82, "parameters": 11294502,
    "selection": "best Rank-1 on the evaluated split (held-out validation identities; no separate test split)",
    "wall_seconds": 173.56,
}


def _same_numbers(epoch, record: dict) -> None:
    r = epoch.result
    assert epoch.epoch == record["epoch"]
    assert (r.rank(1), r.rank(5), r.rank(10)) == (record["rank1"], record["rank5"], record["rank10"])
    assert (r.mAP, r.mINP, r.val_loss, r.num_valid, r.num_skipped) == (
        record["mAP"], record["mINP"], record["val_loss"], record["num_valid"], record["num_skipped"])
    assert r.ranks == (1, 5, 10) and (r.protocol, r.distance, r.normalize, r.flip) == ("all", "euclidean", False, False)


def test_an_old_summary_loads_with_the_same_numbers():
    summary = RunSummary.from_json(copy.deepcopy(OLD_SUMMARY))
    _same_numbers(summary.final, FINAL)
    _same_numbers(summary.best, BEST)
    # no metrics.jsonl to read: the CMC is exact at the logged ranks, a lower bound between them, ends at the last
    assert summary.final.result.cmc == (0.265,) * 4 + (0.549,) * 5 + (0.729,)
    assert summary.evaluation == EvalSettings("all", "euclidean", False, False, 12, rerank=False)


def test_an_old_summary_in_its_run_takes_the_cmc_and_rerank_from_the_run(tmp_path):
    run = RunDir(tmp_path / "run")
    run.create(Spec(name="q8-synthetic", eval={"rerank": True}).to_toml())
    run.append_metrics({"kind": "epoch", "epoch": 6, **BEST, "cmc": [0.27, *CMC[1:]], "train_loss": 4.0})
    run.append_metrics({"kind": "epoch", "epoch": 8, **{**FINAL, "mAP": 0.3}, "cmc": [0.1] * 12})  # a line resumed over
    run.append_metrics({"kind": "epoch", "epoch": 8, **FINAL, "cmc": CMC, "train_loss": 3.9})
    run.summary_path.write_text(json.dumps(OLD_SUMMARY))
    summary = run.read_summary()
    _same_numbers(summary.final, FINAL)
    _same_numbers(summary.best, BEST)
    assert summary.final.result.cmc == tuple(CMC) and summary.best.result.cmc == (0.27, *CMC[1:])
    assert summary.final.result.rerank and summary.evaluation.rerank
    assert RunSummary.from_json(json.loads(json.dumps(summary.to_json()))) == summary  # rewritten: the new form


def test_a_mismatched_metrics_record_is_not_taken(tmp_path):
    run = RunDir(tmp_path / "run")
    run.create(Spec(name="q8-synthetic").to_toml())
    run.append_metrics({"kind": "epoch", **{**FINAL, "rank1": 0.5}, "cmc": [0.5] * 12})  # another run's log
    run.summary_path.write_text(json.dumps({**OLD_SUMMARY, "best": {}}))
    summary = run.read_summary()
    _same_numbers(summary.final, FINAL)
    assert len(summary.final.result.cmc) == 10 and summary.best is None and not summary.evaluation.rerank


def test_a_new_summary_round_trips_the_whole_result(tmp_path):
    run = RunDir(tmp_path / "run")
    run.create(Spec(name="q8-synthetic").to_toml())
    run.append_metrics({"kind": "epoch", **FINAL, "cmc": CMC})
    run.summary_path.write_text(json.dumps(OLD_SUMMARY))
    summary = run.read_summary()
    run.write_summary(summary)
    written = json.loads(run.summary_path.read_text())
    assert written["final"]["cmc"] == CMC and written["final"]["protocol"] == "all"
    assert written["final"]["rank1"] == FINAL["rank1"] and written["evaluation"]["rerank"] is False
    again = run.read_summary()
    assert again == summary and again.final.result.cmc == tuple(CMC)
    assert RunSummary.from_json(written) == summary  # the new form needs no run directory
