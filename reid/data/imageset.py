"""Images of one split as tensors: decoded once per dataset and size, then read into RAM or memory-mapped.

:class:`ImageSet` holds pids, camera ids and paths and hands out uint8 batches
(N×3×H×W, resized to the spec's height × width on decode). The first build of a split
decodes every image (in threads: PIL releases the GIL), validating each, into a
persistent file in the reid cache (:mod:`reid.data.decoded_cache`, keyed by the file
list, each file's ``stat`` identity or, with ``cache_key="content"``, its bytes, and the
size); later builds read that file instead of
decoding. With ``cache="memory"`` the pixels are read into RAM; with ``"stream"`` the file
is memory-mapped and batches are read from it (sets larger than RAM stream from the page
cache); ``"auto"`` picks memory below :data:`AUTO_MEMORY_BYTES` of decoded pixels. Where
the cache cannot be written (read-only or full disk) a warning says so and memory mode
decodes into RAM, stream mode checks headers (and JPEG / PNG end markers, which catch
truncated files) and decodes per batch in a ``DataLoader``, as without a cache.

Decoding rules (:func:`decode_image`): zero-byte, unreadable, truncated or non-image
files raise :class:`ReidError` naming the file; grayscale, palette, RGBA (alpha dropped),
CMYK and 16-bit / 32-bit / float images are converted to 8-bit RGB and counted
(``ImageSet.converted``, also remembered by the cache file).

Progress: decoding reports to an optional :data:`Progress` factory, ``progress(label, total)``
→ a context manager yielding ``advance(n)``; the CLI passes a rich bar
(:func:`reid.cli.progress.progress_bar`), so this layer prints nothing itself.

Example:
    >>> import tempfile, pathlib
    >>> from PIL import Image
    >>> from reid.data.formats import Sample
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "0001_c1.png"
    >>> Image.new("L", (10, 20), 128).save(p)
    >>> cache = tempfile.mkdtemp()
    >>> s = ImageSet([Sample(str(p), 1, 0)], height=8, width=4, cache_dir=cache)
    >>> s.images.shape, s.converted, s.pids.tolist()
    (torch.Size([1, 3, 8, 4]), 1, [1])
    >>> again = ImageSet([Sample(str(p), 1, 0)], height=8, width=4, cache_dir=cache)  # read, not decoded
    >>> again.cache_path == s.cache_path and again.converted == 1
    True
"""

from __future__ import annotations

import contextlib
import warnings
import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, ContextManager, Iterable, Iterator, Sequence

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from reid.data.cache_dir import default_cache_dir
from reid.data.decoded_cache import build_cache, cache_file
from reid.data.decoded_cache import cache_key as make_cache_key
from reid.data.formats import Sample
from reid.errors import ReidError

log = logging.getLogger(__name__)

Progress = Callable[[str, int], ContextManager[Callable[[int], None]]]
"""``progress(label, total)`` → a context manager yielding ``advance(n)`` (e.g. a progress bar)."""


@contextlib.contextmanager
def no_progress(label: str, total: int) -> Iterator[Callable[[int], None]]:
    """The :data:`Progress` that shows nothing."""
    yield lambda n: None


#: "auto" cache mode keeps a split in RAM when its decoded pixels take less than this.
AUTO_MEMORY_BYTES = 2 * 1024**3

_FIX = "delete or replace the file (re-copy the dataset if many are affected)"


def _to_rgb8(img: Image.Image) -> tuple[Image.Image, bool]:
    """``img`` as 8-bit RGB, and whether it needed converting."""
    if img.mode == "RGB":
        return img, False
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        if img.mode == "F":
            top = max(float(arr.max()), 1e-12) if arr.max() > 1 else 1.0
        gray = np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(gray, "L").convert("RGB"), True
    if img.mode in ("P", "PA") and "transparency" in img.info:
        img = img.convert("RGBA")
    return img.convert("RGB"), True


_WARNING_FILTERS = threading.Lock()  # catch_warnings swaps process-wide state: decoding threads take turns


def _open_image(path: Path) -> Image.Image:
    """``Image.open`` without PIL's warning for large images (they are resized right away); images past PIL's
    hard limit still raise :class:`PIL.Image.DecompressionBombError`. Safe from the decoding threads: without
    the lock, one thread leaving ``catch_warnings`` restores the filters while another is still opening."""
    with _WARNING_FILTERS, warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        return Image.open(path)


