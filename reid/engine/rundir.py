"""The run directory: everything a finished (or interrupted) run leaves behind.

Layout::

    RUN/
      spec.toml          the resolved spec (defaults and --set overrides applied)
      metrics.jsonl      one JSON object per line: {"kind": "iter" | "epoch" | "eval", ...}
      checkpoints/last.pt  latest state (model, optimiser, schedule, RNG, position)
      checkpoints/best.pt  model weights with the best Rank-1 so far
      checkpoints/last.prev.pt  the last.pt before (resumed from when last.pt turns out damaged)
      checkpoints/manifest.json  size and SHA-256 of every verified checkpoint write
      summary.json       written at the end: final and best metrics, wall time, device, versions
      status.json        how the last session went: running (with its device), failed (its error line), interrupted
      .lock              held (flock) by the process training the run; says which process that is
      .torchrun-job      the torchrun job training the run: its restarts continue it (reid.engine.elastic)
"""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import time
import tomllib
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from reid.engine.checkpoint import MANIFEST_FILE, atomic_write_text, previous_path
from reid.engine.summary import RunSummary, completed_from_log, written_without_cmc
from reid.errors import ReidError
from reid.model.pretrained import RUN_CHECKPOINTS

SPEC_FILE = "spec.toml"
METRICS_FILE = "metrics.jsonl"
SUMMARY_FILE = "summary.json"
LOCK_FILE = ".lock"
STATUS_FILE = "status.json"
BEST_CKPT, LAST_CKPT = RUN_CHECKPOINTS
PREV_CKPT, MANIFEST = str(previous_path(Path(LAST_CKPT))), f"checkpoints/{MANIFEST_FILE}"
LOCK_ATTEMPTS = 10  # tries, 20 ms apart, before a held lock is reported


class RunDirRefused(ReidError):
    """A run directory refused to a session before it trained anything (finished, unfinished, other spec):
    no failure of the run itself, so :func:`reid.engine.run_status.record_outcome` does not record it."""


