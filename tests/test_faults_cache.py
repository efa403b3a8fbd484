"""A decoded-image cache shared by many processes and hosts: one writer per entry, the others wait then read; another
host's write in progress is never deleted; a gone writer's lock and temporary file are cleared."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import reid.data.decoded_cache as dc
from fault_log import record
from reid.data.decoded_cache import build_cache, cache_file

WORKER = r"""
import hashlib, sys, time
from pathlib import Path
import reid.data.imageset as imageset
from reid.data.formats import Sample
from reid.data.imageset import ImageSet

decode = imageset.decode_image
decoded = 0
def slow_decode(path, h, w):
    global decoded
    decoded += 1
    time.sleep(0.02)
    return decode(path, h, w)
imageset.decode_image = slow_decode
folder, cache, go = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
samples = [Sample(str(p), i, 0) for i, p in enumerate(sorted(folder.glob("*.png")))]
while not go.exists():
    time.sleep(0.005)
s = ImageSet(samples, height=16, width=8, cache_dir=cache)
print(decoded, hashlib.sha256(s.images.numpy().tobytes()).hexdigest(), flush=True)
"""


@pytest.fixture
def folder(tmp_path) -> Path:
    out = tmp_path / "imgs"
    out.mkdir()
    rng = np.random.default_rng(0)
    for i in range(40):
        Image.fromarray(rng.integers(0, 255, (24, 12, 3), dtype=np.uint8)).save(out / f"{i:03d}.png")
    return out


@pytest.mark.parametrize("processes", [4])
def test_a_cold_cache_is_decoded_once_by_many_processes_started_together(tmp_path, folder, processes):
    go, cache = tmp_path / "go", tmp_path / "cache"
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(folder), str(cache), str(go)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(processes)]
    time.sleep(0.5)
    go.touch()
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err
        decoded, digest = out.split()
        results.append((int(decoded), digest))
    assert sorted(d for d, _ in results) == [0] * (processes - 1) + [40]  # one writer decoded, the others read
    assert len({digest for _, digest in results}) == 1
    assert sorted(p.suffix for p in (cache / "decoded").iterdir()) == [".u8"]  # no lock or temporary file left
    record("cache-cold-concurrent", "a cold decoded-image cache opened by several processes at once",
           f"{processes} processes started together on 40 images", processes,
           "decoded once (one writer), the others waited and read identical pixels")


def _fill(out: np.ndarray) -> int:
    out[:] = 9
    return 0


def test_another_hosts_write_in_progress_is_left_alone_and_waited_for(tmp_path, monkeypatch):
    path = cache_file(tmp_path, "k")
    path.parent.mkdir(parents=True)
    other_tmp = path.with_name(f"{path.name}.tmp-otherhost-{os.getpid()}")  # a pid that is alive here: must not matter
    other_tmp.write_bytes(b"half written")
    lock = path.with_name(f"{path.name}.lock")
    lock.write_text("otherhost-1")
    monkeypatch.setattr(dc, "WAIT_POLL_SECONDS", 0.01)
    waits: list[str] = []

    def other_host_finishes(owner: str) -> None:  # while we wait, the other host completes its write
        waits.append(owner)
        dc.write_cache(path, "k", 2, 4, 3, _fill)
        lock.unlink()

    cached = build_cache(path, "k", 2, 4, 3, fill=lambda out: pytest.fail("decoded although another host wrote"),
                         on_wait=other_host_finishes)
    assert waits == ["otherhost-1"] and int(cached.load()[0, 0, 0, 0]) == 9
    assert other_tmp.exists()  # the other host's temporary file, touched recently, was not deleted


def test_a_gone_writers_lock_and_temp_are_cleared(tmp_path, monkeypatch):
    cases = 0
    for owner, age in (("otherhost-1", dc.LOCK_STALE_SECONDS + 5), (f"{dc._HOST}-999999999", 0.0)):
        path = cache_file(tmp_path / str(cases), "k")
        path.parent.mkdir(parents=True)
        lock, tmp = path.with_name(f"{path.name}.lock"), path.with_name(f"{path.name}.tmp-{owner}")
        lock.write_text(owner)
        tmp.write_bytes(b"partial")
        old = time.time() - age
        for p in (lock, tmp):
            os.utime(p, (old, old))
        cached = build_cache(path, "k", 2, 4, 3, fill=_fill)
        assert int(cached.load()[1, 2, 3, 2]) == 9
        assert sorted(p.name for p in path.parent.iterdir()) == [path.name]
        cases += 1
    record("cache-gone-writer", "a writer of the shared cache killed mid-write",
           "its lock and temporary file left (another host, silent too long; this host, dead pid)", cases,
           "cleared, the entry written again")


def test_a_killed_writer_on_this_host_does_not_make_others_wait(tmp_path, folder):
    script = (
        "import sys, time\n"
        "from reid.data.decoded_cache import build_cache\n"
        "def fill(out):\n"
        "    print('writing', flush=True)\n"
        "    time.sleep(60)\n"
        f"build_cache({str(cache_file(tmp_path, 'k'))!r}, 'k', 2, 4, 3, fill)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    proc.kill()
    proc.wait()
    started = time.time()
    assert int(build_cache(cache_file(tmp_path, "k"), "k", 2, 4, 3, fill=_fill).load().max()) == 9
    assert time.time() - started < 5
    digest = hashlib.sha256(cache_file(tmp_path, "k").read_bytes()).hexdigest()
    assert digest and sorted(p.name for p in (tmp_path / "decoded").iterdir()) == ["k.u8"]
