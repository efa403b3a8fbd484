"""How a run's last session went, as ``RUN/status.json``: running (and on which device), failed (its error
line) or interrupted. ``summary.json`` alone says a run finished; the run lock alone says it is running now.

``reid run`` writes the file: :class:`RunStatusHook` when training starts (state ``running``, the device), and
:func:`record_outcome` when the session ends with an exception (``failed`` with the error's one line, or
``interrupted`` after Ctrl-C / SIGTERM). A run killed with ``kill -9`` keeps ``running`` in the file but
holds no lock: readers (:mod:`reid.engine.run_index`) call it interrupted.

Example:
    >>> import tempfile
    >>> from reid.engine.rundir import RunDir
    >>> run = RunDir(tempfile.mkdtemp())
    >>> with record_outcome(run):  # doctest: +ELLIPSIS
    ...     (run.path / "spec.toml").write_text("")
    ...     raise ReidError("data.root not found", where="data.root=/x")
    Traceback (most recent call last):
    reid.errors.ReidError: data.root=/x: data.root not found.
    >>> s = read_status(run)
    >>> s.state, s.error
    (<SessionState.failed: 'failed'>, 'data.root=/x: data.root not found.')
"""

from __future__ import annotations

import json
import os
import socket
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from enum import Enum
from typing import Any, Iterator

from reid.engine.checkpoint import atomic_write_text
from reid.engine.rundir import SPEC_FILE, RunDir, RunDirRefused
from reid.engine.trainer import Hook, Trainer, TrainingInterrupted
from reid.errors import ReidError


class SessionState(str, Enum):
    """What ``status.json`` says about the last session."""

    running = "running"
    failed = "failed"
    interrupted = "interrupted"


@dataclass(frozen=True)
class SessionStatus:
    """The content of ``status.json``.

    Attributes:
        state: running, failed or interrupted.
        error: the one-line error of a failed session (``Type: message`` for an unexpected exception).
        device, device_name: where the session trained (empty until training started).
        pid, host: the process that wrote the file.
        updated: Unix time of the last write.
    """

    state: SessionState
    error: str = ""
    device: str = ""
    device_name: str = ""
    pid: int = 0
    host: str = ""
    updated: float = 0.0

    def to_json(self) -> dict[str, Any]:
        """The ``status.json`` object."""
        return {**asdict(self), "state": self.state.value}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SessionStatus:
        """Inverse of :meth:`to_json` (unknown keys are ignored)."""
        return cls(state=SessionState(data["state"]), error=str(data.get("error", "")),
                   device=str(data.get("device", "")), device_name=str(data.get("device_name", "")),
                   pid=int(data.get("pid", 0)), host=str(data.get("host", "")),
                   updated=float(data.get("updated", 0.0)))


def read_status(run: RunDir) -> SessionStatus | None:
    """The run's ``status.json`` (None when it has none or it cannot be read: runs of older versions)."""
    try:
        return SessionStatus.from_json(json.loads(run.status_path.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_status(run: RunDir, state: SessionState, **fields: Any) -> SessionStatus:
    """Write ``status.json`` atomically; fields not given keep their previous value (the device)."""
    previous = read_status(run) or SessionStatus(state=state)
    status = replace(previous, state=state, pid=os.getpid(), host=socket.gethostname(), updated=time.time(),
                     **fields)
    atomic_write_text(run.status_path, json.dumps(status.to_json(), indent=2, sort_keys=True) + "\n")
    return status


def error_line(error: BaseException) -> str:
    """One line describing an exception: a :class:`ReidError`'s message, else ``Type: first line``.

    Example:
        >>> error_line(ValueError("bad\\nmore"))
        'ValueError: bad'
    """
    text = error.message if isinstance(error, ReidError) else f"{type(error).__name__}: {error}"
    return (text.strip().splitlines() or [type(error).__name__])[0]


@contextmanager
def record_outcome(run: RunDir, enabled: bool = True) -> Iterator[None]:
    """Record in ``status.json`` how a training session that ends with an exception ended, then re-raise.

    Ctrl-C / SIGTERM (:class:`TrainingInterrupted`, ``KeyboardInterrupt``) → ``interrupted``; any other
    exception → ``failed`` with :func:`error_line`. Nothing is written when the directory was refused to the
    session (:class:`RunDirRefused`: finished, unfinished without --resume, another spec), holds no run
    (no ``spec.toml``) or holds a finished one, or when ``enabled`` is False (ranks other than 0).
    """
    try:
        yield
    except BaseException as e:
        if enabled and not isinstance(e, (RunDirRefused, SystemExit, GeneratorExit)) \
                and (run.path / SPEC_FILE).is_file() and not run.is_finished():
            if isinstance(e, (TrainingInterrupted, KeyboardInterrupt)):
                write_status(run, SessionState.interrupted, error="")
            else:
                write_status(run, SessionState.failed, error=error_line(e))
        raise


class RunStatusHook(Hook):
    """Writes ``status.json`` = running, with the device, when training starts (rank 0 only)."""

    def __init__(self, run: RunDir):
        self.run = run

    def before_train(self, trainer: Trainer) -> None:
        """Record the session as running on the trainer's device."""
        described = trainer.runtime.describe()
        write_status(self.run, SessionState.running, error="", device=str(described["device"]),
                     device_name=str(described["device_name"]))

