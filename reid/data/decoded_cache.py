"""A persistent cache of decoded images: one uint8 N×3×H×W file per (file list, size), read or memory-mapped.

Decoding JPEGs is the slow part of loading a dataset; its result depends only on the
files, the decoded height × width and the decoding rules. :func:`cache_key` hashes
exactly those (H, W, :data:`DECODE_RULES_VERSION` and, per file, its path with either its
``stat`` identity — size, modification time, inode, device and change time — or, with
``mode="content"``, a SHA-256 of its bytes), so a second build of the same split finds the
file and reads it in seconds, while touching, replacing or resizing any image makes a new
key. The change time matters: ``cp -p``, ``rsync -a`` and ``tar x`` restore the
modification time of a rewritten file, and a rewrite of the same size would otherwise
serve the old pixels; the kernel sets the change time on every write and ``utime`` and no
tool can set it back. ``"content"`` reads every file on every build (seconds per GB) and
keeps a cache valid across copies of a dataset (another device, new inodes).

File layout (``<root>/decoded/<key>.u8``): a :data:`HEADER_BYTES` header (magic, then
JSON with the key, shape and how many images were converted to 8-bit RGB) followed by
the raw pixels in C order. :func:`write_cache` writes a temporary file (space reserved
up front, so a full disk fails before decoding rather than mid-way), fsyncs it and
renames it into place (:func:`reid.fileio.atomic_write_bytes`), so a reader sees a whole
file or none; a killed writer leaves only its temporary file, which no reader opens and
the next writer removes.

Many processes and hosts may share one cache (torchrun ranks, a sweep's jobs on a shared file system).
:func:`build_cache` lets exactly one of them decode a missing entry: it takes the entry's lock file
(``O_CREAT | O_EXCL``, which network file systems honour), the others wait and then read. Temporary files
and locks are named ``<host>-<pid>``; a writer's leftovers are removed when its process is gone (same host)
or when they have not been touched for :data:`LOCK_STALE_SECONDS` (another host: a live writer touches
them every :data:`HEARTBEAT_SECONDS`), never while another host is still writing.
:func:`open_cache` checks the header and the exact size and answers ``None`` for a
missing, truncated or foreign file, which is then rebuilt.

Example:
    >>> import tempfile, numpy as np
    >>> root = Path(tempfile.mkdtemp())
    >>> path = cache_file(root, "k")
    >>> def fill(out):
    ...     out[:] = 7
    ...     return 0  # images converted
    >>> write_cache(path, "k", count=2, height=4, width=3, fill=fill)
    >>> c = open_cache(path, "k", count=2, height=4, width=3)
    >>> c.load().shape, int(c.load()[1, 2, 3, 2]), c.converted
    (torch.Size([2, 3, 4, 3]), 7, 0)
    >>> open_cache(path, "k", count=3, height=4, width=3) is None  # another shape: not this file
    True
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable, Iterator, Sequence

import numpy as np
import torch

from reid.fileio import atomic_write_bytes

#: Bump whenever :func:`reid.data.imageset.decode_image` would give other pixels: it is part of the key.
DECODE_RULES_VERSION = 1
#: Bytes before the pixels (a page, so the pixel data is page-aligned for memory mapping).
HEADER_BYTES = 4096
MAGIC = b"REIDU8\x00\x01"


#: How :func:`cache_key` identifies a file's version (``data.cache_key`` in a spec).
KEY_MODES = ("stat", "content")


def _file_identity(path: str | Path, mode: str) -> str:
    """What of ``path`` enters the key: its ``stat`` identity, or a SHA-256 of its bytes."""
    if mode == "content":
        with open(path, "rb") as f:
            return hashlib.file_digest(f, "sha256").hexdigest()
    st = os.stat(path)
    return f"{st.st_size}\0{st.st_mtime_ns}\0{st.st_ino}\0{st.st_dev}\0{st.st_ctime_ns}"


def cache_key(paths: Sequence[str | Path], height: int, width: int, mode: str = "stat") -> str:
    """A hex digest of the decoded size, the decoding rules and each file's absolute path and version.

    A file's version is, with ``mode="stat"``, its size, modification time, inode, device and
    change time (ns); with ``mode="content"``, the SHA-256 of its bytes.

    Example:
        >>> import tempfile
        >>> p = Path(tempfile.mkdtemp()) / "a.png"
        >>> _ = p.write_bytes(b"one")
        >>> by_content = cache_key([p], 8, 4, mode="content")
        >>> st = p.stat(); _ = p.write_bytes(b"two"); os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))
        >>> cache_key([p], 8, 4, mode="content") != by_content  # same size, same mtime, other bytes
        True

    Raises:
        OSError: a file cannot be read or stat'ed (decoding it would fail and name it).
        ValueError: an unknown ``mode``.
    """
    if mode not in KEY_MODES:
        raise ValueError(f"unknown cache key mode {mode!r}: one of {', '.join(KEY_MODES)}")
    h = hashlib.sha256(f"reid-decoded v{DECODE_RULES_VERSION} {height}x{width} {len(paths)} {mode}\n".encode())
    for p in paths:
        h.update(f"{os.path.abspath(p)}\0{_file_identity(p, mode)}\n".encode("utf-8", "surrogateescape"))
    return h.hexdigest()[:40]


def cache_file(root: str | Path, key: str) -> Path:
    """Where the images of ``key`` live under the cache root."""
    return Path(root) / "decoded" / f"{key}.u8"


@dataclass
class CachedImages:
    """A validated cache file.

    Attributes:
        path: the file.
        shape: (N, 3, H, W).
        converted: images that were not 8-bit RGB when decoded (as :class:`~reid.data.imageset.ImageSet` counts them).
    """

    path: Path
    shape: tuple[int, int, int, int]
    converted: int

    def load(self) -> torch.Tensor:
        """All images read into RAM as one uint8 tensor."""
        count = int(np.prod(self.shape))
        return torch.from_numpy(np.fromfile(self.path, dtype=np.uint8, count=count, offset=HEADER_BYTES).reshape(self.shape))

    def map(self) -> np.memmap:
        """The images memory-mapped read-only (pages come from the page cache as they are indexed)."""
        return np.memmap(self.path, dtype=np.uint8, mode="r", offset=HEADER_BYTES, shape=self.shape)


def _header(key: str, shape: tuple[int, ...], converted: int) -> bytes:
    meta = json.dumps({"key": key, "shape": list(shape), "converted": converted}).encode()  # ~100 bytes
    return (MAGIC + meta).ljust(HEADER_BYTES, b"\0")


def open_cache(path: str | Path, key: str, count: int, height: int, width: int) -> CachedImages | None:
    """The cache file at ``path`` if it is whole and holds ``count`` images of ``key`` at height × width, else ``None``."""
    path, shape = Path(path), (count, 3, height, width)
    try:
        if path.stat().st_size != HEADER_BYTES + int(np.prod(shape)):
            return None
        with open(path, "rb") as f:
            head = f.read(HEADER_BYTES)
        if not head.startswith(MAGIC):
            return None
        meta = json.loads(head[len(MAGIC) :].rstrip(b"\0"))
        if meta["key"] != key or tuple(meta["shape"]) != shape:
            return None
        return CachedImages(path, shape, int(meta["converted"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _reserve(fd: int, size: int) -> None:
    """Allocate ``size`` bytes now, so that a full disk raises here and not as SIGBUS inside a memory map."""
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as e:
        if e.errno == errno.ENOSPC:
            raise
        os.ftruncate(fd, size)  # a file system without fallocate


#: A writer's lock (and temporary file) untouched for this long belongs to a writer that is gone (another host's
#: process cannot be asked); a live writer touches both every :data:`HEARTBEAT_SECONDS`.
LOCK_STALE_SECONDS = 120.0
HEARTBEAT_SECONDS = 10.0
#: How often a process waiting for another's write looks again.
WAIT_POLL_SECONDS = 0.2
_HOST = socket.gethostname().replace("-", "_").replace("/", "_") or "host"


def _owner_suffix() -> str:
    """``<host>-<pid>``: names this process's temporary file and lock, unique across the hosts sharing a cache."""
    return f"{_HOST}-{os.getpid()}"


