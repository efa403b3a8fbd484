"""What an :class:`~reid.evaluation.Evaluator` needs to know about ranks: the :class:`Collective` protocol.

Under torchrun each rank embeds a shard of the images and processes it into its own evaluator; the evaluator
gathers every rank's rows onto the main rank, scores them there once and broadcasts the result. The collectives
themselves live with the process group (:class:`reid.engine.distributed.RankCollective` implements this
protocol for a ``DistContext``); this package only knows the protocol, so it never imports the engine.
:data:`SINGLE_PROCESS` is the one-process collective: everything is local.

Example:
    >>> import torch
    >>> SINGLE_PROCESS.is_main, SINGLE_PROCESS.gather_rows(torch.ones(2, 3))[0].shape, SINGLE_PROCESS.broadcast("x")
    (True, torch.Size([2, 3]), 'x')
"""

from __future__ import annotations

from typing import Protocol, TypeVar

import torch

T = TypeVar("T")


class Collective(Protocol):
    """Collective operations over the ranks of a job, as an evaluator uses them (every rank calls each one together).

    Attributes:
        is_main: this rank scores and its results are broadcast (rank 0).
    """

    @property
    def is_main(self) -> bool: ...

    def gather_rows(self, local: torch.Tensor) -> list[torch.Tensor] | None:
        """Every rank's ``local`` in rank order on the main rank (on ``local``'s device), ``None`` on the others.

        Ranks may hold different numbers of rows; a rank with nothing sends an empty tensor (features 0×0)."""
        ...

    def broadcast(self, obj: T) -> T:
        """The main rank's picklable ``obj`` on every rank (the others' argument is ignored)."""
        ...


class SingleProcess:
    """The :class:`Collective` of one process: it is the main rank, gathers its own rows and broadcasts to itself."""

    is_main = True

    def gather_rows(self, local: torch.Tensor) -> list[torch.Tensor]:
        """``[local]``."""
        return [local]

    def broadcast(self, obj: T) -> T:
        """``obj`` itself."""
        return obj


#: the collective an evaluator uses unless told otherwise
SINGLE_PROCESS = SingleProcess()
