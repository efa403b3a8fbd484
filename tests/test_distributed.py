"""Multi-process runs with torchrun (gloo on CPU): sharded evaluation, training parity, failure and resume;
collectives on the backend's device (NCCL simulated with fake CUDA tensors); cross-rank triplet mining;
rank 0's BatchNorm buffers; the per-rank sampler split."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from PIL import Image

from torch._subclasses.fake_tensor import FakeTensorMode

from reid.data import ImageSet
from reid.data.formats import Sample
from reid.engine.distributed import (DistContext, RankCollective, broadcast_buffers, broadcast_flag, collective_device,
                                     gather_to_main, mining_gather)
from reid.engine.build import per_rank_sampler
from reid.errors import ReidError
from reid.losses import build_loss
from reid.engine.evaluation import Features, evaluate_with_features, extract_features, own_rows, score
from reid.evaluation import Evaluator
from reid.engine.rundir import RunDir
from reid.engine.runtime import Runtime
from reid.spec import AugmentSpec, EvalSpec, LossSpec, SamplerSpec
from polling import wait_until
from tiny_specs import FP32_DETERMINISTIC, TINY_DATA
from torchrun_jobs import free_port, job_environment, rank_pid, torchrun

TINY = """
name = "tiny-ddp"
seed = 5
""" + TINY_DATA + FP32_DETERMINISTIC + """[augment]
flip = 0.0
pad = 0
erase = 0.0
[head]
dropout = 0.0
[sampler]
type = "random"
batch_size = 16
[optim]
lr = 3e-4
[schedule]
epochs = 3
warmup_epochs = 0
"""

# Per-rank BatchNorm statistics (8 images per rank instead of 16; SyncBatchNorm has no CPU
# implementation) make a 2-process run differ slightly from the single-process one.
TOLERANCE = 0.15


class _Embed(torch.nn.Module):
    """A fixed, batch-independent embedding (pooled pixels through a seeded projection)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.proj = torch.nn.Linear(3 * 8 * 8, 16)

    def embed(self, x):
        return self.proj(torch.nn.functional.adaptive_avg_pool2d(x, 8).flatten(1))


def _write_images(root: Path, n: int = 23) -> None:
    g = torch.Generator().manual_seed(1)
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        pixels = torch.randint(0, 256, (16, 16, 3), dtype=torch.uint8, generator=g).numpy()
        Image.fromarray(pixels).save(root / f"{i:03d}.png")


def _imageset(root: Path) -> ImageSet:
    paths = sorted(root.glob("*.png"))
    return ImageSet([Sample(str(p), pid=i % 5, camid=i % 2) for i, p in enumerate(paths)], 16, 16, cache="memory")


def _worker(rank: int, world: int, port: int, root: str, out: str) -> None:
    """Evaluate a model (leave-one-out, with the validation loss) and fixed features on 2 gloo ranks; save what each
    rank got and how often it scored."""
    import reid.evaluation.evaluator as evaluator_module

    scored = []
    real = evaluator_module.evaluate_features
    evaluator_module.evaluate_features = lambda *a, **k: scored.append(1) or real(*a, **k)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    ctx = DistContext(rank=rank, world_size=world)
    images = _imageset(Path(root))
    evaluation = evaluate_with_features(_Embed(), SimpleNamespace(query=images, gallery=images, same_set=True),
                                        _RUNTIME, _SPEC, AugmentSpec(), margin=_MARGIN, ctx=ctx)
    fixed = _fixed_features()
    evaluator = Evaluator(_SPEC, same_set=True, margin=_MARGIN, collective=RankCollective(ctx))
    rows = own_rows(len(fixed), ctx)
    parts = gather_to_main(fixed[rows], ctx)
    gathered = None if parts is None else torch.cat(parts)
    evaluator.process(fixed[rows], images.pids[rows], images.camids[rows], split="query")
    torch.save({"features": None if evaluation.query is None else evaluation.query.features, "fixed": gathered,
                "result": evaluation.result.to_json(), "fixed_result": evaluator.evaluate().to_json(),
                "scored": len(scored)}, f"{out}.{rank}")
    dist.destroy_process_group()


def _fixed_features() -> torch.Tensor:
    return torch.randn(23, 16, generator=torch.Generator().manual_seed(2))


_RUNTIME = Runtime(device=torch.device("cpu"), dtype=None, channels_last=False)
_SPEC, _MARGIN = EvalSpec(batch_size=4, max_rank=10, protocol="all"), 0.3


