"""The evaluator across ranks through its collective protocol: ranks simulated by threads sharing a fake collective
(real gloo ranks: tests/test_distributed.py). Shards are gathered onto the main rank, scored there once, and every
rank gets the single-process result — errors included."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

import reid.evaluation.evaluator as evaluator_module
from reid.engine.distributed import DistContext, RankCollective
from reid.engine.evaluation import own_rows
from reid.errors import ReidError
from reid.evaluation import SINGLE_PROCESS, Evaluator
from reid.spec import EvalSpec

WORLD = 2


class ThreadRanks:
    """``WORLD`` ranks as threads: each takes its own :meth:`rank` view, a :class:`reid.evaluation.Collective`."""

    def __init__(self, world: int):
        self.world, self.barrier, self.slots = world, threading.Barrier(world, timeout=30), [None] * world

    def rank(self, rank: int) -> _ThreadRank:
        """The collective of rank ``rank``."""
        return _ThreadRank(self, rank)


class _ThreadRank:
    def __init__(self, ranks: ThreadRanks, rank: int):
        self.ranks, self.rank, self.is_main = ranks, rank, rank == 0

    def _exchange(self, value) -> list:
        self.ranks.slots[self.rank] = value
        self.ranks.barrier.wait()
        everyone = list(self.ranks.slots)
        self.ranks.barrier.wait()
        return everyone

    def gather_rows(self, local: torch.Tensor) -> list[torch.Tensor] | None:
        everyone = self._exchange(local)
        return [t.to(local.device) for t in everyone] if self.is_main else None

    def broadcast(self, obj):
        return self._exchange(obj)[0]


def _data(n: int = 23, dim: int = 8) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    return torch.randn(n, dim, generator=g), torch.arange(n) % 5, torch.arange(n) % 3


def _per_rank(run, world: int = WORLD) -> list:
    """``run(rank, collective)`` on ``world`` threads; what each returned (or raised), in rank order."""
    ranks = ThreadRanks(world)

    def one(rank: int):
        try:
            return run(rank, ranks.rank(rank))
        except ReidError as e:
            return e

    with ThreadPoolExecutor(world) as pool:
        return list(pool.map(one, range(world)))


@pytest.fixture
def scorers(monkeypatch) -> list[str]:
    """The names of the threads that computed distances for an evaluation."""
    seen: list[str] = []
    real = evaluator_module.evaluate_features

    def counted(*args, **kwargs):
        seen.append(threading.current_thread().name)
        return real(*args, **kwargs)

    monkeypatch.setattr(evaluator_module, "evaluate_features", counted)
    return seen


@pytest.mark.parametrize("same_set", [False, True])
def test_ranks_score_once_on_the_main_rank_and_all_get_the_single_process_result(scorers, same_set):
    spec = EvalSpec(ranks=[1, 5], max_rank=10, protocol="all" if same_set else "market")
    qf, q_pids, q_cams = _data()
    gf, g_pids, g_cams = _data(17)
    single = Evaluator(spec, same_set=same_set, margin=0.3)
    single.process(qf, q_pids, q_cams, split="query")
    if not same_set:
        single.process(gf, g_pids, g_cams, split="gallery")
    expected = single.evaluate()
    scorers.clear()

    def run(rank, collective):
        ctx = DistContext(rank=rank, world_size=WORLD)
        ev = Evaluator(spec, same_set=same_set, margin=0.3, collective=collective)
        q, g = own_rows(len(qf), ctx), own_rows(len(gf), ctx)
        for start in range(0, len(q), 5):  # a rank processes its shard batch by batch
            rows = q[start:start + 5]
            ev.process(qf[rows], q_pids[rows], q_cams[rows], split="query")
        if not same_set:
            ev.process(gf[g], g_pids[g], g_cams[g], split="gallery")
        return ev.evaluate(), ev.split_tensors("query"), threading.current_thread().name

    results = _per_rank(run)
    assert [r[0] for r in results] == [expected] * WORLD and expected.val_loss is not None
    assert scorers == [results[0][2]]  # distances computed once, by rank 0
    assert torch.equal(results[0][1][0], qf) and results[1][1] is None  # rank 0 holds the gathered features


def test_a_rank_without_rows_and_a_main_rank_error_reach_every_rank():
    qf, pids, cams = torch.tensor([[0.0], [1.0]]), torch.tensor([4, 4]), torch.tensor([0, 1])

    def run(rank, collective, pids=pids):
        ev = Evaluator(EvalSpec(protocol="all"), same_set=True, collective=collective)
        rows = own_rows(2, DistContext(rank=rank, world_size=3))  # rank 2 has nothing
        ev.process(qf[rows], pids[rows], cams[rows], split="query")
        return ev.evaluate()

    assert all(r.num_valid == 2 and r.rank(1) == 1.0 for r in _per_rank(run, world=3))
    # rank 0 finds no true match at all: every rank raises its error
    errors = _per_rank(lambda rank, collective: run(rank, collective, torch.tensor([4, 5])), world=3)
    assert all(isinstance(e, ReidError) and "no query has a true match" in str(e) for e in errors)
    errors = _per_rank(lambda rank, collective: Evaluator(EvalSpec(), collective=collective).evaluate())
    assert all(isinstance(e, ReidError) and "no query features" in str(e) for e in errors)


def test_one_process_collectives_are_local():
    ev = Evaluator(EvalSpec(protocol="all"), same_set=True, collective=RankCollective(DistContext()))
    ev.process(*_data(), split="query")
    plain = Evaluator(EvalSpec(protocol="all"), same_set=True)
    plain.process(*_data(), split="query")
    assert plain.collective is SINGLE_PROCESS and ev.evaluate() == plain.evaluate()
    assert torch.equal(ev.first_match_ranks(), plain.first_match_ranks())
