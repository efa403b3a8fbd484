"""Checkpoints that survive a torn write: last.pt cut at any byte or with any bit flipped is reported in one
line and the run resumes from last.prev.pt (to the same final metrics); with no intact file it is an error."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fault_log import record
from reid.engine.checkpoint import MANIFEST_FILE, checkpoint_problem, load_resumable, previous_path, save_checkpoint
from reid.engine.experiment import run_experiment
from reid.errors import ReidError
from reid.spec import load_spec_text
from tiny_specs import small_run


def _state(step: int) -> dict:
    torch.manual_seed(step)
    return {"model": {"w": torch.randn(64), "b": torch.randn(8)}, "optimizer": {"state": {}}, "epoch": step,
            "iter_in_epoch": 0, "global_step": step}


@pytest.fixture(scope="module")
def saved(module_tmp_path) -> Path:
    """checkpoints/ with two verified saves: last.pt (step 2) and last.prev.pt (step 1)."""
    folder = module_tmp_path / "run" / "checkpoints"
    save_checkpoint(_state(1), folder / "last.pt")
    save_checkpoint(_state(2), folder / "last.pt")
    return folder


def _damaged_copy(saved: Path, where: Path, damage, manifest: bool = True) -> Path:
    if where.exists():
        shutil.rmtree(where)
    shutil.copytree(saved, where)
    if not manifest:
        (where / MANIFEST_FILE).unlink()
    last = where / "last.pt"
    last.write_bytes(damage(bytearray(last.read_bytes())))
    return last


def _resumed_step(last: Path) -> tuple[int, list[str]]:
    lines: list[str] = []
    ckpt = load_resumable(last, report=lines.append)
    return ckpt["global_step"], lines


def test_two_saves_keep_the_previous_one_and_both_verify(saved):
    assert torch.load(saved / "last.pt", weights_only=True)["global_step"] == 2
    assert torch.load(previous_path(saved / "last.pt"), weights_only=True)["global_step"] == 1
    assert checkpoint_problem(saved / "last.pt") is None and checkpoint_problem(previous_path(saved / "last.pt")) is None
    assert _resumed_step(saved / "last.pt") == (2, [])  # an intact last.pt: used, nothing reported


def test_last_pt_cut_at_any_byte_falls_back_to_the_previous_one(saved, tmp_path):
    size = (saved / "last.pt").stat().st_size
    cases = {"with manifest": 0, "without manifest": 0}

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(cut=st.integers(0, size - 1), manifest=st.booleans())
    def case(cut: int, manifest: bool) -> None:
        last = _damaged_copy(saved, tmp_path / "c", lambda b: b[:cut], manifest)
        step, lines = _resumed_step(last)
        assert step == 1 and len(lines) == 1, lines
        assert "last.pt is" in lines[0] and "resuming from last.prev.pt" in lines[0]
        if manifest:
            assert f"truncated: {cut:,} of {size:,} bytes" in lines[0]
        cases["with manifest" if manifest else "without manifest"] += 1

    case()
    record("checkpoint-truncated", "`last.pt` torn (cut short)", f"cut at a random byte of {size:,} (hypothesis)",
           sum(cases.values()), "one warning line, resumed from `last.prev.pt`")


def test_a_bit_flip_anywhere_in_last_pt_is_caught_by_the_checksum(saved, tmp_path):
    size = (saved / "last.pt").stat().st_size
    cases = 0

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(byte=st.integers(0, size - 1), bit=st.integers(0, 7))
    def case(byte: int, bit: int) -> None:
        nonlocal cases

        def flip(b: bytearray) -> bytearray:
            b[byte] ^= 1 << bit
            return b

        step, lines = _resumed_step(_damaged_copy(saved, tmp_path / "c", flip))
        assert step == 1 and len(lines) == 1 and "checksum mismatch" in lines[0], lines
        cases += 1

    case()
    record("checkpoint-bitflip", "`last.pt` with a flipped bit", "one random bit of the file (hypothesis)", cases,
           "one warning line, resumed from `last.prev.pt`")


def test_no_intact_checkpoint_is_an_error_never_a_silent_restart(saved, tmp_path):
    cases = 0
    for damage_prev in ("truncate", "delete"):
        last = _damaged_copy(saved, tmp_path / damage_prev, lambda b: b[: len(b) // 2])
        prev = previous_path(last)
        if damage_prev == "truncate":
            prev.write_bytes(prev.read_bytes()[:100])
        else:
            prev.unlink()
        with pytest.raises(ReidError, match="no intact checkpoint to resume from"):
            load_resumable(last, report=print)
        cases += 1
    missing = _damaged_copy(saved, tmp_path / "missing", lambda b: b)
    missing.unlink()  # a crash between the two renames of a save: last.pt gone, last.prev.pt complete
    assert _resumed_step(missing)[0] == 1 and "last.pt is missing" in _resumed_step(missing)[1][0]
    assert load_resumable(tmp_path / "never" / "last.pt", report=print) is None  # never saved: a fresh start
    record("checkpoint-none-intact", "`last.pt` and `last.prev.pt` both damaged", "truncated / deleted", cases,
           "clear error (exit 2), no silent restart")


def test_a_write_that_reads_back_differently_leaves_the_previous_file(tmp_path, monkeypatch):
    import reid.engine.checkpoint as checkpoint

    path = tmp_path / "checkpoints" / "last.pt"
    save_checkpoint(_state(1), path)
    before = path.read_bytes()
    monkeypatch.setattr(checkpoint, "_sha256_of_file", lambda p: (0, "torn"))
    with pytest.raises(ReidError, match="did not read back as written"):
        save_checkpoint(_state(2), path)
    assert path.read_bytes() == before and sorted(p.name for p in path.parent.iterdir()) == ["last.pt", MANIFEST_FILE]


SPEC = small_run("torn", seed=1, epochs=2, threads=2)


@pytest.mark.slow
def test_a_run_whose_last_pt_is_torn_resumes_from_the_previous_one_to_the_same_metrics(tmp_path, cli):
    out = tmp_path / "run"
    reference = run_experiment(load_spec_text(SPEC), out, plain=True)
    (out / "summary.json").unlink()  # as if the run had died after writing epoch 2's checkpoint
    last = out / "checkpoints" / "last.pt"
    last.write_bytes(last.read_bytes()[:-1000])
    code, stdout, stderr = cli("run", "--resume", out, "--plain")
    assert code == 0, stdout + stderr
    warnings = [line for line in stdout.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "truncated" in warnings[0] and "last.prev.pt" in warnings[0]
    assert json.loads((out / "summary.json").read_text())["final"] == reference.final.to_json()

    (out / "summary.json").unlink()
    for name in ("last.pt", "last.prev.pt"):
        (out / "checkpoints" / name).write_bytes(b"\0" * 10)
    code, stdout, stderr = cli("run", "--resume", out, "--plain")
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert code == 2 and len(errors) == 1 and "no intact checkpoint" in errors[0] and "Traceback" not in stderr
    record("checkpoint-run-resume", "a run's `last.pt` torn after its last epoch", "1,000 bytes cut, `reid run --resume`",
           1, "final metrics identical to the uninterrupted run")
