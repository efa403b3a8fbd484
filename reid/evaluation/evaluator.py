"""The one re-ID evaluator (fast-reid's ``DatasetEvaluator`` idea): ``reset`` / ``process`` / ``evaluate``.

Training-time evaluation, ``reid eval``, :meth:`reid.api.LoadedModel.evaluate` and reports all feed
features through it, so protocol resolution, normalisation and the junk rule exist once. Feature
extraction (and flip averaging, which needs the model) is :func:`reid.engine.evaluation.extract_features`.
With ``eval.rerank`` the distances are k-reciprocal re-ranked (:func:`reid.rerank.rerank_features`) before ranking.

Under torchrun every rank processes its own shard; :meth:`Evaluator.evaluate` gathers the shards onto the main rank
(through a :class:`~reid.evaluation.collective.Collective`), scores once there and gives every rank the result.
Features stay on the device they come on: the distances are computed where the query features are.

Example:
    >>> import torch
    >>> from reid.spec import EvalSpec
    >>> ev = Evaluator(EvalSpec(ranks=[1]))
    >>> ev.process(torch.tensor([[0.0], [5.0]]), [1, 2], [0, 0], split="query")
    >>> ev.process(torch.tensor([[0.1], [5.2], [9.0]]), [1, 2, 3], [1, 1, 1], split="gallery")
    >>> result = ev.evaluate()
    >>> result.protocol, result.rank(1), result.mAP
    ('market', 1.0, 1.0)
"""

from __future__ import annotations

from typing import Callable, Literal, TypeVar

import torch

from reid.errors import ReidError
from reid.evaluation.collective import SINGLE_PROCESS, Collective
from reid.evaluation.result import EvalResult
from reid.losses import triplet_loss
from reid.metrics import auto_protocol, evaluate, evaluate_features
from reid.rerank import rerank_features
from reid.spec import EvalSpec

Split = Literal["query", "gallery"]
SplitTensors = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # features, pids, camids
T = TypeVar("T")


def resolve_protocol(requested: str, same_set: bool, camids: torch.Tensor) -> str:
    """The ranking protocol: ``requested`` unless it is ``auto``, which picks ``all`` for a leave-one-out
    set or single-camera data (the market rule would remove nothing useful or everything) and ``market`` otherwise.

    Example:
        >>> resolve_protocol("auto", False, torch.tensor([0, 1])), resolve_protocol("auto", True, torch.tensor([0, 1]))
        ('market', 'all')
    """
    if requested != "auto":
        return requested
    return auto_protocol(same_set, int(torch.as_tensor(camids).unique().numel()))


def validation_loss(features: torch.Tensor, pids: torch.Tensor, margin: float) -> float:
    """Batch-hard triplet loss (margin ``margin``, euclidean) over all validation embeddings ``features``.

    ID loss is undefined there, because validation identities are not among the classifier's classes.

    Example:
        >>> validation_loss(torch.tensor([[0.0], [0.1], [1.0], [1.2]]), torch.tensor([0, 0, 1, 1]), margin=0.3)
        0.0
    """
    return float(triplet_loss(features, pids.to(features.device), margin=margin, mining="hard", distance="euclidean"))


def _join(parts: list[torch.Tensor]) -> torch.Tensor:
    """``parts`` concatenated, skipping empty ones (a rank without rows sends 0×0 features); ``parts[0]`` when all are
    empty, the one part itself (no copy) when a single one holds rows."""
    kept = [p for p in parts if p.numel()]
    return parts[0] if not kept else kept[0] if len(kept) == 1 else torch.cat(kept)


class _Store:
    """Features, identities and cameras of one split, accumulated batch by batch."""

    def __init__(self) -> None:
        self.features: list[torch.Tensor] = []
        self.pids: list[torch.Tensor] = []
        self.camids: list[torch.Tensor] = []

    def add(self, features, pids, camids) -> None:
        features = torch.as_tensor(features)
        pids, camids = torch.as_tensor(pids).reshape(-1).long().cpu(), torch.as_tensor(camids).reshape(-1).long().cpu()
        if features.ndim != 2 or not len(features) == len(pids) == len(camids):
            raise ReidError(f"process() needs N×D features with N pids and N camids, got features "
                            f"{tuple(features.shape)}, {len(pids)} pids, {len(camids)} camids")
        self.features.append(features.float())
        self.pids.append(pids)
        self.camids.append(camids)

    def __len__(self) -> int:
        return sum(len(p) for p in self.pids)

    def tensors(self) -> SplitTensors:
        """Everything added (empty tensors — features 0×0 — when nothing was)."""
        if not self.pids:
            return torch.empty(0, 0), torch.empty(0, dtype=torch.long), torch.empty(0, dtype=torch.long)
        return torch.cat(self.features), torch.cat(self.pids), torch.cat(self.camids)