def _gone(owner: str, mtime: float, now: float) -> bool:
    """Whether the writer named ``owner`` (``host-pid``, or a bare ``pid`` from reid < 0.4) is gone: on this host,
    its process no longer exists; on any host, its file has not been touched for :data:`LOCK_STALE_SECONDS`."""
    if now - mtime > LOCK_STALE_SECONDS:
        return True
    host, _, pid = owner.rpartition("-")
    if pid.isdigit() and host in ("", _HOST):
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return True
        except OSError:
            pass  # exists (another user's): alive
    return False


def _remove_stale_temps(path: Path) -> None:
    """Delete temporary files of ``path`` left by writers that are gone (killed mid-write, on any host)."""
    now = time.time()
    for tmp in path.parent.glob(f"{path.name}.tmp-*"):
        try:
            if _gone(tmp.name.split(".tmp-", 1)[1], tmp.stat().st_mtime, now):
                tmp.unlink(missing_ok=True)
        except OSError:
            pass  # removed meanwhile


def _lock_path(path: Path) -> Path:
    return path.with_name(f"{path.name}.lock")


def _try_lock(path: Path) -> bool:
    """Take the writer's lock of ``path`` (``O_CREAT | O_EXCL``: atomic on local and network file systems), or,
    when its holder is gone (:func:`_gone`), break it and try once more. False: a live writer holds it."""
    lock = _lock_path(path)
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            try:
                owner, mtime = lock.read_text(encoding="utf-8").strip(), lock.stat().st_mtime
            except (OSError, ValueError):
                continue  # released meanwhile: try again
            if not _gone(owner, mtime, time.time()):
                return False
            try:  # a dead writer's lock: move it aside (one breaker wins the rename), then take a fresh one
                aside = lock.with_name(f"{lock.name}.broken-{_owner_suffix()}")
                os.replace(lock, aside)
                aside.unlink(missing_ok=True)
            except OSError:
                pass
            continue
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(_owner_suffix())
        return True
    return False


