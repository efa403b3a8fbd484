"""Self-describing checkpoints and failed writes (full disk, read-only folder) that lose nothing."""

from __future__ import annotations

import errno
from collections import namedtuple

import pytest
import torch

import reid.engine.checkpoint as checkpoint
import reid.fileio as fileio
from reid.engine.checkpoint import model_checkpoint, model_description, read_model_checkpoint, save_checkpoint, unwrap
from reid.errors import ReidError
from reid.model import build_model
from reid.spec import load_spec_text

SPEC = 'name = "ckpt"\n[data]\nheight = 32\nwidth = 16\n[head]\ntype = "bnneck"\n[augment]\nmean = [0.5, 0.4, 0.3]\n'


def _model_and_spec():
    spec = load_spec_text(SPEC)
    model = build_model(spec.model, spec.head, num_classes=7, input_size=(3, 32, 16))
    return model, spec


def test_a_checkpoint_rebuilds_its_model_without_any_dataset(tmp_path):
    model, spec = _model_and_spec()
    path = tmp_path / "run" / "checkpoints" / "best.pt"
    save_checkpoint(model_checkpoint(model_description(spec, model), model, {"epoch": 3, "rank1": 0.5}), path)
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == "reid-checkpoint" and raw["num_classes"] == 7 and raw["embedding_dim"] == 512
    back = read_model_checkpoint(path)  # no spec.toml beside it: the checkpoint carries the spec
    assert back.spec == spec and back.epoch == 3 and back.preprocess.mean == (0.5, 0.4, 0.3)
    assert (back.preprocess.height, back.preprocess.width, back.preprocess.channels) == (32, 16, "RGB")
    rebuilt, x = back.build_model(), torch.randn(2, 3, 32, 16)
    assert torch.equal(rebuilt.embed(x), model.eval().embed(x))


def test_wrappers_are_unwrapped_before_saving():
    model, _ = _model_and_spec()

    class Compiled(torch.nn.Module):  # what torch.compile returns: the model under `_orig_mod`
        def __init__(self, inner):
            super().__init__()
            self._orig_mod = inner

    assert unwrap(Compiled(model)) is model
    assert not any(k.startswith("_orig_mod.") for k in unwrap(Compiled(model)).state_dict())


def test_a_full_disk_is_one_clear_error_and_the_previous_checkpoint_survives(tmp_path, monkeypatch):
    path = tmp_path / "run" / "checkpoints" / "last.pt"
    save_checkpoint({"w": torch.zeros(1000)}, path)
    before = path.read_bytes()
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(checkpoint.shutil, "disk_usage", lambda p: usage(10**9, 10**9 - 100, 100))
    with pytest.raises(ReidError) as err:
        save_checkpoint({"w": torch.ones(1000)}, path)
    message = str(err.value)
    assert "needs" in message and "0.0 MB are free" in message and "previous last.pt is intact" in message
    assert f"reid run --resume {tmp_path / 'run'}" in message
    assert path.read_bytes() == before and sorted(p.name for p in path.parent.iterdir()) == ["last.pt", "manifest.json"]


def test_a_read_only_folder_is_one_clear_error(tmp_path, monkeypatch):
    path = tmp_path / "run" / "checkpoints" / "best.pt"
    save_checkpoint({"w": torch.zeros(3)}, path)

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(fileio.tempfile, "mkstemp", read_only)
    with pytest.raises(ReidError, match="Read-only file system.*previous best.pt is intact"):
        save_checkpoint({"w": torch.ones(3)}, path)
    assert torch.equal(torch.load(path, weights_only=True)["w"], torch.zeros(3))


def test_training_state_is_restored_from_cpu_tensors(tmp_path):
    """Resume loads on the CPU: RNG states must be CPU byte tensors whatever device trains."""
    from types import SimpleNamespace

    from reid.engine.checkpoint import restore_training, training_checkpoint
    from reid.engine.optim import LRSchedule
    from reid.engine.runtime import resolve_runtime
    from reid.engine.trainer import TrainState
    from reid.spec import RuntimeSpec

    model, spec = _model_and_spec()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    schedule = LRSchedule(optimizer, spec.schedule, iters_per_epoch=2)
    runtime = resolve_runtime(RuntimeSpec(device="cpu", precision="fp32"))
    trainer = SimpleNamespace(model=model, optimizer=optimizer, schedule=schedule, runtime=runtime,
                              state=TrainState(2, 1, 5))
    torch.manual_seed(123)
    state = training_checkpoint(model_description(spec, model), trainer, {"epoch": 2})
    expected = torch.rand(3)
    save_checkpoint(state, tmp_path / "last.pt")
    torch.manual_seed(0)
    position, best = restore_training(checkpoint.load_checkpoint(tmp_path / "last.pt"), model, optimizer, schedule, runtime)
    assert position == (2, 1, 5) and best == {"epoch": 2}
    assert torch.equal(torch.rand(3), expected)


def test_each_rank_restores_its_own_cpu_and_cuda_rng_states(tmp_path, monkeypatch):
    """rank 0 writes every rank's RNG states (gathered by RngStateHook); rank r restores entry r: its CPU
    generator, and its CUDA generator on its own GPU."""
    from types import SimpleNamespace

    from reid.engine.checkpoint import restore_training, training_checkpoint
    from reid.engine.optim import LRSchedule
    from reid.engine.trainer import TrainState

    model, spec = _model_and_spec()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    schedule = LRSchedule(optimizer, spec.schedule, iters_per_epoch=2)
    cpu = SimpleNamespace(device=torch.device("cpu"), scaler=None)
    trainer = SimpleNamespace(model=model, optimizer=optimizer, schedule=schedule, runtime=cpu, state=TrainState(1, 0, 2))
    cpu_states = [torch.Generator().manual_seed(100 + r).get_state() for r in range(3)]
    per_rank = [{"cpu": cpu_states[r], "cuda": torch.full((16,), r, dtype=torch.uint8)} for r in range(3)]
    save_checkpoint(training_checkpoint(model_description(spec, model), trainer, {}, rank_rng=per_rank), tmp_path / "last.pt")
    restored = []
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda state, device: restored.append((state, device)))
    ckpt = checkpoint.load_checkpoint(tmp_path / "last.pt")  # on the CPU, as resume loads it
    gpu1 = SimpleNamespace(device=torch.device("cuda:1"), scaler=None)
    restore_training(ckpt, model, optimizer, schedule, gpu1, rank=1)
    (state, device), = restored
    assert torch.equal(state, per_rank[1]["cuda"]) and state.device.type == "cpu" and device == torch.device("cuda:1")
    assert torch.equal(torch.get_rng_state(), cpu_states[1])
    restore_training(ckpt, model, optimizer, schedule, cpu, rank=2)
    assert torch.equal(torch.get_rng_state(), cpu_states[2])  # rank 2 continues its own stream, not rank 0's