def test_shards_cover_every_index_once_in_order():
    for n in range(0, 12):
        for world in range(1, 5):
            parts = [own_rows(n, DistContext(rank=r, world_size=world)) for r in range(world)]
            assert max(len(p) for p in parts) - min(len(p) for p in parts) <= 1
            assert torch.cat(parts).tolist() == list(range(n))


def test_distributed_evaluation_equals_single_process(tmp_path):
    """Each rank embeds its shard; rank 0 alone scores (once per evaluation) and every rank gets its result."""
    _write_images(tmp_path / "images")
    out = tmp_path / "gathered.pt"
    mp.start_processes(_worker, args=(2, free_port(), str(tmp_path / "images"), str(out)), nprocs=2,
                       start_method="spawn")
    ranks = [torch.load(f"{out}.{rank}", weights_only=True) for rank in range(2)]
    single = extract_features(_Embed().eval(), _imageset(tmp_path / "images"), _RUNTIME, _SPEC, AugmentSpec())
    # fixed features survive sharding + gathering bit for bit, so every metric is identical
    assert torch.equal(ranks[0]["fixed"], _fixed_features())
    fixed = Features(_fixed_features(), single.pids, single.camids)
    expected = score(fixed, fixed, _SPEC, True, margin=_MARGIN).to_json()
    assert [r["fixed_result"] for r in ranks] == [expected, expected]
    assert [r["scored"] for r in ranks] == [2, 0]  # the model's evaluation and the fixed features', on rank 0 only
    # extracted features agree up to float rounding (shards batch the images differently); only rank 0 holds them
    assert torch.allclose(ranks[0]["features"], single.features, atol=1e-5) and ranks[1]["features"] is None
    assert ranks[0]["result"] == ranks[1]["result"]
    alone = score(single, single, _SPEC, True, margin=_MARGIN).to_json()
    assert ranks[0]["result"]["cmc"] == alone["cmc"] and ranks[0]["result"]["mAP"] == pytest.approx(alone["mAP"])
    assert ranks[0]["result"]["val_loss"] == pytest.approx(alone["val_loss"], abs=1e-5)


class _Collected(Exception):
    """Raised by the fake all_reduce once it has seen its tensor (fake tensors cannot be read back)."""


@pytest.fixture
def fake_nccl(monkeypatch) -> list[tuple[str, torch.device]]:
    """Pretend the process group is NCCL and record the device of every tensor a collective receives."""
    seen: list[tuple[str, torch.device]] = []
    monkeypatch.setattr(dist, "get_backend", lambda group=None: "nccl")

    def all_reduce(tensor, op=None, group=None, async_op=False):
        seen.append(("all_reduce", tensor.device))
        raise _Collected

    def all_gather(outputs, tensor, group=None, async_op=False):
        seen.extend(("all_gather", t.device) for t in [tensor, *outputs])
        for out in outputs:
            out.copy_(tensor)

    def broadcast(tensor, src=0, group=None, async_op=False):
        seen.append(("broadcast", tensor.device))

    monkeypatch.setattr(dist, "all_reduce", all_reduce)
    monkeypatch.setattr(dist, "all_gather", all_gather)
    monkeypatch.setattr(dist, "broadcast", broadcast)
    return seen


def test_collectives_hand_nccl_tensors_on_the_ranks_gpu(fake_nccl):
    """NCCL rejects CPU tensors: every helper must move what it sends to ``cuda:<local rank>`` (fake CUDA
    tensors stand in for real ones on a machine without a GPU)."""
    ctx = DistContext(rank=1, world_size=2, local_rank=1)
    gpu = torch.device("cuda", 1)
    assert collective_device(ctx) == gpu and collective_device(DistContext()) == torch.device("cpu")
    with FakeTensorMode():
        with pytest.raises(_Collected):
            broadcast_flag(True, ctx)
        features, pids = mining_gather(ctx)(torch.randn(4, 8, requires_grad=True), torch.tensor([0, 0, 1, 1]))
        bn = torch.nn.BatchNorm1d(8)
        broadcast_buffers(bn, ctx)
    assert fake_nccl and {device for _, device in fake_nccl} == {gpu}, fake_nccl
    assert {name for name, _ in fake_nccl} == {"all_reduce", "all_gather", "broadcast"}
    assert features.shape == (8, 8) and pids.shape == (8,)  # results come back
    assert bn.running_mean.device.type == "cpu"


