"""Decoding and validation: bad files give a ReidError naming the file; odd modes are converted."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from reid.data.formats import Sample
from reid.data.imageset import ImageSet, check_header, decode_image
from reid.errors import ReidError


@pytest.fixture(autouse=True)
def reid_cache(tmp_path, monkeypatch):
    """Decoded-image caches of these tests go to a temporary directory, not the user's."""
    monkeypatch.setenv("REID_CACHE", str(tmp_path / "reid-cache"))
    return tmp_path / "reid-cache"


def write(path: Path, img: Image.Image, fmt: str) -> Path:
    img.save(path, fmt)
    return path


def test_converts_grayscale_rgba_palette_and_16_bit(tmp_path):
    gray = write(tmp_path / "g.png", Image.new("L", (8, 8), 100), "PNG")
    rgba = write(tmp_path / "a.png", Image.new("RGBA", (8, 8), (10, 20, 30, 0)), "PNG")
    pal = write(tmp_path / "p.png", Image.new("RGB", (8, 8), (200, 0, 0)).convert("P"), "PNG")
    deep = write(tmp_path / "d.png", Image.fromarray(np.full((8, 8), 65535, np.uint16)), "PNG")
    cmyk = write(tmp_path / "c.jpg", Image.new("CMYK", (8, 8), (0, 0, 0, 0)), "JPEG")
    for path, expected in ((gray, 100), (rgba, 10), (pal, 200), (deep, 255), (cmyk, 255)):
        arr, converted = decode_image(path, 16, 16)
        assert arr.shape == (16, 16, 3) and arr.dtype == np.uint8 and converted
        assert abs(int(arr[0, 0, 0]) - expected) <= 6
    s = ImageSet([Sample(str(p), 1, 0) for p in (gray, rgba, deep)], height=16, width=16, cache="memory")
    assert s.converted == 3 and s.images.dtype == torch.uint8


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("empty.jpg", b"", "empty"),
        ("text.jpg", b"this is not an image", "not an image"),
        ("trunc.jpg", "truncated", "truncated"),
    ],
)
def test_bad_files_name_the_file_and_the_fix(tmp_path, name, content, message):
    path = tmp_path / name
    if content == "truncated":
        buf = io.BytesIO()
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buf, "JPEG")
        content = buf.getvalue()[: len(buf.getvalue()) // 2]
    path.write_bytes(content)
    for check in (lambda: decode_image(path, 16, 16), lambda: check_header(path)):
        with pytest.raises(ReidError, match=message) as e:
            check()
        assert name in str(e.value) and "Fix:" in str(e.value)


def test_memory_cache_fails_up_front_and_stream_checks_headers(tmp_path):
    good = write(tmp_path / "ok.jpg", Image.new("RGB", (8, 16), (1, 2, 3)), "JPEG")
    bad = tmp_path / "zero.jpg"
    bad.write_bytes(b"")
    samples = [Sample(str(good), 1, 0), Sample(str(bad), 2, 0)]
    for cache in ("memory", "stream"):
        with pytest.raises(ReidError, match="zero.jpg"):
            ImageSet(samples, height=16, width=16, cache=cache)


def test_stream_and_memory_give_the_same_batches(tmp_path):
    paths = []
    for i in range(5):
        paths.append(write(tmp_path / f"{i}.png", Image.new("RGB", (10, 20), (i * 40, 0, 255 - i * 40)), "PNG"))
    samples = [Sample(str(p), i, i % 2) for i, p in enumerate(paths)]
    mem = ImageSet(samples, height=16, width=16, cache="memory")
    stream = ImageSet(samples, height=16, width=16, cache="stream")
    order = [[4, 0], [2, 3, 1]]
    for (a, ia), (b, ib) in zip(mem.batches(order), stream.batches(order)):
        assert torch.equal(a, b) and torch.equal(ia, ib)
    assert stream.images is None and torch.equal(stream.all_images(), mem.images)
    assert mem.camids.tolist() == [0, 1, 0, 1, 0] and mem.num_ids == 5
    assert stream.cache_path == mem.cache_path is not None  # streaming memory-maps the same cache file


def test_without_a_writable_cache_memory_decodes_and_stream_reads_jpegs(tmp_path, caplog):
    paths = [write(tmp_path / f"{i}.png", Image.new("L", (10, 20), 50 * i), "PNG") for i in range(3)]
    samples = [Sample(str(p), i, 0) for i, p in enumerate(paths)]
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    reference = ImageSet(samples, height=16, width=8, cache="memory")
    for cache in ("memory", "stream"):
        s = ImageSet(samples, height=16, width=8, cache=cache, cache_dir=not_a_dir)
        assert s.cache_path is None and torch.equal(s.all_images(), reference.images)
        assert s.converted == (3 if cache == "memory" else 0)
    assert "cannot write the decoded-image cache" in caplog.text


def test_large_images_decoded_in_threads_never_leak_pils_warning(tmp_path):
    """Decoding threads silence PIL's large-image warning in turns: with ``-W always`` none reaches stderr
    (without the lock, a few of 2,000 opens in 8 threads leaked it)."""
    import subprocess
    import sys

    script = f"""
import struct, zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from reid.data.imageset import check_header

def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

header = struct.pack(">IIBBBBB", 10_000, 10_000, 8, 2, 0, 0, 0)  # past PIL's warning limit, under its error limit
png = b"\\x89PNG\\r\\n\\x1a\\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(bytes(64))) + chunk(b"IEND", b"")
paths = [Path({str(tmp_path)!r}) / f"huge{{i}}.png" for i in range(2000)]
for p in paths:
    p.write_bytes(png)

with ThreadPoolExecutor(8) as pool:  # the header check opens each image as decoding does
    list(pool.map(check_header, paths))
"""
    done = subprocess.run([sys.executable, "-W", "always", "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "DecompressionBomb" not in done.stderr
