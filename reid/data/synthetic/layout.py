"""The layout writer: a synthetic dataset rendered into a folder in Market-1501 layout (:func:`write_market_layout`).

Identities are rendered in parallel processes; the files are written to a temporary sibling
folder renamed into place at the end, under a file lock shared by every process writing the same
folder (torchrun ranks sharing a cache).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

from reid.data.split import per_camera_query, split_identities
from reid.data.synthetic.render import SynthParams, render_identity_jpegs
from reid.data.synthetic.scene import camera_sequence
from reid.errors import ReidError

#: Most processes :func:`write_market_layout` renders with by default (one per CPU up to this). The
#: Market-size set (``data.synth_preset``: 25,517 images at 256×128) is ~170 CPU-seconds of rendering.
RENDER_PROCESSES = 32


def _write_identity(args: tuple[SynthParams, int, str, list[str]]) -> None:
    """Render identity ``pid`` and write its images into ``root``, image ``j`` into ``folders[j]``."""
    params, pid, root, folders = args
    for j, (cam, data) in enumerate(render_identity_jpegs(params, pid)):
        Path(root, folders[j], f"{pid:04d}_c{cam + 1}s1_{j:06d}_00.jpg").write_bytes(data)


def write_market_layout(
    out: Path,
    params: SynthParams,
    train_ids: int | None = 230,
    train_fraction: float | None = None,
    split_seed: int = 0,
    workers: int | None = None,
) -> Path:
    """Render the dataset into ``out`` in Market-1501 layout; return ``out``.

    Training identities go to ``bounding_box_train/``; each validation identity gives one
    image per camera to ``query/`` and the rest to ``bounding_box_test/``. Files are written
    to a temporary sibling folder that is renamed into place at the end, so an interrupted
    run never leaves a half-written dataset. ``out`` must not exist or be empty. Processes
    writing the same ``out`` at once (torchrun ranks sharing a cache) take turns under a file
    lock: one renders with its process pool, the others then find ``out`` written and raise
    the "already exists" error, on which the cache reader simply reads it. Identities are rendered by
    ``workers`` processes (default: one per CPU, at most :data:`RENDER_PROCESSES`); the files do not depend on it.

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp()) / "s"
        >>> _ = write_market_layout(d, SynthParams(identities=4, images_per_identity=3, size=(32, 32)), train_ids=2)
        >>> sorted(p.name for p in d.iterdir())
        ['bounding_box_test', 'bounding_box_train', 'query']
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    import fcntl  # POSIX advisory lock, held until the file closes (also if the process dies)

    with open(out.parent / f".{out.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise ReidError("output folder already exists and is not empty", where=str(out), fix="choose a new folder or delete it")
        pids = list(range(1, params.identities + 1))
        train, _ = split_identities(pids, train_ids, train_fraction, split_seed)
        train = set(train)
        jobs = []
        for pid in pids:
            cams = camera_sequence(params, pid)
            if pid in train:
                folders = ["bounding_box_train"] * len(cams)
            else:
                query = set(per_camera_query([(j, cam) for j, cam in enumerate(cams)], seed=split_seed * 100_003 + pid))
                folders = ["query" if j in query else "bounding_box_test" for j in range(len(cams))]
            jobs.append((params, pid, "", folders))
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
        try:
            for sub in ("bounding_box_train", "query", "bounding_box_test"):
                (tmp / sub).mkdir()
            jobs = [(p, pid, str(tmp), f) for p, pid, _, f in jobs]
            n_workers = workers if workers is not None else min(os.cpu_count() or 1, RENDER_PROCESSES)
            if n_workers > 1 and len(jobs) > 8:
                with ProcessPoolExecutor(n_workers, mp_context=get_context("fork")) as pool:
                    list(pool.map(_write_identity, jobs, chunksize=max(1, len(jobs) // (4 * n_workers))))
            else:
                for job in jobs:
                    _write_identity(job)
            if out.exists():
                out.rmdir()
            tmp.rename(out)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return out
