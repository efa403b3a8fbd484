"""Faults of a multi-process job (torchrun, gloo on the CPU): a rank killed with SIGKILL is restarted by
``torchrun --max-restarts`` and every rank resumes from the last complete checkpoint to the metrics of an
uninterrupted run; a rank that hangs in a collective fails the job within ``runtime.collective_timeout_s``
with one error line naming it. Unit checks of the pieces (restart decision, timeout, error text) run fast."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from fault_log import record
from polling import wait_until
from reid.engine.distributed import DistContext, collective_error, collective_timeout
from reid.engine.elastic import JOB_FILE, Restart, after_restart, job_key, record_job, session_runtime
from reid.engine.rundir import RunDir
from reid.errors import ReidError
from reid.spec import load_spec_text
from reid.sweep.grid import expand
from reid.sweep.plan import build_plan
from tiny_specs import small_run
from torchrun_jobs import rank_pid, torchrun

SPEC = small_run("elastic", seed=4, epochs=4, threads=1)  # 2 processes: 3 steps per epoch, 12 in all
TIMING = {"train_seconds", "eval_seconds", "images_per_second"}  # the only fields a restart may change


@pytest.fixture(scope="module")
def spec_path(module_tmp_path) -> Path:
    path = module_tmp_path / "elastic.toml"
    path.write_text(SPEC)
    return path


def _records(out: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING} for r in RunDir(out).read_metrics()]


def _reached(out: Path, step: int) -> bool:
    return any(r["kind"] == "iter" and r["step"] >= step for r in RunDir(out).read_metrics())


def _kill_rank(launcher: subprocess.Popen, rank: int, sig: signal.Signals) -> int:
    pid = rank_pid(launcher.pid, rank)
    assert pid is not None, f"rank {rank} is not running"
    os.kill(pid, sig)
    return pid


@pytest.mark.slow
def test_killed_ranks_are_restarted_and_resume_to_the_same_metrics(tmp_path, spec_path):
    """SIGKILL to rank 1 mid-epoch 2, then (in the restarted job) to rank 0 — the writer — mid-epoch 3:
    torchrun restarts the job twice, each time every rank continues from the last complete checkpoint, and
    every logged value (losses, learning rates, evaluations) equals the uninterrupted run's."""
    reference = torchrun([str(spec_path), "--out", str(tmp_path / "reference")])
    output = reference.communicate(timeout=600)[0]
    assert reference.returncode == 0, output

    out = tmp_path / "run"
    proc = torchrun([str(spec_path), "--out", str(out)], restarts=2)
    try:
        kills = []
        for rank, step in ((1, 4), (0, 9)):  # the first checkpoint is written at step 3, the second at step 6
            wait_until(lambda: _reached(out, step), f"step {step}", 300, proc)
            kills.append(_kill_rank(proc, rank, signal.SIGKILL))
        output = proc.communicate(timeout=600)[0]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, output
    assert all(f"torchrun restart {n} of this job: continuing" in output for n in (1, 2)), output
    assert json.loads((out / "summary.json").read_text())["final"] == json.loads(
        (tmp_path / "reference/summary.json").read_text())["final"]
    assert _records(out) == _records(tmp_path / "reference")  # one record per step, none twice, same values
    record("rank-killed", "a rank of a `torchrun` job killed (2 gloo processes, `--max-restarts 2`)",
           "SIGKILL to rank 1 at step 4, then to rank 0 (the writer) at step 9 of 12", len(kills),
           "torchrun restarted the job; every rank resumed from the last complete checkpoint: every logged value "
           "identical to the uninterrupted run")


@pytest.mark.slow
def test_a_hung_rank_fails_the_job_within_the_timeout_naming_it(tmp_path, spec_path):
    """SIGSTOP to rank 1 mid-training: rank 0 waits in the next collective, gives up within
    ``runtime.collective_timeout_s`` and exits 2 with one error line naming rank 1 (no traceback)."""
    timeout_s = 10
    out, logs = tmp_path / "run", tmp_path / "logs"
    proc = torchrun([str(spec_path), "--out", str(out), "--set", "schedule.epochs=40",
                      "--set", f"runtime.collective_timeout_s={timeout_s}"], logs=logs)
    stopped = None
    try:
        wait_until(lambda: _reached(out, 2), "step 2", 300, proc)
        rank0 = rank_pid(proc.pid, 0)
        stopped = _kill_rank(proc, 1, signal.SIGSTOP)
        since = time.monotonic()
        wait_until(lambda: not Path(f"/proc/{rank0}").exists() or _zombie(rank0), "rank 0 to give up", 120)
        elapsed = time.monotonic() - since
    finally:
        if stopped is not None:
            os.kill(stopped, signal.SIGKILL)  # else torchrun waits 30 s for the stopped process to end
        output = proc.communicate(timeout=120)[0]
    assert proc.returncode != 0
    # the collective may start up to a step after the stop, and the process takes a moment to end
    assert elapsed < timeout_s + 15, elapsed
    (stderr,) = logs.glob("*/attempt_0/0/stderr.log")
    lines = [line for line in stderr.read_text().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: runtime.collective_timeout_s: rank 1 of 2 did not join "
                                                   f"a collective operation within {timeout_s} s"), (lines, output)
    status = json.loads((out / "status.json").read_text())
    assert status["state"] == "failed" and "rank 1 of 2" in status["error"]
    record("rank-hung", "a rank of a `torchrun` job hangs in a collective (2 gloo processes)",
           f"SIGSTOP to rank 1 mid-training, `runtime.collective_timeout_s = {timeout_s}`", 1,
           f"rank 0 failed {elapsed:.0f} s after the stop with one `error:` line naming rank 1 (exit 2, no traceback)")


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except OSError:
        return True