def test_torchrun_with_one_process_takes_the_distributed_path(monkeypatch):
    """``torchrun --nproc_per_node 1`` joins a process group (NCCL on a GPU), so one GPU exercises that path."""
    from reid.engine.distributed import cleanup, init_distributed

    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "check")
    for key, value in dict(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1",
                           MASTER_PORT=str(free_port())).items():
        monkeypatch.setenv(key, value)
    ctx = init_distributed("cpu", timeout_s=30)
    try:
        assert ctx.enabled and ctx.world_size == 1 and dist.is_initialized() and dist.get_backend() == "gloo"
        assert broadcast_flag(True, ctx) is True
    finally:
        cleanup(ctx)
    monkeypatch.delenv("TORCHELASTIC_RUN_ID")
    assert not init_distributed("cpu").enabled  # WORLD_SIZE=1 without torchrun: one plain process


def test_gloo_collectives_stay_on_the_cpu(monkeypatch):
    monkeypatch.setattr(dist, "get_backend", lambda group=None: "gloo")
    assert collective_device(DistContext(rank=0, world_size=2, local_rank=0)) == torch.device("cpu")


def test_pk_split_keeps_two_identities_per_rank():
    spec = SamplerSpec(type="pk", p=8, k=4)
    assert per_rank_sampler(spec, DistContext(rank=0, world_size=4)).p == 2
    with pytest.raises(ReidError, match="leaves 1 identity per process") as e:
        per_rank_sampler(spec, DistContext(rank=0, world_size=8))
    assert e.value.where == "sampler.p" and "p = 16" in e.value.fix
    assert per_rank_sampler(SamplerSpec(type="random", batch_size=8), DistContext(rank=0, world_size=8)).batch_size == 1