class RunDir:
    """Paths and files of one run.

    Example:
        >>> import tempfile
        >>> run = RunDir(Path(tempfile.mkdtemp()) / "r")
        >>> run.create(spec_toml='name = "x"\\n')
        >>> run.append_metrics({"kind": "epoch", "epoch": 1, "rank1": 0.5})
        >>> [r["rank1"] for r in run.read_metrics()]
        [0.5]
    """

    def __init__(self, path: Path | str):
        self.path = Path(path)

    @property
    def last_checkpoint(self) -> Path:
        """Path of the latest resumable checkpoint."""
        return self.path / LAST_CKPT

    @property
    def best_checkpoint(self) -> Path:
        """Path of the best-Rank-1 weights."""
        return self.path / BEST_CKPT

    @property
    def metrics_path(self) -> Path:
        """Path of ``metrics.jsonl``."""
        return self.path / METRICS_FILE

    @property
    def summary_path(self) -> Path:
        """Path of ``summary.json``."""
        return self.path / SUMMARY_FILE

    @property
    def status_path(self) -> Path:
        """Path of ``status.json`` (see :mod:`reid.engine.run_status`)."""
        return self.path / STATUS_FILE

    def is_finished(self) -> bool:
        """True once ``summary.json`` exists."""
        return self.summary_path.is_file()

    def _refuse_a_file(self) -> None:
        if self.path.exists() and not self.path.is_dir():
            raise ReidError("the run directory path is a file", where=str(self.path), fix="choose another --out")

    @contextmanager
    def lock(self, create: bool = True) -> Iterator[None]:
        """Hold the run directory for this process: an exclusive ``flock`` on ``RUN/.lock``.

        A second process that asks for it (the same run resumed twice, a sweep relaunched while its runs
        still train, a Slurm job requeued beside its first copy) gets a :class:`ReidError` naming the holder
        instead of writing the same files. The operating system frees the lock when its process ends, however
        it ends (kill -9 included), so a crash leaves nothing to clean up. ``create``: make the directory if
        it is missing (else a missing directory is not locked: there is nothing to protect).

        Example:
            >>> import tempfile
            >>> run = RunDir(Path(tempfile.mkdtemp()) / "r")
            >>> with run.lock():
            ...     with run.lock():  # doctest: +ELLIPSIS
            ...         pass
            Traceback (most recent call last):
            reid.errors.ReidError: ...r: this run directory is in use by pid ... on .... Fix: wait for that run to end, ...
        """
        import fcntl  # POSIX; reid runs on Linux and macOS

        self._refuse_a_file()
        if not create and not self.path.is_dir():
            yield
            return
        self.path.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            for attempt in range(LOCK_ATTEMPTS):  # a few tries: `reid runs` probes the lock for an instant
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if attempt + 1 < LOCK_ATTEMPTS:
                        time.sleep(0.02)
            else:
                holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
                raise ReidError(f"this run directory is in use by {holder}", where=str(self.path),
                                fix="wait for that run to end, or stop it; its lock goes with its process")
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
            yield
        finally:
            os.close(fd)

    def held_by(self) -> str | None:
        """Who holds this run directory's lock right now (``"pid N on HOST"``), or None when no process does.

        Probes the lock without waiting (a shared ``flock`` taken and dropped at once); the file is read,
        never created. A process that starts the run in that instant retries (see :meth:`lock`).

        Example:
            >>> import tempfile
            >>> run = RunDir(Path(tempfile.mkdtemp()) / "r")
            >>> run.held_by() is None
            True
            >>> with run.lock():
            ...     run.held_by().startswith("pid ")
            True
        """
        import fcntl

        try:
            fd = os.open(self.path / LOCK_FILE, os.O_RDONLY)
        except OSError:
            return None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)

    def create(self, spec_toml: str, force: bool = False) -> None:
        """Make a fresh run directory; refuse to overwrite an existing run unless ``force``."""
        self._refuse_a_file()
        if self.path.exists() and any(p.name != LOCK_FILE for p in self.path.iterdir()):
            if self.is_finished() and not force:
                raise RunDirRefused("this run directory holds a finished run", where=str(self.path),
                                fix="choose another --out, or add --force to overwrite it")
            if not force:
                raise RunDirRefused("this run directory holds an unfinished run", where=str(self.path),
                                fix=f"continue it with --resume {self.path}, or add --force to start over")
            for name in (METRICS_FILE, SUMMARY_FILE, STATUS_FILE, LAST_CKPT, BEST_CKPT, PREV_CKPT, MANIFEST):
                (self.path / name).unlink(missing_ok=True)
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path / SPEC_FILE, spec_toml)
        self.metrics_path.touch()

    def spec_text(self) -> str:
        """The resolved spec saved in this run."""
        path = self.path / SPEC_FILE
        if not path.is_file():
            raise RunDirRefused("not a run directory (no spec.toml)", where=str(self.path),
                            fix="pass a directory written by `reid run`")
        return path.read_text(encoding="utf-8")

    def append_metrics(self, record: dict[str, Any]) -> None:
        """Append one JSON line and flush it to disk."""
        with open(self.metrics_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record, sort_keys=True) + "\n")

    def read_metrics(self) -> Iterator[dict[str, Any]]:
        """Every complete record of ``metrics.jsonl`` (a torn last line from a crash is skipped)."""
        if not self.metrics_path.is_file():
            return
        with open(self.metrics_path, encoding="utf-8") as f:
            for line in f:
                try:
                    yield json.loads(line)
                except json.JSONDecodeError:
                    continue

    def truncate_metrics(self, step: int) -> None:
        """Keep only records logged at or before global iteration ``step`` (used when resuming)."""
        kept = [r for r in self.read_metrics() if r.get("step", 0) <= step]
        atomic_write_text(self.metrics_path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in kept))

    def write_summary(self, summary: RunSummary) -> None:
        """Write ``summary.json`` atomically (:meth:`RunSummary.to_json`); marks the run finished."""
        atomic_write_text(self.summary_path, json.dumps(summary.to_json(), indent=2, sort_keys=True) + "\n")

    def read_summary(self) -> RunSummary:
        """The run's :class:`RunSummary`, read from ``summary.json`` (one written before its ``final`` / ``best``
        carried their whole result is completed from ``metrics.jsonl`` and ``spec.toml``:
        :func:`reid.engine.summary.completed_from_log`)."""
        if not self.is_finished():
            holder = self.held_by()
            if holder is not None:
                raise ReidError(f"this run is in progress (training in {holder}); it has no summary.json yet",
                                where=str(self.path), fix="wait for it to finish; metrics.jsonl holds its epochs so far")
            raise ReidError("run has no summary.json (not finished)", where=str(self.path),
                            fix=f"finish it with `reid run --resume {self.path}`")
        try:
            data = json.loads(self.summary_path.read_text(encoding="utf-8"))
            if written_without_cmc(data):
                data = completed_from_log(data, (r for r in self.read_metrics() if r.get("kind") == "epoch"),
                                          rerank=self._spec_rerank())
            return RunSummary.from_json(data)
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise ReidError(f"summary.json cannot be read ({type(e).__name__}: {e})", where=str(self.summary_path),
                            fix="re-run the experiment, or restore the file from a backup") from None

    def _spec_rerank(self) -> bool:
        """The saved spec's ``eval.rerank`` (False when it cannot be read)."""
        try:
            return bool(tomllib.loads(self.spec_text()).get("eval", {}).get("rerank", False))
        except (ReidError, OSError, tomllib.TOMLDecodeError, AttributeError):
            return False


def environment() -> dict[str, Any]:
    """Library versions, Python, platform and git commit, for summaries."""
    import timm
    import torch
    import torchvision

    import reid

    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5,
                                cwd=Path(__file__).resolve().parent).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {"reid": reid.__version__, "torch": torch.__version__, "torchvision": torchvision.__version__,
            "timm": timm.__version__, "python": platform.python_version(), "platform": platform.platform(),
            "git_commit": commit}
