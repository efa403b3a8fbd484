"""Images of one split as tensors: decoded once into RAM, or streamed from disk.

:class:`ImageSet` holds pids, camera ids and paths and hands out uint8 batches
(N×3×H×W, resized to the spec's height × width on decode). With ``cache="memory"`` every
image is decoded and validated up front (in threads: PIL releases the GIL); with
``"stream"`` the headers (and JPEG / PNG end markers, which catch truncated files) are
checked at load time and images are decoded per batch by a ``DataLoader``; ``"auto"``
picks memory below :data:`AUTO_MEMORY_BYTES` of decoded pixels.

Decoding rules (:func:`decode_image`): zero-byte, unreadable, truncated or non-image
files raise :class:`ReidError` naming the file; grayscale, palette, RGBA (alpha dropped),
CMYK and 16-bit / 32-bit / float images are converted to 8-bit RGB and counted
(``ImageSet.converted``).

Example:
    >>> import tempfile, pathlib
    >>> from PIL import Image
    >>> from reid.data.formats import Sample
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "0001_c1.png"
    >>> Image.new("L", (10, 20), 128).save(p)
    >>> s = ImageSet([Sample(str(p), 1, 0)], height=8, width=4)
    >>> s.images.shape, s.converted, s.pids.tolist()
    (torch.Size([1, 3, 8, 4]), 1, [1])
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from reid.data.formats import Sample
from reid.errors import ReidError

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
        with Image.open(path) as img:
            img.load()
            rgb, converted = _to_rgb8(img)
            if rgb.size != (width, height):
                rgb = rgb.resize((width, height), Image.BILINEAR)
            return np.array(rgb, dtype=np.uint8), converted
    except UnidentifiedImageError:
        raise ReidError("not an image file PIL can read", where=str(path), fix=_FIX) from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
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
        with Image.open(path) as img:
            fmt = img.format
        with open(path, "rb") as f:
            f.seek(max(0, size - 1024))
            tail = f.read()
    except UnidentifiedImageError:
        raise ReidError("not an image file PIL can read", where=str(path), fix=_FIX) from None
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
        images: uint8 tensor N×3×H×W when cached in memory, else ``None``.
        converted: how many images were not 8-bit RGB and were converted (memory mode).

    Args:
        samples: the images (:class:`reid.data.formats.Sample`).
        height, width: decoded size.
        cache: "memory", "stream" or "auto".
        workers: DataLoader workers when streaming.
        pids: optional replacement pids (e.g. relabelled training ids).
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        height: int,
        width: int,
        cache: str = "auto",
        workers: int = 0,
        pids: Sequence[int] | None = None,
    ):
        self.paths = [s.path for s in samples]
        self.pids = torch.tensor(list(pids) if pids is not None else [s.pid for s in samples], dtype=torch.long)
        self.camids = torch.tensor([s.camid for s in samples], dtype=torch.long)
        self.height, self.width, self.workers = height, width, workers
        if cache == "auto":
            cache = "memory" if len(samples) * 3 * height * width < AUTO_MEMORY_BYTES else "stream"
        self.cache = cache
        self.converted = 0
        self.images: torch.Tensor | None = None
        if cache == "memory":
            self.images = self._decode_all()
        else:
            for p in self.paths:
                check_header(p)

    def _decode_all(self) -> torch.Tensor:
        out = torch.empty((len(self.paths), 3, self.height, self.width), dtype=torch.uint8)
        threads = min(8, os.cpu_count() or 1)
        with ThreadPoolExecutor(threads) as pool:
            for i, (arr, converted) in enumerate(pool.map(lambda p: decode_image(p, self.height, self.width), self.paths)):
                out[i] = torch.from_numpy(arr).permute(2, 0, 1)
                self.converted += converted
        return out

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def num_ids(self) -> int:
        """Number of distinct identities."""
        return int(self.pids.unique().numel())

    def batches(self, index_batches: Iterable[Sequence[int]]) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield ``(uint8 images N×3×H×W, indices)`` for each list of indices, in order.

        Memory mode indexes the cached tensor; stream mode decodes through a DataLoader with
        ``workers`` processes (order preserved).
        """
        if self.images is not None:
            for idx in index_batches:
                idx_t = torch.as_tensor(list(idx), dtype=torch.long)
                yield self.images[idx_t], idx_t
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
        """Every image as one uint8 tensor (decodes them when streaming)."""
        if self.images is not None:
            return self.images
        return torch.cat([b for b, _ in self.batches([range(i, min(i + 256, len(self))) for i in range(0, len(self), 256)])])
