"""One process per run directory: a second `reid run` on a directory in use stops with one line naming the
holder, and the lock goes with its process (kill -9 included), so the run then proceeds."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from reid.engine.rundir import LOCK_FILE, RunDir
from reid.errors import ReidError
from polling import wait_until
from tiny_specs import FP32_DETERMINISTIC, TINY_DATA

SPEC = 'name = "locked"\n' + TINY_DATA + FP32_DETERMINISTIC + """
[schedule]
epochs = 1
warmup_epochs = 0
max_iters_per_epoch = 1
"""

HOLD = """
import sys, time
from reid.engine.rundir import RunDir
with RunDir(sys.argv[1]).lock():
    print("held", flush=True)
    time.sleep(120)
"""


def hold(path) -> subprocess.Popen:
    """A separate process holding ``path``'s lock until it is killed."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_run_directory_in_use_is_refused_and_freed_when_its_holder_is_killed(tmp_path, run_cli):
    spec, out = tmp_path / "s.toml", tmp_path / "run"
    spec.write_text(SPEC, encoding="utf-8")
    holder = hold(out)
    try:
        code, text = run_cli("run", str(spec), "--out", str(out), "--plain")
        assert code != 0 and "Traceback" not in text
        assert f"this run directory is in use by pid {holder.pid} on " in text and "Fix: wait for that run" in text
        assert [p.name for p in out.iterdir()] == [LOCK_FILE]  # nothing was written beside the lock
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    code, text = run_cli("run", str(spec), "--out", str(out), "--plain")  # the lock died with its process
    assert code == 0, text
    assert RunDir(out).is_finished()


def test_two_holders_in_one_process_conflict_too_and_the_second_names_the_first(tmp_path):
    run = RunDir(tmp_path / "run")
    with run.lock():
        with pytest.raises(ReidError, match=r"in use by pid \d+ on "):
            with run.lock():
                pass
    with run.lock():  # released on leaving the block
        pass


def test_resuming_a_missing_directory_creates_nothing(tmp_path, run_cli):
    code, text = run_cli("run", "--resume", str(tmp_path / "nowhere"), "--plain")
    assert code != 0 and "Traceback" not in text and "not a run directory" in text
    assert not (tmp_path / "nowhere").exists()


def test_a_sweep_relaunched_while_its_run_trains_does_not_write_into_it(tmp_path):
    """The same spec and seed started twice at once: exactly one of the two writes the run."""
    spec, out = tmp_path / "s.toml", tmp_path / "run"
    spec.write_text(SPEC.replace("max_iters_per_epoch = 1", "max_iters_per_epoch = 40"), encoding="utf-8")
    first = subprocess.Popen([sys.executable, "-m", "reid", "run", str(spec), "--out", str(out), "--plain"],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wait_until((out / "spec.toml").is_file, "the run directory", 60, first)
    second = subprocess.run([sys.executable, "-m", "reid", "run", "--resume", str(out), "--plain"],
                            capture_output=True, text=True)
    first_out, _ = first.communicate(timeout=300)
    said = second.stdout + second.stderr
    assert first.returncode == 0, first_out
    assert second.returncode != 0 and "Traceback" not in said
    # refused while the first trained (or, had the first already ended, as a finished run)
    assert f"in use by pid {first.pid} on " in said or "already finished" in said, said
    assert RunDir(out).is_finished()
