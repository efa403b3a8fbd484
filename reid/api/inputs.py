"""A user's images, whatever form they come in, as named uint8 batches at the model's input size.

Accepted: image file paths, folders (every image file below them, recursively, in sorted order), PIL
images, uint8 numpy arrays (H×W×3 or H×W), torch tensors (3×H×W uint8, or float in [0, 1]), and
lists mixing them. Files are decoded exactly as datasets are (:func:`reid.data.imageset.decode_image`:
8-bit RGB, bilinear resize), so a dataset image embeds to the same features either way.

Batches are decoded lazily, a batch at a time (in threads), so memory stays bounded by the batch
size whatever the number of images.

Example:
    >>> import numpy as np
    >>> items = collect_images([np.zeros((20, 10, 3), dtype=np.uint8)])
    >>> [(b.shape, names) for b, names in image_batches(items, height=8, width=4, batch_size=4)]
    [(torch.Size([1, 3, 8, 4]), ['<array 0>'])]
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from PIL import Image

from reid.data.formats import is_image_file
from reid.data.imageset import decode_image
from reid.errors import ReidError


@dataclass(frozen=True)
class ImageItem:
    """One image to embed: a display name (the path for files) and where its pixels come from."""

    name: str
    source: Any  # a Path, or an in-memory PIL image / array / tensor

    def decode(self, height: int, width: int) -> np.ndarray:
        """H×W×3 uint8 at the given size."""
        if isinstance(self.source, Path):
            return decode_image(self.source, height, width)[0]
        img = _to_pil(self.source, self.name)
        if img.size != (width, height):
            img = img.resize((width, height), Image.BILINEAR)
        return np.array(img, dtype=np.uint8)


def _to_pil(obj: Any, name: str) -> Image.Image:
    if isinstance(obj, Image.Image):
        return obj.convert("RGB")
    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu()
        if t.ndim != 3 or t.shape[0] not in (1, 3):
            raise ReidError(f"an image tensor must be C×H×W with 1 or 3 channels, got shape {tuple(t.shape)}", where=name)
        if t.is_floating_point():
            t = (t.clamp(0, 1) * 255).round()
        obj = t.to(torch.uint8).permute(1, 2, 0).numpy()
    if isinstance(obj, np.ndarray):
        if obj.dtype != np.uint8:
            raise ReidError(f"an image array must be uint8, got {obj.dtype}", where=name,
                            fix="convert it with (x * 255).round().astype(np.uint8) for values in [0, 1]")
        if obj.ndim == 3 and obj.shape[2] == 1:
            obj = obj[:, :, 0]
        if obj.ndim == 2:
            return Image.fromarray(obj, "L").convert("RGB")
        if obj.ndim != 3 or obj.shape[2] != 3:
            raise ReidError(f"an image array must be H×W×3 or H×W, got shape {obj.shape}", where=name)
        return Image.fromarray(obj, "RGB")
    raise ReidError(f"cannot embed an object of type {type(obj).__name__}", where=name,
                    fix="pass image paths, folders, PIL images, uint8 arrays or tensors")


def _images_below(folder: Path) -> list[Path]:
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found += [Path(dirpath) / f for f in filenames if is_image_file(Path(f))]
    return sorted(found)


def collect_images(inputs: Any) -> list[ImageItem]:
    """Expand ``inputs`` (one input or a sequence of them) into :class:`ImageItem` s, checking paths exist.

    Raises:
        ReidError: a path that does not exist, a folder without images, nothing given, an unsupported object.
    """
    if isinstance(inputs, (str, Path, Image.Image, np.ndarray)) or (isinstance(inputs, torch.Tensor) and inputs.ndim == 3):
        inputs = [inputs]
    elif isinstance(inputs, torch.Tensor) and inputs.ndim == 4:
        inputs = list(inputs)
    items: list[ImageItem] = []
    for i, obj in enumerate(inputs):
        if isinstance(obj, (str, Path)):
            path = Path(obj).expanduser()
            if path.is_dir():
                files = _images_below(path)
                if not files:
                    raise ReidError("no image files in this folder", where=str(path),
                                    fix="give a folder holding .jpg / .png images (sub-folders are searched too)")
                items += [ImageItem(str(f), f) for f in files]
            elif path.is_file():
                items.append(ImageItem(str(path), path))
            else:
                raise ReidError("a symbolic link that leads nowhere (dangling, or a loop)" if path.is_symlink()
                                else "no such file or folder", where=str(path), fix="check the path")
        else:
            kind = "PIL image" if isinstance(obj, Image.Image) else ("tensor" if isinstance(obj, torch.Tensor) else "array")
            items.append(ImageItem(f"<{kind} {i}>", obj))
    if not items:
        raise ReidError("no images given", fix="pass image paths, a folder, PIL images, arrays or tensors")
    return items


def image_batches(items: Sequence[ImageItem], height: int, width: int, batch_size: int,
                  threads: int | None = None) -> Iterator[tuple[torch.Tensor, list[str]]]:
    """``(uint8 N×3×H×W, names)`` for consecutive batches of ``items``, decoded in threads one batch ahead."""
    threads = threads or min(8, os.cpu_count() or 1)

    def decode(batch: Sequence[ImageItem]) -> torch.Tensor:
        arrays = list(pool.map(lambda item: item.decode(height, width), batch))
        return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()

    with ThreadPoolExecutor(threads) as pool, ThreadPoolExecutor(1) as ahead:
        starts = range(0, len(items), batch_size)
        pending = ahead.submit(decode, items[0:batch_size]) if len(items) else None
        for s in starts:
            images = pending.result()
            nxt = s + batch_size
            pending = ahead.submit(decode, items[nxt : nxt + batch_size]) if nxt < len(items) else None
            yield images, [item.name for item in items[s : s + batch_size]]
