"""The persistent decoded-image cache: hits, invalidation, atomic writes and corrupt files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from reid.data import imageset as imageset_module
from reid.data.decoded_cache import HEADER_BYTES, _owner_suffix, cache_file, cache_key, open_cache, write_cache
from reid.data.formats import Sample
from reid.data.imageset import ImageSet, decode_image
from reid.errors import ReidError


@pytest.fixture
def samples(tmp_path):
    rng = np.random.default_rng(0)
    paths = []
    for i in range(6):
        path = tmp_path / "images" / f"{i:04d}_c1.jpg"
        path.parent.mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (24 + i, 12, 3), dtype=np.uint8)).save(path, "JPEG")
        paths.append(path)
    gray = tmp_path / "images" / "0006_c2.png"
    Image.new("L", (12, 24), 90).save(gray)  # converted to RGB: counted
    return [Sample(str(p), i, i % 2) for i, p in enumerate(paths + [gray])]


@pytest.fixture
def cache_dir(tmp_path):
    return tmp_path / "cache"


def count_decodes(monkeypatch) -> list:
    calls: list = []
    real = imageset_module.decode_image
    monkeypatch.setattr(imageset_module, "decode_image", lambda *a: calls.append(a) or real(*a))
    return calls


def forbid_decoding(monkeypatch) -> None:
    def fail(*_):
        raise AssertionError("decoded although the cache should have been read")

    monkeypatch.setattr(imageset_module, "decode_image", fail)
    monkeypatch.setattr(imageset_module, "check_header", fail)


def test_same_pixels_as_a_direct_decode_and_converted_count(samples, cache_dir):
    s = ImageSet(samples, height=16, width=8, cache="memory", cache_dir=cache_dir)
    direct = np.stack([decode_image(x.path, 16, 8)[0].transpose(2, 0, 1) for x in samples])
    assert torch.equal(s.images, torch.from_numpy(direct)) and s.converted == 1
    assert s.cache_path.parent == cache_dir / "decoded" and s.cache_path.stat().st_size == HEADER_BYTES + direct.size


@pytest.mark.parametrize("cache", ["memory", "stream"])
def test_second_build_reads_the_cache_without_decoding(samples, cache_dir, monkeypatch, cache):
    first = ImageSet(samples, height=16, width=8, cache="memory", cache_dir=cache_dir)
    forbid_decoding(monkeypatch)
    again = ImageSet(samples, height=16, width=8, cache=cache, cache_dir=cache_dir)
    assert again.converted == 1 and again.cache_path == first.cache_path
    assert torch.equal(again.all_images(), first.images)
    batch, idx = next(again.batches([[5, 0, 2]]))
    assert torch.equal(batch, first.images[[5, 0, 2]]) and idx.tolist() == [5, 0, 2]
    assert (again.images is None) == (cache == "stream")


def test_another_size_or_file_list_is_another_cache(samples, cache_dir):
    a = ImageSet(samples, height=16, width=8, cache_dir=cache_dir)
    b = ImageSet(samples, height=8, width=8, cache_dir=cache_dir)
    c = ImageSet(samples[:-1], height=16, width=8, cache_dir=cache_dir)
    assert len({a.cache_path, b.cache_path, c.cache_path}) == 3 and c.converted == 0


@pytest.mark.parametrize("change", ["mtime", "content"])
def test_touching_or_replacing_a_file_invalidates_the_cache(samples, cache_dir, monkeypatch, change):
    first = ImageSet(samples, height=16, width=8, cache_dir=cache_dir)
    path = Path(samples[2].path)
    if change == "mtime":
        st = path.stat()
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    else:
        Image.new("RGB", (12, 30), (255, 0, 0)).save(path, "JPEG")
    calls = count_decodes(monkeypatch)
    again = ImageSet(samples, height=16, width=8, cache_dir=cache_dir)
    assert again.cache_path != first.cache_path and len(calls) == len(samples)
    if change == "content":
        assert again.images[2, 0].float().mean() > 200 and torch.equal(again.images[3], first.images[3])


@pytest.mark.parametrize("damage", ["truncate", "header", "extend"])
def test_a_corrupt_or_truncated_cache_file_is_rebuilt(samples, cache_dir, monkeypatch, damage):
    first = ImageSet(samples, height=16, width=8, cache_dir=cache_dir)
    data = first.cache_path.read_bytes()
    first.cache_path.write_bytes({"truncate": data[: len(data) // 2], "header": b"garbage" + data[7:],
                                  "extend": data + b"\0"}[damage])
    calls = count_decodes(monkeypatch)
    again = ImageSet(samples, height=16, width=8, cache_dir=cache_dir)
    assert len(calls) == len(samples) and torch.equal(again.images, first.images) and again.converted == 1
    assert again.cache_path.read_bytes() == data


def test_a_failed_write_leaves_nothing_and_a_bad_image_still_names_the_file(samples, cache_dir):
    Path(samples[3].path).write_bytes(b"")
    with pytest.raises(ReidError, match="0003_c1.jpg"):
        ImageSet(samples, height=16, width=8, cache_dir=cache_dir)
    assert list((cache_dir / "decoded").iterdir()) == []

    def interrupted(out):
        out[0] = 1
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_cache(cache_file(cache_dir, "k"), "k", 2, 4, 4, interrupted)
    assert list((cache_dir / "decoded").iterdir()) == []


def test_a_killed_writer_leaves_no_file_that_is_read(samples, cache_dir, tmp_path):
    key = cache_key([s.path for s in samples], 16, 8)
    path = cache_file(cache_dir, key)
    script = (
        "import sys, time\n"
        "from reid.data.decoded_cache import write_cache\n"
        "def fill(out):\n"
        "    out[: len(out) // 2] = 255\n"
        "    print('half', flush=True)\n"
        "    time.sleep(60)\n"
        f"write_cache({str(path)!r}, {key!r}, {len(samples)}, 16, 8, fill)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "half"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    leftovers = list(path.parent.iterdir())
    assert [p.name for p in leftovers] == [f"{path.name}.tmp-{_owner_suffix().rpartition('-')[0]}-{proc.pid}"]  # only the temporary file
    assert open_cache(path, key, len(samples), 16, 8) is None
    s = ImageSet(samples, height=16, width=8, cache_dir=cache_dir)
    direct = np.stack([decode_image(x.path, 16, 8)[0].transpose(2, 0, 1) for x in samples])
    assert torch.equal(s.images, torch.from_numpy(direct))
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # the dead writer's file is gone


def _rewrite_keeping_size_and_mtime(path: Path, how: str) -> None:
    """Give ``path`` new pixels of the same byte size and put its mtime back, as ``cp -p`` / ``rsync -a`` / ``tar x`` do.

    ``inplace`` rewrites the same inode (``cp -p`` onto an existing file); ``rename`` writes a new file and
    renames it over the old one (``rsync -a``).
    """
    st = path.stat()
    tmp = path.with_name("new-" + path.name)
    Image.new("L", (12, 24), 250).save(tmp)  # an 8-bit PNG of the same size and length as the grey fixture
    assert tmp.stat().st_size == st.st_size
    if how == "inplace":
        path.write_bytes(tmp.read_bytes())
        tmp.unlink()
    else:
        os.replace(tmp, path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    after = path.stat()
    assert (after.st_size, after.st_mtime_ns) == (st.st_size, st.st_mtime_ns)


@pytest.mark.parametrize("mode", ["stat", "content"])
@pytest.mark.parametrize("how", ["inplace", "rename"])
def test_a_rewrite_that_restores_size_and_mtime_serves_the_new_pixels(samples, cache_dir, how, mode):
    first = ImageSet(samples, height=16, width=8, cache_dir=cache_dir, cache_key=mode)
    assert int(first.images[6].float().mean()) == 90
    _rewrite_keeping_size_and_mtime(Path(samples[6].path), how)
    again = ImageSet(samples, height=16, width=8, cache_dir=cache_dir, cache_key=mode)
    assert again.cache_path != first.cache_path
    assert int(again.images[6].float().mean()) == 250 and torch.equal(again.images[:6], first.images[:6])


def test_content_keys_survive_a_copy_with_new_inodes(samples, cache_dir, monkeypatch, tmp_path):
    first = ImageSet(samples, height=16, width=8, cache_dir=cache_dir, cache_key="content")
    for s in samples:  # the same bytes, written again: new inode, ctime and mtime, same path
        data = Path(s.path).read_bytes()
        Path(s.path).unlink()
        Path(s.path).write_bytes(data)
    forbid_decoding(monkeypatch)
    again = ImageSet(samples, height=16, width=8, cache_dir=cache_dir, cache_key="content")
    assert again.cache_path == first.cache_path and torch.equal(again.images, first.images)


def test_the_spec_chooses_the_key_mode():
    from reid.spec import load_spec_text

    assert load_spec_text('name = "x"\n[data]\ncache_key = "content"', source="x.toml").data.cache_key == "content"
    with pytest.raises(ReidError, match="cache_key"):
        load_spec_text('name = "x"\n[data]\ncache_key = "mtime"', source="x.toml")