def _too_large(path: Path, error: Exception) -> ReidError:
    return ReidError(f"image too large to decode safely ({error})".split(", could be")[0] + ")", where=str(path),
                     fix="shrink the image, or raise PIL.Image.MAX_IMAGE_PIXELS if you trust it")


def decode_image(path: str | Path, height: int, width: int) -> tuple[np.ndarray, bool]:
    """Decode ``path`` to an H×W×3 uint8 array (bilinear resize) and say whether it was converted.

    Raises:
        ReidError: the file is missing, empty, not an image, truncated or corrupt.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as e:
        raise ReidError(f"cannot read image ({e.strerror})", where=str(path), fix="check the file exists and is readable") from None
    if size == 0:
        raise ReidError("image file is empty (0 bytes)", where=str(path), fix=_FIX)
    try:
        with _open_image(path) as img:
            img.load()
            rgb, converted = _to_rgb8(img)
            if rgb.size != (width, height):
                rgb = rgb.resize((width, height), Image.BILINEAR)
            return np.array(rgb, dtype=np.uint8), converted
    except UnidentifiedImageError:
        raise ReidError("not an image file PIL can read", where=str(path), fix=_FIX) from None
    except Image.DecompressionBombError as e:
        raise _too_large(path, e) from None
    except (OSError, SyntaxError, ValueError) as e:
        raise ReidError(f"corrupt or truncated image ({e})", where=str(path), fix=_FIX) from None


def check_header(path: str | Path) -> None:
    """Cheap validation for streaming: non-empty, a readable image header, and for JPEG / PNG an end marker.

    Raises:
        ReidError: naming the file.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        if size == 0:
            raise ReidError("image file is empty (0 bytes)", where=str(path), fix=_FIX)
        with _open_image(path) as img:
            fmt = img.format
        with open(path, "rb") as f:
            f.seek(max(0, size - 1024))
            tail = f.read()
    except UnidentifiedImageError:
        raise ReidError("not an image file PIL can read", where=str(path), fix=_FIX) from None
    except Image.DecompressionBombError as e:
        raise _too_large(path, e) from None
    except OSError as e:
        raise ReidError(f"cannot read image ({e})", where=str(path), fix=_FIX) from None
    if (fmt == "JPEG" and b"\xff\xd9" not in tail) or (fmt == "PNG" and b"IEND" not in tail):
        raise ReidError(f"truncated {fmt} file (no end marker)", where=str(path), fix=_FIX)


class _DecodeDataset(torch.utils.data.Dataset):
    """Decodes one image per index (for streaming through a DataLoader)."""

    def __init__(self, paths: Sequence[str], height: int, width: int):
        self.paths, self.height, self.width = paths, height, width

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        arr, _ = decode_image(self.paths[i], self.height, self.width)
        return torch.from_numpy(arr).permute(2, 0, 1).contiguous()


def _stack(items: list[torch.Tensor]) -> torch.Tensor:
    return torch.stack(items)