# --- the pieces, in one process ---

@pytest.fixture
def torchrun_env(monkeypatch):
    """Pretend to be a process torchrun started: ``set(run_id, restart)``."""
    def set_(run_id: str = "job-a", restart: int = 0) -> None:
        monkeypatch.setenv("TORCHELASTIC_RUN_ID", run_id)
        monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", str(restart))
    monkeypatch.delenv("TORCHELASTIC_RUN_ID", raising=False)
    monkeypatch.delenv("TORCHELASTIC_RESTART_COUNT", raising=False)
    return set_


class _Console:
    def __init__(self):
        self.lines: list[str] = []

    def print(self, line: str, **kwargs) -> None:
        self.lines.append(line)


def test_a_restart_continues_only_the_run_its_own_job_started(tmp_path, torchrun_env):
    run = RunDir(tmp_path / "run")
    run.create(SPEC)
    console = _Console()
    torchrun_env("job-a", 0)
    record_job(run)
    assert (run.path / JOB_FILE).read_text().strip() == job_key() == "rdzv job-a"
    assert after_restart(run, DistContext(), console) is Restart.none  # the first attempt: as the command says
    torchrun_env("job-a", 1)
    assert after_restart(run, DistContext(), console) is Restart.resume
    assert console.lines == [f"torchrun restart 1 of this job: continuing {run.path} from its last complete checkpoint"]
    torchrun_env("job-b", 1)  # another job's restart never takes the run
    assert after_restart(run, DistContext(), console) is Restart.none
    (run.path / "summary.json").write_text("{}")
    torchrun_env("job-a", 2)
    assert after_restart(run, DistContext(), console) is Restart.finished
    assert after_restart(RunDir(tmp_path / "missing"), DistContext(), console) is Restart.none


def test_a_session_outside_torchrun_clears_the_job_note(tmp_path, torchrun_env, monkeypatch):
    run = RunDir(tmp_path / "run")
    run.create(SPEC)
    torchrun_env("job-a", 0)
    record_job(run)
    monkeypatch.delenv("TORCHELASTIC_RUN_ID")
    record_job(run)  # e.g. `reid run --resume` in one process: a later restart of job-a must not take the run back
    assert job_key() is None and not (run.path / JOB_FILE).exists()


def test_static_rendezvous_is_keyed_by_host_and_launcher(torchrun_env):
    torchrun_env("none", 0)  # --master-port without --rdzv-id
    assert job_key().startswith("static ") and job_key().endswith(f"torchrun pid {os.getppid()}")


def test_resume_joins_with_the_saved_specs_runtime(tmp_path):
    run = RunDir(tmp_path / "run")
    assert session_runtime(None, run).collective_timeout_s is None  # nothing saved yet: the defaults
    run.create(load_spec_text(SPEC, overrides=["runtime.collective_timeout_s=45"]).to_toml())
    assert session_runtime(None, run).collective_timeout_s == 45
    assert session_runtime(load_spec_text(SPEC), run).collective_timeout_s is None


def test_collective_timeout_from_spec_env_or_default(monkeypatch):
    monkeypatch.delenv("REID_DIST_TIMEOUT", raising=False)
    assert collective_timeout(None) == 120
    monkeypatch.setenv("REID_DIST_TIMEOUT", "30")
    assert collective_timeout(None) == 30 and collective_timeout(7) == 7
    for bad in ("soon", "0", "nan"):
        monkeypatch.setenv("REID_DIST_TIMEOUT", bad)
        with pytest.raises(ReidError, match="REID_DIST_TIMEOUT") as e:
            collective_timeout(None)
        assert "collective_timeout_s" in e.value.fix
    with pytest.raises(ReidError, match="collective_timeout_s"):
        load_spec_text(SPEC, overrides=["runtime.collective_timeout_s=1"])


def test_collective_errors_name_the_missing_ranks():
    ctx = DistContext(rank=2, world_size=4, timeout_s=60)
    closed = collective_error(RuntimeError("[gloo/transport/tcp/pair.cc:534] Connection closed by peer"), ctx, [0, 3])
    assert closed.where == "torchrun" and closed.what.startswith("ranks 0, 3 of 4 left during a collective operation")
    timed_out = collective_error(RuntimeError("gloo: Timed out waiting 50000ms for recv"), ctx, [1])
    assert "rank 1 of 4 did not join a collective operation within 60 s" in timed_out.what
    assert "reported by rank 2" in timed_out.what and "raise runtime.collective_timeout_s" in timed_out.fix
    unknown = collective_error(RuntimeError("gloo: Timed out waiting\nmore"), ctx, None)  # the store was gone too
    assert unknown.what == "a collective operation failed on rank 2 of 4 (gloo: Timed out waiting)"
    assert "\n" not in str(closed) + str(timed_out) + str(unknown)


def test_slurm_jobs_restart_multi_gpu_runs_undertorchrun(tmp_path):
    pytest.importorskip("submitit")
    from reid.sweep.slurm import SlurmResources, job_for

    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC)
    plan = build_plan(spec, tmp_path / "sweep", expand([]), [0])
    job = job_for(plan, plan.runs[0], SlurmResources(gpus=4, cpus=16, max_restarts=3))
    for command in (job.start, job.resume):
        assert "--max-restarts=3" in command and "--standalone" in command
        assert any(a.startswith("--signals-to-handle=") and "SIGUSR2" in a for a in command)
    assert "torch.distributed.run" not in job_for(plan, plan.runs[0], SlurmResources(gpus=1)).start
