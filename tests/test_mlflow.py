"""MLflow tracking (`[runtime] tracking = "mlflow"`): the spec as parameters, metrics per epoch equal to
metrics.jsonl, summary / report page / checkpoint as artifacts, the MLflow run named after the spec — in the
default local store under runs/, and against a real `mlflow server` on 127.0.0.1 that goes down mid-run:
training goes on, one warning, nothing lost locally. Skipped when mlflow is not installed."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from reid.engine.mlflow_hook import MLflowHook, MlflowState
from reid.engine.rundir import RunDir
from tiny_specs import FP32_DETERMINISTIC, TINY_DATA

mlflow = pytest.importorskip("mlflow")

SPEC = 'name = "tracked"\n' + TINY_DATA + FP32_DETERMINISTIC.replace("[runtime]\n", '[runtime]\ntracking = "mlflow"\n') + """
[schedule]
epochs = 3
warmup_epochs = 0
max_iters_per_epoch = 2
"""


def only_run(uri: str):
    client = mlflow.MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("reid").experiment_id])
    return client, run


def epochs_of(out) -> list[dict]:
    return [r for r in RunDir(out).read_metrics() if r["kind"] == "epoch"]


@pytest.mark.slow  # about 40 s: mlflow's import and database set-up, a tiny run, its report page
def test_a_run_logs_params_metrics_and_artifacts_to_the_local_store(tmp_path, cli, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    (tmp_path / "s.toml").write_text(SPEC, encoding="utf-8")
    code, out, err = cli("run", "s.toml", "--plain")
    assert code == 0, err
    assert "warning:" not in out + err
    client, run = only_run(f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}")
    assert run.info.run_name == "tracked" and run.info.status == "FINISHED"
    assert run.data.params["optim.lr"] == "0.00035" and run.data.params["data.identities"] == "16"
    epochs = epochs_of("runs/tracked")
    history = client.get_metric_history(run.info.run_id, "eval/rank1")
    assert [(m.step, m.value) for m in history] == [(r["step"], r["rank1"]) for r in epochs]
    assert len(client.get_metric_history(run.info.run_id, "epoch/train_loss")) == 3
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"summary.json", "spec.toml", "metrics.jsonl", "checkpoints", "report"} <= artifacts
    assert [a.path for a in client.list_artifacts(run.info.run_id, "checkpoints")] == ["checkpoints/best.pt"]
    report = {a.path for a in client.list_artifacts(run.info.run_id, "report")}
    assert "report/README.md" in report and any(p.endswith(".md") and "README" not in p for p in report)
    assert (tmp_path / "runs" / "mlartifacts").is_dir()
    code, out, _ = cli("runs", "--format", "json")  # the store inside runs/ is not taken for runs
    assert code == 0 and '"tracked"' in out and out.count('"run":') == 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(tmp_path, port: int) -> subprocess.Popen:
    """A real `mlflow server` on 127.0.0.1 with its own sqlite store; returns once /health answers."""
    proc = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
                             "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
                             "--artifacts-destination", str(tmp_path / "server-artifacts"), "--workers", "1"],
                            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 180
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.5)
        assert proc.poll() is None, "mlflow server exited"
    raise AssertionError("mlflow server did not start")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.mark.slow  # about 60 s: an mlflow server started, a tiny run, the server killed after its first epoch
def test_the_server_going_down_mid_run_costs_one_warning_and_nothing_local(tmp_path, cli, monkeypatch):
    port = free_port()
    server = start_server(tmp_path, port)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{port}")
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    original = MLflowHook.after_epoch

    def server_dies_before_epoch_two_is_logged(self, trainer):
        if trainer.state.epoch == 2:
            stop(server)
        original(self, trainer)

    monkeypatch.setattr(MLflowHook, "after_epoch", server_dies_before_epoch_two_is_logged)
    spec, out = tmp_path / "s.toml", tmp_path / "runs" / "tracked"
    spec.write_text(SPEC, encoding="utf-8")
    try:
        code, stdout, stderr = cli("run", spec, "--out", out, "--plain")
    finally:
        stop(server)
    assert code == 0, stderr
    warnings = [line for line in (stdout + stderr).splitlines() if "warning" in line.lower()]
    assert len(warnings) == 1 and warnings[0].startswith("warning: MLflow tracking stopped"), warnings
    run = RunDir(out)
    assert run.is_finished() and run.best_checkpoint.is_file() and (out / "tb").is_dir()
    epochs = epochs_of(out)
    assert [r["epoch"] for r in epochs] == [1, 2, 3]
    state = MlflowState.read(run)
    assert state.failed and state.tracking_uri == f"http://127.0.0.1:{port}"
    client, logged = only_run(f"sqlite:///{tmp_path / 'server.db'}")  # what the server stored before it died
    assert logged.info.run_id == state.run_id and logged.info.run_name == "tracked"
    assert logged.data.params["schedule.epochs"] == "3"
    history = client.get_metric_history(logged.info.run_id, "eval/rank1")
    assert [(m.step, m.value) for m in history] == [(epochs[0]["step"], epochs[0]["rank1"])]
