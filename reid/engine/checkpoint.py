"""Crash-safe checkpoints: written to a temporary file, fsynced, then renamed into place.

A reader therefore sees either the previous complete checkpoint or the new complete one —
never a torn file — whether the writer is stopped by Ctrl-C, an exception or ``kill -9``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from reid.errors import ReidError


def atomic_write_bytes(path: Path, write: Any) -> None:
    """Call ``write(fileobj)`` on a temp file beside ``path``, fsync it, then rename it to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def save_checkpoint(state: dict, path: Path) -> None:
    """Atomically save a checkpoint dictionary (tensors, numbers, strings, nested dicts/lists)."""
    atomic_write_bytes(Path(path), lambda f: torch.save(state, f))


def atomic_write_text(path: Path, text: str) -> None:
    """Atomically replace a text file."""
    atomic_write_bytes(Path(path), lambda f: f.write(text.encode("utf-8")))


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint with ``weights_only=True`` (no arbitrary code runs on load).

    Raises:
        ReidError: the file is missing or unreadable.
    """
    path = Path(path)
    if not path.is_file():
        raise ReidError("checkpoint not found", where=str(path), fix="pass the run directory that holds checkpoints/last.pt")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises many types for bad files
        raise ReidError(f"checkpoint is unreadable ({type(e).__name__}: {e})".splitlines()[0], where=str(path),
                        fix="delete it to fall back to an earlier one, or start a new run") from None
