"""Crash-safe file writes: the one atomic writer of every layer (checkpoints, run files, decoded-image caches).

A write goes to a temporary file in the target's folder, is fsynced, then renamed over the target
(:func:`os.replace`), and the folder is fsynced so that the rename itself is durable: a reader sees the
previous complete file or the new complete one, never a torn one, whether the writer is stopped by
Ctrl-C, an exception or ``kill -9`` (a killed writer leaves only its temporary file behind).

Example:
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "notes" / "a.txt"
    >>> atomic_write_text(path, "one")
    >>> atomic_write_text(path, "two")
    >>> path.read_text(), [p.name for p in path.parent.iterdir()]
    ('two', ['a.txt'])
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable


def atomic_write_bytes(path: Path, write: Callable[[BinaryIO], object], before_rename: Callable[[Path], None] | None = None,
                       temp_name: str | None = None) -> None:
    """Call ``write(fileobj)`` on a temp file beside ``path``, fsync it, rename it to ``path``, fsync the folder.

    ``before_rename(tmp)``, when given, runs on the complete temp file before it replaces ``path``; if it
    raises, the temp file is removed and ``path`` is left as it was. ``temp_name`` names the temp file (in
    ``path``'s folder; created or truncated, mode 0o644) for writers whose leftovers others recognise by
    name; by default it is a fresh private ``.<name>.<random>.tmp`` (:func:`tempfile.mkstemp`).

    Raises:
        OSError: the file cannot be written (full disk, read-only folder, permission); ``path`` is left as
            it was and the temp file is removed. Whatever ``write`` or ``before_rename`` raises, likewise.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if temp_name is None:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    else:
        tmp = str(path.with_name(temp_name))
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        if before_rename is not None:
            before_rename(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # make the rename itself durable
        finally:
            os.close(dir_fd)
    except OSError:
        pass  # some file systems cannot fsync a directory; the file itself is complete and in place


def atomic_write_text(path: Path, text: str) -> None:
    """Atomically replace the text file ``path`` with ``text`` (UTF-8), as :func:`atomic_write_bytes` does."""
    atomic_write_bytes(Path(path), lambda f: f.write(text.encode("utf-8")))
