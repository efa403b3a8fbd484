"""User-facing errors: one clear message (what, where, how to fix), no traceback.

Library code raises :class:`ReidError` for every mistake a user can make (bad spec,
wrong path, bad image, missing weights). The CLI catches it, prints the message and
exits non-zero; Python callers get an ordinary exception with the same text.
"""

from __future__ import annotations


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

    @property
    def message(self) -> str:
        """The full one-line message."""
        text = f"{self.where}: {self.what}" if self.where else self.what
        text = text.rstrip(".") + "."
        if self.fix:
            text += f" Fix: {self.fix}"
        return text