@contextlib.contextmanager
def _heartbeat(*paths: Path) -> Iterator[None]:
    """Touch ``paths`` every :data:`HEARTBEAT_SECONDS` while the block runs, so other hosts see the writer alive."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(HEARTBEAT_SECONDS):
            for p in paths:
                try:
                    os.utime(p)
                except OSError:
                    pass

    thread = threading.Thread(target=beat, daemon=True, name="reid-cache-heartbeat")
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def build_cache(path: str | Path, key: str, count: int, height: int, width: int, fill: Callable[[np.ndarray], int],
                on_wait: Callable[[str], None] = lambda owner: None) -> CachedImages | None:
    """The cache file of ``key``, written by exactly one of the processes (ranks, jobs, hosts) that ask for it at once.

    The first to take the entry's lock (``<key>.u8.lock``) decodes (:func:`write_cache`); the others wait,
    then read its file. A lock whose writer is gone (killed, or another host silent for
    :data:`LOCK_STALE_SECONDS`) is broken and the entry written again. ``on_wait(owner)`` is called once when
    this process starts waiting (``owner``: ``host-pid`` of the writer). ``None`` only if the written file
    does not validate (never expected).

    Raises:
        OSError: the cache cannot be written (read-only or full disk); nothing is left behind.
        Exception: whatever ``fill`` raises, likewise.
    """
    path = Path(path)
    waited = False
    while True:
        cached = open_cache(path, key, count, height, width)
        if cached is not None:
            return cached
        path.parent.mkdir(parents=True, exist_ok=True)
        if _try_lock(path):
            break
        if not waited:
            try:
                on_wait(_lock_path(path).read_text(encoding="utf-8").strip())
            except OSError:
                pass
            waited = True
        time.sleep(WAIT_POLL_SECONDS)
    try:
        cached = open_cache(path, key, count, height, width)  # written between our look and our lock
        if cached is None:
            write_cache(path, key, count, height, width, fill)
            cached = open_cache(path, key, count, height, width)
        return cached
    finally:
        _lock_path(path).unlink(missing_ok=True)


def write_cache(path: str | Path, key: str, count: int, height: int, width: int,
                fill: Callable[[np.ndarray], int]) -> None:
    """Create the cache file atomically: ``fill(array)`` writes the N×3×H×W uint8 pixels and returns the converted count.

    The file is written by :func:`reid.fileio.atomic_write_bytes` under the temporary name
    ``<key>.u8.tmp-<host>-<pid>``, by which other writers recognise a gone writer's leftovers.

    Raises:
        OSError: the cache cannot be written (read-only or full disk); nothing is left behind.
        Exception: whatever ``fill`` raises (e.g. a :class:`~reid.errors.ReidError` for a bad image), likewise.
    """
    path, shape = Path(path), (count, 3, height, width)
    _remove_stale_temps(path)
    tmp = path.with_name(f"{path.name}.tmp-{_owner_suffix()}")

    def write_pixels_then_header(f: BinaryIO) -> None:
        _reserve(f.fileno(), HEADER_BYTES + int(np.prod(shape)))
        pixels = np.memmap(tmp, dtype=np.uint8, mode="r+", offset=HEADER_BYTES, shape=shape)
        with _heartbeat(tmp, _lock_path(path)):
            converted = int(fill(pixels))
        pixels.flush()
        del pixels
        os.pwrite(f.fileno(), _header(key, shape, converted), 0)

    atomic_write_bytes(path, write_pixels_then_header, temp_name=tmp.name)
