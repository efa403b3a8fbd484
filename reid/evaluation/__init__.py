"""Re-ID evaluation of extracted features: the one :class:`Evaluator`, its typed result, ranked lists.

- :mod:`reid.evaluation.result` — :class:`EvalResult` (CMC, mAP, mINP, counts, protocol) and its JSON form;
- :mod:`reid.evaluation.evaluator` — :class:`Evaluator` (``reset`` / ``process`` / ``evaluate``), used by
  training-time evaluation, ``reid eval``, ``reid search`` and reports;
- :mod:`reid.evaluation.ranking` — top-k gallery entries per query under the same junk rule, in bounded memory.

Feature *extraction* (model + images → features) lives in :mod:`reid.engine.evaluation`; everything here
works on features, so it runs the same on any device.
"""

from reid.evaluation.evaluator import Evaluator, resolve_protocol
from reid.evaluation.ranking import RankedList, ranked_lists, top_k, top_k_of_distances
from reid.evaluation.result import EvalResult

__all__ = ["EvalResult", "Evaluator", "RankedList", "ranked_lists", "resolve_protocol", "top_k", "top_k_of_distances"]
