"""The typed result of a re-ID evaluation, and the one place that owns its JSON form.

Example:
    >>> r = EvalResult(cmc=(0.5, 0.75, 1.0), mAP=0.6, mINP=0.4, num_valid=4, num_skipped=0,
    ...                protocol="market", distance="euclidean", normalize=False, ranks=(1, 3))
    >>> r.rank(1), r.rank(3), r.rank(10)
    (0.5, 1.0, 1.0)
    >>> sorted(r.to_record())
    ['cmc', 'mAP', 'mINP', 'num_skipped', 'num_valid', 'rank1', 'rank3']
    >>> EvalResult.from_json(r.to_json()) == r
    True
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any


@dataclass(frozen=True)
class EvalResult:
    """CMC, mAP and mINP of one evaluation, with what produced them.

    Attributes:
        cmc: ``cmc[k - 1]`` is Rank-k (fractions in [0, 1]); its length is the evaluated maximum rank.
        mAP, mINP: means over valid queries.
        num_valid: queries with at least one true match (after the protocol's removals).
        num_skipped: queries without one (skipped, as torchreid does).
        protocol: ``market`` (same identity *and* camera ignored) or ``all`` (nothing ignored).
        distance: ``euclidean`` (squared L2) or ``cosine``.
        normalize: features were L2-normalised before distances.
        ranks: the ranks a summary reports (``eval.ranks``).
        rerank: k-reciprocal re-ranking was applied.
        flip: features averaged with those of the mirrored images.
        val_loss: batch-hard triplet loss over the validation embeddings (training-time evaluation only).
    """

    cmc: tuple[float, ...]
    mAP: float
    mINP: float
    num_valid: int
    num_skipped: int
    protocol: str
    distance: str
    normalize: bool
    ranks: tuple[int, ...] = (1, 5, 10)
    rerank: bool = False
    flip: bool = False
    val_loss: float | None = field(default=None)

    def rank(self, k: int) -> float:
        """Rank-``k`` accuracy (the CMC's last value when ``k`` is past its end: it is flat there)."""
        return self.cmc[min(k, len(self.cmc)) - 1]

    def to_record(self) -> dict[str, Any]:
        """The flat metrics of a ``metrics.jsonl`` epoch record: ``rank{k}`` for each of ``ranks``, ``mAP``,
        ``mINP``, ``num_valid``, ``num_skipped``, ``cmc`` and, when known, ``val_loss``."""
        record: dict[str, Any] = {f"rank{k}": self.rank(k) for k in self.ranks}
        record.update(mAP=self.mAP, mINP=self.mINP, num_valid=self.num_valid, num_skipped=self.num_skipped,
                      cmc=list(self.cmc))
        if self.val_loss is not None:
            record["val_loss"] = self.val_loss
        return record

    def to_json(self) -> dict[str, Any]:
        """Every field, JSON-ready (tuples become lists)."""
        out = asdict(self)
        out["cmc"], out["ranks"] = list(self.cmc), list(self.ranks)
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EvalResult:
        """Inverse of :meth:`to_json` (unknown keys are ignored, so newer files stay readable)."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["cmc"] = tuple(float(x) for x in values["cmc"])
        values["ranks"] = tuple(int(x) for x in values.get("ranks", (1, 5, 10)))
        return cls(**values)
