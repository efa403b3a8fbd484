"""`reid runs`: every run below a folder with its status — finished, running (a real process holding the run
lock), failed (with the error line the run recorded), interrupted (resumable after kill -9) — read from small
files only (never a checkpoint), filtered on spec keys and sorted."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import pytest

from reid.data.describe import DatasetInfo, SplitCounts
from reid.engine.run_index import RunStatus, SortKey, SpecFilter, list_runs
from reid.engine.run_status import SessionState, SessionStatus, read_status
from reid.engine.rundir import RunDir
from reid.engine.summary import DeviceInfo, EvalSettings, EvaluatedEpoch, RunSummary, Versions
from reid.evaluation import EvalResult
from reid.spec import Spec
from polling import wait_until
from tiny_specs import FP32_DETERMINISTIC, TINY_DATA

SCHEDULE = """
[schedule]
epochs = {epochs}
warmup_epochs = 0
max_iters_per_epoch = 2
"""


def write_spec(path, name: str, epochs: int = 1, extra: str = "") -> None:
    path.write_text(f'name = "{name}"\n' + TINY_DATA.replace("[data]\n", "[data]\n" + extra)
                    + FP32_DETERMINISTIC + SCHEDULE.format(epochs=epochs), encoding="utf-8")


def by_run(records) -> dict:
    return {r.run.rsplit("/", 1)[-1]: r for r in records}


@pytest.mark.slow  # about 30 s on 2 busy cores: three real runs, one in a second process
def test_runs_shows_finished_failed_killed_and_running_runs(tmp_path, cli):
    root = tmp_path / "runs"
    finished, failed, live = tmp_path / "finished.toml", tmp_path / "failed.toml", tmp_path / "live.toml"
    write_spec(finished, "fin")
    write_spec(failed, "bad", extra=f'dataset = "folder"\nroot = "{tmp_path / "no-such-data"}"\n')
    write_spec(live, "live", epochs=10_000)
    assert cli("run", finished, "--out", root / "finished", "--plain")[0] == 0
    code, _, err = cli("run", failed, "--out", root / "failed", "--plain")
    assert code == 2 and "dataset folder does not exist" in err
    proc = subprocess.Popen([sys.executable, "-m", "reid", "run", str(live), "--out", str(root / "live"), "--plain",
                             "--set", "runtime.threads=1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(RunDir(root / "live").last_checkpoint.is_file, "the live run's first checkpoint", 120, proc, every=0.2)
        code, out, _ = cli("runs", root, "--format", "json")
        rows = {r["run"].rsplit("/", 1)[-1]: r for r in json.loads(out)}
        assert code == 0 and rows["live"]["status"] == "running" and f"pid {proc.pid} on " in rows["live"]["detail"]
        assert rows["live"]["epochs_planned"] == 10_000 and rows["live"]["device"]
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    records = by_run(list_runs([root]))
    assert records["finished"].status is RunStatus.finished and records["finished"].epochs_done == 1
    assert records["finished"].best is not None and records["finished"].last.epoch == 1
    assert records["failed"].status is RunStatus.failed
    assert "dataset folder does not exist" in records["failed"].detail and "no-such-data" in records["failed"].detail
    assert records["live"].status is RunStatus.interrupted and records["live"].resumable
    assert records["live"].epochs_done >= 1 and records["live"].wall_seconds > 0
    code, out, _ = cli("runs", root, "--plain")
    lines = {line.split()[0].rsplit("/", 1)[-1]: line for line in out.splitlines() if line.startswith(str(root))}
    assert code == 0 and "finished" in lines["finished"] and " failed " in lines["failed"]
    assert " resumable " in lines["live"] and f"{root / 'live'}: interrupted; reid run --resume" in out
    assert f"{root / 'failed'}: failed: data.root=" in out
    assert "1 finished, 1 failed, 1 interrupted" in out
    code, out, _ = cli("runs", root, "--filter", "name=fin", "--format", "json")
    assert code == 0 and [r["spec"] for r in json.loads(out)] == ["fin"]


def test_a_refused_run_directory_records_no_failure(tmp_path, cli):
    spec, out = tmp_path / "s.toml", tmp_path / "r"
    write_spec(spec, "refused")
    RunDir(out).create(spec.read_text())
    code, _, err = cli("run", spec, "--out", out, "--plain")  # unfinished: refused without --resume
    assert code == 2 and "unfinished" in err
    assert read_status(RunDir(out)) is None


def fake_summary(name: str, rank1: float) -> RunSummary:
    split = SplitCounts(identities=4, images=8, cameras=2, min_images_per_identity=2, max_images_per_identity=2)
    metrics = EvaluatedEpoch(3, EvalResult(cmc=(rank1,) * 4 + (1.0,), mAP=rank1 / 2, mINP=0.1, num_valid=8,
                                           num_skipped=0, protocol="all", distance="euclidean", normalize=True,
                                           ranks=(1, 5)))
    return RunSummary(name=name, run_dir="", epochs=3, final=metrics, best=metrics, wall_seconds=12.0,
                      last_session_seconds=12.0, mean_images_per_second=100.0,
                      device=DeviceInfo(device="cpu", device_name="Some CPU", precision="fp32"),
                      dataset=DatasetInfo(name="synthetic", root="", train=split, query=split, gallery=split,
                                          validation_identities=4, num_classes=4, triplets=10, same_set=True,
                                          protocol="all"),
                      evaluation=EvalSettings(protocol="all", distance="euclidean", normalize=True, flip=False,
                                              max_rank=10),
                      parameters=1, environment=Versions())


def test_a_thousand_runs_are_read_from_small_files_never_a_checkpoint(tmp_path):
    root = tmp_path / "runs"
    epoch_line = json.dumps({"kind": "epoch", "epoch": 2, "step": 4, "train_loss": 1.0, "train_seconds": 1.5,
                             "rank1": 0.5, "rank5": 0.9, "mAP": 0.25, "mINP": 0.1}, sort_keys=True)
    iter_line = json.dumps({"kind": "iter", "step": 1, "loss": 1.0}, sort_keys=True)
    failure = json.dumps(SessionStatus(SessionState.failed, error="error").to_json())
    for i in range(1000):  # plain writes (RunDir's are fsynced: too slow to make a thousand in a test)
        run = RunDir(root / f"group-{i // 10}" / f"seed-{i % 10}")
        run.last_checkpoint.parent.mkdir(parents=True)
        spec = Spec(name=f"g{i // 10}", seed=i % 10, optim={"lr": 1e-3 if i % 2 else 3.5e-4})
        (run.path / "spec.toml").write_text(spec.to_toml())
        run.metrics_path.write_text((iter_line + "\n") * 20 + epoch_line + "\n")
        run.last_checkpoint.write_bytes(b"not a checkpoint")
        run.best_checkpoint.write_bytes(b"not a checkpoint")
        if i % 4 == 0:
            run.summary_path.write_text(json.dumps(fake_summary(f"g{i // 10}", rank1=i / 1000).to_json()))
        elif i % 4 == 1:
            run.status_path.write_text(failure)
    opened: list[str] = []
    recording = True

    def audit(event: str, args: tuple) -> None:
        if recording and event == "open" and isinstance(args[0], (str, bytes, type(tmp_path))):
            opened.append(str(args[0]))

    sys.addaudithook(audit)  # sees every open(), os.open() and Path.open() of this process
    try:
        records = list_runs([root], [SpecFilter.parse("optim.lr=1e-3")], SortKey.best_rank1)
    finally:
        recording = False
    assert not [p for p in opened if p.endswith(".pt")]
    assert any(p.endswith("summary.json") for p in opened)
    assert len(records) == 500 and all(r.spec_values.optim.lr == 1e-3 for r in records)
    counts = {s: sum(r.status is s for r in records) for s in RunStatus}
    assert counts == {RunStatus.finished: 0, RunStatus.failed: 250, RunStatus.interrupted: 250, RunStatus.running: 0}
    everything = list_runs([root], sort=SortKey.best_rank1)
    assert everything[0].best.result.rank(1) == 0.996 and everything[0].status is RunStatus.finished
    assert sum(r.status is RunStatus.finished for r in everything) == 250
    failed = next(r for r in everything if r.status is RunStatus.failed)
    assert failed.detail == "error" and failed.resumable and failed.epochs_done == 2