class _Head(torch.nn.Module):
    """Features and logits, as the re-ID model returns them."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(3)
        self.embed, self.classify = torch.nn.Linear(4, 3), torch.nn.Linear(3, 4)

    def forward(self, x, pids=None):
        features = self.embed(x)
        return {"features": features, "logits": self.classify(features)}


def _global_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """8 images of 4 identities; rank r of 2 holds rows 4r..4r+3 (identities 2r and 2r+1)."""
    return torch.randn(8, 4, generator=torch.Generator().manual_seed(7)), torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])


_LOSS = LossSpec(id_weight=1.0, triplet_weight=1.0, mining="hard", margin=0.5)


def _collectives_worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    ctx = DistContext(rank=rank, world_size=world)
    result = {"flag": broadcast_flag(rank == 1, ctx), "none": broadcast_flag(False, ctx)}
    bn = torch.nn.BatchNorm1d(3)
    bn.running_mean.fill_(float(rank + 1))
    bn.num_batches_tracked.fill_(10 * (rank + 1))
    broadcast_buffers(bn, ctx)
    result["running_mean"], result["tracked"] = bn.running_mean.clone(), int(bn.num_batches_tracked)

    model = torch.nn.parallel.DistributedDataParallel(_Head())
    images, pids = _global_batch()
    mine = slice(4 * rank, 4 * rank + 4)
    loss, parts = build_loss(_LOSS, gather=mining_gather(ctx))(model(images[mine]), pids[mine])
    loss.backward()
    result["triplet"] = float(parts["triplet"])
    result["grads"] = {name: p.grad.clone() for name, p in model.module.named_parameters()}
    torch.save(result, f"{out}.{rank}")
    dist.destroy_process_group()


def test_gloo_collectives_mining_over_ranks_and_rank0_buffers(tmp_path):
    """Two processes, each with half of a PK batch: the triplet term mines over both halves and, after
    DDP's averaging, the gradients equal one process training on the whole batch; rank 0's BatchNorm
    buffers reach rank 1; a flag raised on one rank is seen on both."""
    out = str(tmp_path / "result")
    mp.start_processes(_collectives_worker, args=(2, free_port(), out), nprocs=2, start_method="spawn")
    ranks = [torch.load(f"{out}.{r}", weights_only=True) for r in range(2)]
    model = _Head()
    images, pids = _global_batch()
    loss, parts = build_loss(_LOSS)(model(images), pids)
    loss.backward()
    for result in ranks:
        assert result["flag"] is True and result["none"] is False
        assert torch.equal(result["running_mean"], torch.ones(3)) and result["tracked"] == 10
        assert result["triplet"] == pytest.approx(float(parts["triplet"]), rel=1e-6)
        for name, p in model.named_parameters():
            torch.testing.assert_close(result["grads"][name], p.grad, rtol=1e-5, atol=1e-6)
    # mining inside each rank's half alone would differ: the hardest negatives sit in the other half
    local = [build_loss(LossSpec(id_weight=0.0, triplet_weight=1.0, margin=0.5))(model(images[s]), pids[s])[1]["triplet"]
             for s in (slice(0, 4), slice(4, 8))]
    assert float(sum(local) / 2) != pytest.approx(float(parts["triplet"]), rel=1e-3)


@pytest.fixture(scope="module")
def spec_path(module_tmp_path) -> Path:
    path = module_tmp_path / "tiny.toml"
    path.write_text(TINY)
    return path


@pytest.mark.slow
def test_two_processes_match_one_within_tolerance(tmp_path, spec_path):
    single = subprocess.run([sys.executable, "-m", "reid", "run", str(spec_path), "--out", str(tmp_path / "one"), "--plain"],
                            capture_output=True, text=True, env=job_environment(), timeout=600)
    assert single.returncode == 0, single.stdout + single.stderr
    proc = torchrun([str(spec_path), "--out", str(tmp_path / "two")])
    output = proc.communicate(timeout=600)[0]
    assert proc.returncode == 0, output
    one = json.loads((tmp_path / "one/summary.json").read_text())["final"]
    two = json.loads((tmp_path / "two/summary.json").read_text())["final"]
    assert abs(one["rank1"] - two["rank1"]) <= TOLERANCE and abs(one["mAP"] - two["mAP"]) <= TOLERANCE, (one, two)
    assert one["num_valid"] == two["num_valid"]  # evaluation saw the whole validation set on both
    # rank 0 alone wrote the metrics: one record per step, no duplicates from rank 1
    steps = [r["step"] for r in RunDir(tmp_path / "two").read_metrics() if r["kind"] == "iter"]
    assert steps == list(range(1, len(steps) + 1))


@pytest.mark.slow
def test_triplet_only_training_with_a_bnneck_head_runs_under_ddp(tmp_path):
    """Without an ID term the classifier and the neck's scale get no gradient; DDP used to fail on them
    ("Expected to have finished reduction in the prior iteration"). Now no logits are computed and those
    parameters are frozen, so two gloo processes train; the classifier keeps its initial weights."""
    spec = tmp_path / "triplet-only.toml"
    spec.write_text(TINY.replace('name = "tiny-ddp"', 'name = "tiny-ddp-triplet"')
                    .replace("[head]\n", '[head]\ntype = "bnneck"\n')
                    .replace('[sampler]\ntype = "random"\nbatch_size = 16', '[sampler]\ntype = "pk"\np = 4\nk = 4')
                    .replace("epochs = 3", "epochs = 1\nmax_iters_per_epoch = 3")
                    + "[loss]\nid_weight = 0.0\ntriplet_weight = 1.0\n")
    proc = torchrun([str(spec), "--out", str(tmp_path / "run")])
    output = proc.communicate(timeout=600)[0]
    assert proc.returncode == 0, output
    weights = torch.load(tmp_path / "run/checkpoints/last.pt", weights_only=True)["model"]
    assert weights["head.neck.weight"].eq(1).all()  # untouched: only the ID loss trains it
    assert json.loads((tmp_path / "run/summary.json").read_text())["final"]["rank1"] >= 0


@pytest.mark.slow
def test_killed_rank_stops_the_run_and_resume_completes(tmp_path, spec_path):
    out = tmp_path / "run"
    proc = torchrun([str(spec_path), "--out", str(out)])
    wait_until((out / "checkpoints/last.pt").is_file, "the first checkpoint", 300, proc)
    victim = rank_pid(proc.pid, 1)
    assert victim is not None
    os.kill(victim, signal.SIGKILL)
    started = time.time()
    output = proc.communicate(timeout=180)[0]
    assert proc.returncode != 0 and time.time() - started < 180
    assert "FAILED" in output or "exitcode" in output  # torchrun names the failed rank
    assert not RunDir(out).is_finished()

    resumed = torchrun(["--resume", str(out)])
    output = resumed.communicate(timeout=600)[0]
    assert resumed.returncode == 0, output
    assert RunDir(out).is_finished() and "resuming" in output
