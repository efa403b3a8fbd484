"""The one re-ID evaluator (fast-reid's ``DatasetEvaluator`` idea): ``reset`` / ``process`` / ``evaluate``.

Training-time evaluation, ``reid eval``, :meth:`reid.api.LoadedModel.evaluate` and reports all feed
features through it, so protocol resolution, normalisation and the junk rule exist once. Feature
extraction (and flip averaging, which needs the model) is :func:`reid.engine.evaluation.extract_features`.
With ``eval.rerank`` the distances are k-reciprocal re-ranked (:func:`reid.rerank.rerank_features`) before ranking.

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

from typing import Literal

import torch

from reid.errors import ReidError
from reid.evaluation.result import EvalResult
from reid.metrics import auto_protocol, evaluate, evaluate_features
from reid.rerank import rerank_features
from reid.spec import EvalSpec

Split = Literal["query", "gallery"]


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

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return torch.cat(self.features), torch.cat(self.pids), torch.cat(self.camids)


class Evaluator:
    """Accumulates query and gallery features and scores them with the spec's settings.

    Args:
        spec: the ``[eval]`` table (distance, normalize, protocol, ranks, max_rank; ``flip`` is recorded —
            it was applied when the features were extracted).
        same_set: query and gallery are one set (leave-one-out): only ``split="query"`` is processed and
            each query is removed from its own gallery.
        memory_mb: the most distance-matrix memory held at once.
    """

    def __init__(self, spec: EvalSpec, same_set: bool = False, memory_mb: int = 32):
        self.spec, self.same_set, self.memory_mb = spec, same_set, memory_mb
        self.reset()

    def reset(self) -> None:
        """Forget every processed batch."""
        self._splits: dict[str, _Store] = {"query": _Store(), "gallery": _Store()}

    def process(self, features: torch.Tensor, pids, camids, split: Split) -> None:
        """Add a batch of ``features`` (N×D, any device) with their identities and cameras to ``split``."""
        if split not in self._splits:
            raise ReidError(f"unknown split {split!r}", fix="use 'query' or 'gallery'")
        if split == "gallery" and self.same_set:
            raise ReidError("a leave-one-out evaluator has no separate gallery", fix="process the one set as 'query'")
        self._splits[split].add(features, pids, camids)

    def split_tensors(self, split: Split) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Everything processed into ``split`` (``gallery`` is the query set when ``same_set``): features, pids, camids."""
        store = self._splits["query" if self.same_set else split]
        if not len(store):
            raise ReidError(f"nothing to evaluate: no {split} features were processed")
        return store.tensors()

    def _ranked(self) -> tuple[dict, str]:
        """:func:`reid.metrics.evaluate` of everything processed (re-ranked distances with ``eval.rerank``), and the protocol."""
        qf, q_pids, q_cams = self.split_tensors("query")
        gf, g_pids, g_cams = self.split_tensors("gallery")
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
        return torch.from_numpy(self._ranked()[0]["first_match"])

    def evaluate(self) -> EvalResult:
        """CMC, mAP and mINP of everything processed (see :func:`reid.metrics.evaluate_features`)."""
        raw, protocol = self._ranked()
        spec = self.spec
        return EvalResult(cmc=tuple(float(x) for x in raw["cmc"]), mAP=float(raw["mAP"]), mINP=float(raw["mINP"]),
                          num_valid=int(raw["num_valid"]), num_skipped=int(raw["num_skipped"]), protocol=protocol,
                          distance=spec.distance, normalize=spec.normalize, ranks=tuple(spec.ranks), flip=spec.flip,
                          rerank=spec.rerank)