class Evaluator:
    """Accumulates query and gallery features and scores them with the spec's settings.

    Under torchrun give each rank's evaluator the job's ``collective`` and process that rank's shard: every rank
    calls :meth:`evaluate` (and :meth:`split_tensors` before it, if at all) together; the shards are gathered onto
    the main rank in rank order, scored there once, and every rank gets the same result.

    Args:
        spec: the ``[eval]`` table (distance, normalize, protocol, ranks, max_rank; ``flip`` is recorded —
            it was applied when the features were extracted).
        same_set: query and gallery are one set (leave-one-out): only ``split="query"`` is processed and
            each query is removed from its own gallery.
        memory_mb: the most distance-matrix memory held at once.
        margin: also compute the :func:`validation_loss` of everything processed with this margin (an N×N pass,
            so only on request); the result carries it as ``val_loss``.
        collective: the ranks' collectives (:data:`~reid.evaluation.collective.SINGLE_PROCESS` by default).
    """

    def __init__(self, spec: EvalSpec, same_set: bool = False, memory_mb: int = 32, margin: float | None = None,
                 collective: Collective = SINGLE_PROCESS):
        self.spec, self.same_set, self.memory_mb, self.margin = spec, same_set, memory_mb, margin
        self.collective = collective
        self.reset()

    def reset(self) -> None:
        """Forget every processed batch."""
        self._splits: dict[str, _Store] = {"query": _Store(), "gallery": _Store()}
        self._gathered: dict[str, SplitTensors] | None = None

    def process(self, features: torch.Tensor, pids, camids, split: Split) -> None:
        """Add a batch of ``features`` (N×D, any device) with their identities and cameras to ``split``."""
        if split not in self._splits:
            raise ReidError(f"unknown split {split!r}", fix="use 'query' or 'gallery'")
        if split == "gallery" and self.same_set:
            raise ReidError("a leave-one-out evaluator has no separate gallery", fix="process the one set as 'query'")
        self._splits[split].add(features, pids, camids)
        self._gathered = None

    def split_tensors(self, split: Split) -> SplitTensors | None:
        """Everything every rank processed into ``split`` (``gallery`` is the query set when ``same_set``), in rank
        order: features (on the main rank's device), pids, camids. ``None`` off the main rank.

        The first call after :meth:`process` gathers the ranks' rows (every rank calls it, or :meth:`evaluate`)."""
        if self._gathered is None:
            self._gathered = self._gather()
        return self._gathered.get("query" if self.same_set else split)

    def _gather(self) -> dict[str, SplitTensors]:
        """Every rank's rows of each split (the query set alone when ``same_set``), joined in rank order on the main
        rank; nothing on the others."""
        out: dict[str, SplitTensors] = {}
        for split in ["query"] if self.same_set else ["query", "gallery"]:
            parts = [self.collective.gather_rows(t) for t in self._splits[split].tensors()]
            if parts[0] is not None:
                features, pids, camids = (_join(p) for p in parts)
                out[split] = features.float(), pids.cpu(), camids.cpu()
        return out

    def _scored(self, score: Callable[[], T]) -> T:
        """``score()`` run once, on the main rank after gathering, and its value (or :class:`ReidError`) on every rank."""
        self.split_tensors("query")
        outcome: T | ReidError | None = None
        if self.collective.is_main:
            try:
                outcome = score()
            except ReidError as e:
                outcome = e
        outcome = self.collective.broadcast(outcome)
        if isinstance(outcome, ReidError):
            raise outcome
        return outcome

    def _present(self, split: Split) -> SplitTensors:
        """:meth:`split_tensors` on the main rank, which must hold rows."""
        tensors = self.split_tensors(split)
        if tensors is None or not len(tensors[1]):
            raise ReidError(f"nothing to evaluate: no {split} features were processed")
        return tensors

    def _ranked(self) -> tuple[dict, str]:
        """:func:`reid.metrics.evaluate` of everything processed (re-ranked distances with ``eval.rerank``), and the
        protocol (main rank, after gathering)."""
        qf, q_pids, q_cams = self._present("query")
        gf, g_pids, g_cams = self._present("gallery")
        spec = self.spec
        protocol = resolve_protocol(spec.protocol, self.same_set, torch.cat([q_cams, g_cams]))
        max_rank = max(1, min(spec.max_rank, len(g_pids) - int(self.same_set)))  # a small gallery caps the CMC curve
        labels = dict(q_pids=q_pids, g_pids=g_pids, q_camids=q_cams, g_camids=g_cams, max_rank=max_rank,
                      protocol=protocol, same_set=self.same_set)
        if spec.rerank:  # k-reciprocal re-ranking needs every query-gallery distance at once
            one_set = None if self.same_set else gf.to(qf.device)  # a leave-one-out set is re-ranked once, not twice
            dist = rerank_features(qf, one_set, spec.k1, spec.k2, spec.lambda_, metric=spec.distance,
                                   normalize=spec.normalize)
            return evaluate(dist, **labels), protocol
        return evaluate_features(qf, gf.to(qf.device), metric=spec.distance, normalize=spec.normalize,
                                 memory_mb=self.memory_mb, **labels), protocol

    def first_match_ranks(self) -> torch.Tensor:
        """Per processed query, the 0-based rank of its first true match under the spec's ranking (−1 when the
        query has none left after the protocol's removals): per-query breakdowns start here."""
        return self._scored(lambda: torch.from_numpy(self._ranked()[0]["first_match"]))

    def evaluate(self) -> EvalResult:
        """CMC, mAP and mINP of everything processed (see :func:`reid.metrics.evaluate_features`), with the
        validation loss when a ``margin`` was given; computed on the main rank, the same on every rank."""
        return self._scored(self._result)

    def _result(self) -> EvalResult:
        """:meth:`evaluate` on the main rank."""
        raw, protocol = self._ranked()
        spec = self.spec
        val_loss = None
        if self.margin is not None:
            pool = [self._present("query")] + ([] if self.same_set else [self._present("gallery")])
            val_loss = validation_loss(torch.cat([f.to(pool[0][0].device) for f, _, _ in pool]),
                                       torch.cat([p for _, p, _ in pool]), self.margin)
        return EvalResult(cmc=tuple(float(x) for x in raw["cmc"]), mAP=float(raw["mAP"]), mINP=float(raw["mINP"]),
                          num_valid=int(raw["num_valid"]), num_skipped=int(raw["num_skipped"]), protocol=protocol,
                          distance=spec.distance, normalize=spec.normalize, ranks=tuple(spec.ranks), flip=spec.flip,
                          rerank=spec.rerank, val_loss=val_loss)