class ImageSet:
    """The images, identities and cameras of one split.

    Attributes:
        paths: image paths (list of str).
        pids: LongTensor of identities (train: relabelled 0..C-1; query/gallery: original).
        camids: LongTensor of camera ids (0-based).
        images: uint8 tensor N×3×H×W when held in RAM (memory mode), else ``None``.
        converted: how many images were not 8-bit RGB and were converted (counted when
            decoded; restored from the cache file; 0 when streaming JPEGs without a cache).
        cache_path: the decoded-image cache file in use, or ``None`` where none could be written.

    Args:
        samples: the images (:class:`reid.data.formats.Sample`).
        height, width: decoded size.
        cache: "memory", "stream" or "auto".
        workers: DataLoader workers when streaming JPEGs (no decoded cache).
        pids: optional replacement pids (e.g. relabelled training ids).
        cache_dir: root of the decoded-image cache (default
            :func:`reid.data.cache_dir.default_cache_dir`, i.e. ``$REID_CACHE``).
        progress: told how decoding advances (see :data:`Progress`); nothing is shown by default.
        cache_key: how the cache knows a file is unchanged, ``"stat"`` or ``"content"``
            (:func:`reid.data.decoded_cache.cache_key`; ``data.cache_key`` in a spec).
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        height: int,
        width: int,
        cache: str = "auto",
        workers: int = 0,
        pids: Sequence[int] | None = None,
        cache_dir: str | Path | None = None,
        progress: Progress = no_progress,
        cache_key: str = "stat",
    ):
        self.paths = [s.path for s in samples]
        self._progress = progress
        self._key_mode = cache_key
        self.pids = torch.tensor(list(pids) if pids is not None else [s.pid for s in samples], dtype=torch.long)
        self.camids = torch.tensor([s.camid for s in samples], dtype=torch.long)
        self.height, self.width, self.workers = height, width, workers
        if cache == "auto":
            cache = "memory" if len(samples) * 3 * height * width < AUTO_MEMORY_BYTES else "stream"
        self.cache = cache
        self.converted = 0
        self.images: torch.Tensor | None = None
        self._mapped: np.ndarray | None = None
        cached = self._open_or_build_cache(cache_dir)
        self.cache_path = cached.path if cached is not None else None
        if cached is not None:
            self.converted = cached.converted
            if cache == "memory":
                self.images = cached.load()
            else:
                self._mapped = cached.map()
        elif cache == "memory":
            self.images = torch.empty((len(self.paths), 3, height, width), dtype=torch.uint8)
            self.converted = self._decode_into(self.images.numpy())
        else:
            for p in self.paths:
                check_header(p)

    def _open_or_build_cache(self, cache_dir: str | Path | None):
        """The validated decoded-image cache file, decoding into a new one if needed; ``None`` if it cannot be written."""
        if not self.paths:
            return None
        if cache_dir is None:
            cache_dir = default_cache_dir()
        try:
            key = make_cache_key(self.paths, self.height, self.width, self._key_mode)
        except OSError:
            return None  # a missing file: decoding (or the header check) names it
        path, shape = cache_file(cache_dir, key), (len(self.paths), self.height, self.width)
        try:
            return build_cache(path, key, *shape, fill=self._decode_into, on_wait=lambda owner: log.info(
                "reid: waiting for %s, which decodes these images into %s", owner, path))
        except OSError as e:
            log.warning("reid: cannot write the decoded-image cache in %s (%s); decoding without it",
                        Path(cache_dir) / "decoded", e.strerror or e)
            return None

    def _decode_into(self, out: np.ndarray) -> int:
        """Decode every image into ``out`` (N×3×H×W uint8) and return how many were converted."""
        converted = 0
        threads = min(8, os.cpu_count() or 1)
        with ThreadPoolExecutor(threads) as pool, self._progress(f"decoding {len(self.paths)} images", len(self.paths)) as advance:
            for i, (arr, conv) in enumerate(pool.map(lambda p: decode_image(p, self.height, self.width), self.paths)):
                out[i] = arr.transpose(2, 0, 1)
                converted += conv
                advance(1)
        return converted

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def num_ids(self) -> int:
        """Number of distinct identities."""
        return int(self.pids.unique().numel())

    def batches(self, index_batches: Iterable[Sequence[int]]) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield ``(uint8 images N×3×H×W, indices)`` for each list of indices, in order.

        Memory mode indexes the tensor in RAM, stream mode the memory-mapped cache file;
        without a cache file, streaming decodes through a DataLoader with ``workers``
        processes (order preserved).
        """
        if self.images is not None or self._mapped is not None:
            for idx in index_batches:
                idx_t = torch.as_tensor(list(idx), dtype=torch.long)
                if self.images is not None:
                    yield self.images[idx_t], idx_t
                else:
                    yield torch.from_numpy(self._mapped[idx_t.numpy()]), idx_t
            return
        index_batches = [list(b) for b in index_batches]
        loader = torch.utils.data.DataLoader(
            _DecodeDataset(self.paths, self.height, self.width),
            batch_sampler=index_batches,
            num_workers=self.workers,
            collate_fn=_stack,
            persistent_workers=False,
        )
        for idx, batch in zip(index_batches, loader):
            yield batch, torch.as_tensor(idx, dtype=torch.long)

    def all_images(self) -> torch.Tensor:
        """Every image as one uint8 tensor (read from the cache file or decoded when streaming)."""
        if self.images is not None:
            return self.images
        if self._mapped is not None:
            return torch.from_numpy(np.array(self._mapped))
        return torch.cat([b for b, _ in self.batches([range(i, min(i + 256, len(self))) for i in range(0, len(self), 256)])])
