"""Re-ID evaluation of extracted features: the one :class:`Evaluator`, its typed result, ranked lists.

- :mod:`reid.evaluation.result` — :class:`EvalResult` (CMC, mAP, mINP, counts, protocol) and its JSON form;
- :mod:`reid.evaluation.evaluator` — :class:`Evaluator` (``reset`` / ``process`` / ``evaluate``), used by
  training-time evaluation, ``reid eval``, ``reid search`` and reports;
- :mod:`reid.evaluation.collective` — :class:`Collective`, what the evaluator needs to know about ranks (gather
  rows onto the main rank, broadcast its result); the engine implements it for a process group;
- :mod:`reid.evaluation.ranking` — top-k gallery entries per query under the same junk rule, in bounded memory.

Feature *extraction* (model + images → features) lives in :mod:`reid.engine.evaluation`; everything here
works on features, so it runs the same on any device.
"""

from reid.evaluation.collective import SINGLE_PROCESS, Collective
from reid.evaluation.evaluator import Evaluator, resolve_protocol, validation_loss
from reid.evaluation.ranking import RankedList, ranked_lists, top_k, top_k_of_distances
from reid.evaluation.result import EvalResult

__all__ = ["SINGLE_PROCESS", "Collective", "EvalResult", "Evaluator", "RankedList", "ranked_lists", "resolve_protocol",
           "top_k", "top_k_of_distances", "validation_loss"]
