"""Which split picks ``best.pt`` and ``summary.best``: the rule behind ``[eval] select_on``.

The query / gallery split of Market-1501, DukeMTMC-reID, CUHK03 and MSMT17 is their *test* set:
keeping the epoch with the best Rank-1 on it reports the maximum over epochs of a noisy test
number, which no paper would. So:

- ``none`` — nothing is selected: no ``best.pt``, the model is the final epoch's ``last.pt``
  (what ``reid eval`` / ``reid.load`` then use) and ``summary.best`` is empty;
- ``val`` — a validation split is carved from the training identities (``eval.val_ids`` /
  ``eval.val_fraction``; they are not trained on), evaluated every ``eval.every`` epochs into
  ``val_rank1``, ``val_mAP`` … of ``metrics.jsonl``; ``best.pt`` is the best ``val_rank1``, and
  ``summary.best`` carries that epoch's *test* numbers;
- ``eval`` — the best Rank-1 on the evaluated split: allowed only where that split is itself a
  validation set (``synthetic``, ``folder``: identities held out of training, no test set beyond
  them), as the assignment's specs use it;
- ``auto`` (the default) — ``eval`` for datasets without their own split, ``none`` for those with one.

Whatever the rule, the headline is the final epoch's numbers on the evaluated split (``summary.final``).

Example:
    >>> resolve_selection("auto", own_split=True, dataset="market1501"), resolve_selection("auto", False, "synthetic")
    ('none', 'eval')
    >>> selection_text("val", val_identities=75)
    'best Rank-1 on a validation split of 75 training identities (not trained on)'
"""

from __future__ import annotations

from typing import Callable

from reid.engine.hooks import evaluates_after
from reid.engine.trainer import Hook, Trainer
from reid.errors import ReidError
from reid.evaluation import EvalResult

#: The ``metrics.jsonl`` key each rule maximises (``None``: nothing is selected).
SELECT_KEY: dict[str, str | None] = {"val": "val_rank1", "eval": "rank1", "none": None}
#: Prefix of the validation split's metrics in ``metrics.jsonl`` epoch records.
VAL_PREFIX = "val_"


def resolve_selection(select_on: str, own_split: bool, dataset: str) -> str:
    """The rule ``eval.select_on`` means for a dataset: ``"val"``, ``"eval"`` or ``"none"``.

    Raises:
        ReidError: ``"eval"`` on a dataset whose evaluated split is its own test split.
    """
    if select_on == "auto":
        return "none" if own_split else "eval"
    if select_on == "eval" and own_split:
        raise ReidError(f"eval.select_on = \"eval\" would pick the best epoch on {dataset}'s query / gallery split, "
                        "which is its test set: the number reported would be optimistic", where="eval.select_on",
                        fix="use \"val\" (a validation split carved from the training identities) or \"none\" "
                            "(the final epoch)")
    return select_on


def selection_text(rule: str, val_identities: int | None = None) -> str:
    """One phrase saying what picked the run's checkpoint (for summaries and report pages)."""
    if rule == "val":
        return f"best Rank-1 on a validation split of {val_identities} training identities (not trained on)"
    if rule == "eval":
        return "best Rank-1 on the evaluated split (held-out validation identities; no separate test split)"
    return "none: the final epoch's weights (last.pt)"


def best_record(records: list[dict], rule: str) -> dict | None:
    """The epoch record the rule selects (the first of equals), or ``None`` (rule ``none``, nothing evaluated).

    Example:
        >>> recs = [{"epoch": 1, "rank1": 0.5, "val_rank1": 0.7}, {"epoch": 2, "rank1": 0.6, "val_rank1": 0.6}]
        >>> best_record(recs, "val")["epoch"], best_record(recs, "eval")["epoch"], best_record(recs, "none")
        (1, 2, None)
    """
    key = SELECT_KEY[rule]
    scored = [r for r in records if key is not None and key in r]
    return max(scored, key=lambda r: r[key]) if scored else None


class ValidationHook(Hook):
    """Evaluates the validation split when the test split is evaluated (every ``every`` epochs and after the last),
    adding its metrics to the epoch record as ``val_rank1``, ``val_mAP`` … (before the checkpoint hook reads them).

    Args:
        validate: ``validate() -> EvalResult`` of the current weights on the validation split.
        every: ``eval.every``.
    """

    def __init__(self, validate: Callable[[], EvalResult], every: int):
        self.validate, self.every = validate, every

    def after_epoch(self, trainer: Trainer) -> None:
        """Validate on the evaluation epochs."""
        if evaluates_after(trainer.state.epoch, self.every, trainer.epochs):
            record = self.validate().to_record()
            trainer.epoch_record.update({VAL_PREFIX + k: v for k, v in record.items() if k not in ("cmc", "val_loss")})
