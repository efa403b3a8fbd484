"""User-facing errors: one clear message (what, where, how to fix), no traceback.

Library code raises :class:`ReidError` for every mistake a user can make (bad spec,
wrong path, bad image, missing weights). The CLI catches it, prints the message and
exits non-zero; Python callers get an ordinary exception with the same text.
"""

from __future__ import annotations

from typing import Any


def _unpickled(cls: type[ReidError], args: tuple[Any, ...]) -> ReidError:
    """A ``cls`` error with ``args`` as they were, made without its ``__init__`` (which would format the
    already formatted message again); :meth:`ReidError.__reduce__` then restores its attributes."""
    error = cls.__new__(cls, *args)
    error.args = args
    return error


class ReidError(Exception):
    """A mistake the user can fix.

    Args:
        what: what is wrong, in one sentence.
        where: the file, key or option concerned (optional).
        fix: how to fix it (optional).

    Example:
        >>> str(ReidError("no such folder", where="data.root=/x", fix="point data.root at Market-1501"))
        'data.root=/x: no such folder. Fix: point data.root at Market-1501'
    """

    exit_code = 2

    def __init__(self, what: str, where: str | None = None, fix: str | None = None):
        self.what, self.where, self.fix = what, where, fix
        super().__init__(self.message)

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle (as ``torch.distributed`` sends an error to the other ranks) to the same message and attributes,
        for this class and every subclass, whatever its ``__init__`` takes.

        Example:
            >>> import pickle
            >>> error = ReidError("no such folder.", where="data.root", fix="point it at Market-1501")
            >>> copy = pickle.loads(pickle.dumps(error))
            >>> str(copy) == str(error), (copy.what, copy.where, copy.fix)
            (True, ('no such folder.', 'data.root', 'point it at Market-1501'))
        """
        return _unpickled, (type(self), self.args), self.__dict__

    @property
    def message(self) -> str:
        """The full one-line message."""
        text = f"{self.where}: {self.what}" if self.where else self.what
        text = text.rstrip(".") + "."
        if self.fix:
            text += f" Fix: {self.fix}"
        return text
