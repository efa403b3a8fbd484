"""Engine building blocks: timm schedules stepped correctly, atomic checkpoints, run directories."""

from __future__ import annotations

import pytest
import torch

from reid.engine.checkpoint import load_checkpoint, save_checkpoint
from reid.engine.optim import LRSchedule, build_optimizer
from reid.engine.rundir import RunDir
from reid.engine.runtime import resolve_runtime
from reid.errors import ReidError
from reid.spec import OptimSpec, RuntimeSpec, ScheduleSpec


def _lrs(spec: ScheduleSpec, iters: int) -> list[float]:
    opt = build_optimizer(torch.nn.Linear(2, 2), OptimSpec(name="sgd", lr=1.0))
    sched, lrs, step = LRSchedule(opt, spec, iters_per_epoch=iters), [], 0
    for epoch in range(spec.epochs):
        for _ in range(iters):
            lrs.append(sched.lr)
            step += 1
            sched.after_iteration(step)
        sched.after_epoch(epoch + 1)
    return lrs


def test_per_iteration_cosine_changes_every_iteration():
    lrs = _lrs(ScheduleSpec(epochs=3, name="cosine", min_lr=0.0), iters=5)
    assert lrs[0] == pytest.approx(1.0) and all(b < a for a, b in zip(lrs, lrs[1:]))


def test_per_epoch_multistep_changes_only_at_milestones():
    lrs = _lrs(ScheduleSpec(epochs=5, name="multistep", milestones=[2, 4], per_iteration=False), iters=3)
    assert lrs == pytest.approx([1.0] * 6 + [0.1] * 6 + [0.01] * 3)


def test_warmup_then_decay():
    lrs = _lrs(ScheduleSpec(epochs=4, name="cosine", warmup_epochs=1, warmup_lr=0.01, min_lr=0.0), iters=4)
    assert lrs[0] == pytest.approx(0.01) and lrs[:4] == sorted(lrs[:4])
    assert lrs[4] == pytest.approx(1.0) and lrs[-1] < 0.1


def test_constant_schedule():
    assert set(_lrs(ScheduleSpec(epochs=2, name="constant"), iters=3)) == {1.0}


def test_checkpoint_round_trip_and_corruption(tmp_path):
    path = tmp_path / "c" / "last.pt"
    save_checkpoint({"w": torch.arange(3), "epoch": 2, "nested": {"a": [1.5]}}, path)
    state = load_checkpoint(path)
    assert state["epoch"] == 2 and torch.equal(state["w"], torch.arange(3))
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.pt", "manifest.json"]  # no temp files left
    path.write_bytes(b"garbage")
    with pytest.raises(ReidError, match="unreadable"):
        load_checkpoint(path)
    with pytest.raises(ReidError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")


def test_run_directory_refuses_to_overwrite(tmp_path):
    run = RunDir(tmp_path / "r")
    run.create("name = 'a'\n")
    run.append_metrics({"kind": "iter", "step": 1})
    with pytest.raises(ReidError, match="unfinished run"):
        RunDir(tmp_path / "r").create("name = 'a'\n")
    run.summary_path.write_text("{}\n")  # any summary.json marks the run finished
    with pytest.raises(ReidError, match="finished run"):
        RunDir(tmp_path / "r").create("name = 'a'\n")
    RunDir(tmp_path / "r").create("name = 'b'\n", force=True)
    assert not run.is_finished() and list(run.read_metrics()) == []


def test_metrics_truncation_and_torn_lines(tmp_path):
    run = RunDir(tmp_path / "r")
    run.create("")
    for step in range(1, 6):
        run.append_metrics({"kind": "iter", "step": step})
    with open(run.metrics_path, "a") as f:
        f.write('{"kind": "it')  # a line torn by kill -9
    assert [r["step"] for r in run.read_metrics()] == [1, 2, 3, 4, 5]
    run.truncate_metrics(3)
    assert [r["step"] for r in run.read_metrics()] == [1, 2, 3]


def test_runtime_resolution_on_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    rt = resolve_runtime(RuntimeSpec(device="auto", precision="fp32"))
    assert rt.device.type == "cpu" and rt.precision == "fp32" and not rt.channels_last
    with pytest.raises(ReidError, match="no CUDA GPU"):
        resolve_runtime(RuntimeSpec(device="cuda"))


def test_runtime_prefers_cuda_when_present(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    saved = torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision
    try:
        rt = resolve_runtime(RuntimeSpec(device="auto"), local_rank=1)
        assert str(rt.device) == "cuda:1" and rt.precision == "bf16" and rt.channels_last
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: False)
        assert resolve_runtime(RuntimeSpec(device="auto")).precision == "fp16"
    finally:
        torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision = saved


def test_resume_refuses_a_different_spec(tmp_path):
    from reid.engine.experiment import resume_spec
    from reid.spec import load_spec_text

    spec = load_spec_text('name = "a"\n')
    run = RunDir(tmp_path / "r")
    run.create(spec.to_toml())
    assert resume_spec(run, None) == spec and resume_spec(run, spec) == spec
    other = load_spec_text('name = "a"\nseed = 4\n[model]\nlast_stride = 2\n')
    with pytest.raises(ReidError, match=r"differs .*\(seed, model\.last_stride\)"):
        resume_spec(run, other)
