"""Readers during writes: `reid eval`, `reid report` and `reid.load` on a run that is training at that moment
(a real `reid run` process) read a complete state or say the run is in progress — never a half-written file or
a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter

import pytest

import reid
from fault_log import record
from reid.errors import ReidError
from polling import wait_until
from tiny_specs import small_run

SPEC = small_run("busy", seed=5, epochs=6, threads=1)


@pytest.mark.slow
def test_readers_of_a_run_in_training_see_a_complete_state_or_in_progress(tmp_path, cli):
    spec = tmp_path / "busy.toml"
    spec.write_text(SPEC)
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "reid", "run", str(spec), "--out", str(out), "--plain"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"))
    counts, messages = Counter(), Counter()
    deadline = time.time() + 600
    # reading a directory that is not there yet proves nothing
    wait_until((out / "metrics.jsonl").is_file, "the first metrics", deadline - time.time(), proc)
    try:
        while proc.poll() is None:
            assert time.time() < deadline, "training did not finish"
            for name, args in (("eval", ["eval", out, "--device", "cpu", "--format", "json"]),
                               ("report", ["report", out, "-o", tmp_path / "report"])):
                code, stdout, stderr = cli(*args)
                assert "Traceback" not in stdout + stderr, stdout + stderr
                assert code in (0, 2), (name, code, stdout, stderr)
                if code == 2:
                    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
                    assert len(errors) == 1, stderr
                    messages[errors[0].split(": ", 2)[-1][:80]] += 1
                counts[f"{name} exit {code}"] += 1
            try:
                model = reid.load(out)
                assert model.spec.name == "busy"
                counts["reid.load ok"] += 1
            except ReidError as e:
                messages[e.what[:60]] += 1
                counts["reid.load ReidError"] += 1
    finally:
        if proc.poll() is None:
            proc.kill()
    output = proc.communicate()[0]
    assert proc.returncode == 0, output
    assert sum(counts.values()) >= 6, counts
    assert not any("finish it with" in m for m in messages), messages  # a run in training is not "to be resumed"
    record("readers-during-training", "`reid eval`, `reid report`, `reid.load` on a run that is training",
           "read in a loop while a real `reid run` process trains 6 epochs", sum(counts.values()),
           "a complete state or a clear error; no traceback (" + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())) + ")")
    print(counts, messages)
