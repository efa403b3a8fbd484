"""The cameras and their scenes: backgrounds, colour casts, optics, viewpoints, street furniture, image order.

Each image of a person carries its camera's nuisance, as real re-ID footage does: its own
background, colour cast, brightness, blur, noise, JPEG quality and preferred walking direction
(the viewpoint: front / back / left / right). Every camera paints its scene from one palette
(:func:`scene_palette`) and shares the street furniture (:func:`scene_props`), so backgrounds say
little about the camera.

Example:
    >>> cam = make_camera(0, 1, (64, 64))
    >>> cam.background.shape, crop_size((64, 64)), len(scene_props(0)) == len(PROPS)
    ((89, 384, 3), (64, 32), True)
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw

from reid.data.synthetic.attributes import GARMENT, pick
from reid.data.synthetic.render import SynthParams

VIEWS = ("front", "back", "left", "right")
PROPS = ("pole", "bin", "sign", "bike", "car", "bench")


@dataclass(frozen=True)
class Camera:
    """The per-camera nuisance: background, colour cast, exposure, optics and walking direction."""

    background: np.ndarray
    gains: np.ndarray
    brightness: float
    contrast: float
    blur: float
    noise: float
    quality: int
    view_p: tuple


def crop_size(size: tuple[int, int]) -> tuple[int, int]:
    """The (height, width) people are drawn at: a 2:1 detector crop, resized to ``size`` at the end."""
    h = size[0]
    return h, max(8, h // 2)


def scene_palette(seed: int) -> list[tuple[int, int, int]]:
    """The dull colours (walls, floors, shop fronts) every camera's scene is painted with."""
    rng = np.random.default_rng([seed, 5])
    base = rng.integers(50, 200, 16)
    return [tuple(int(np.clip(b + v, 0, 255)) for v in rng.integers(-45, 46, 3)) for b in base]


@lru_cache(maxsize=64)
def make_camera(seed: int, cam: int, size: tuple[int, int]) -> Camera:
    """Build camera ``cam``: a wide cluttered scene (crops of it vary per image) and its image pipeline.

    All cameras paint their scenes from one palette (:func:`scene_palette`), so the
    background colours say little about the camera; the colour cast, exposure and optics
    are the camera's signature.
    """
    rng = np.random.default_rng([seed, cam, 2])
    h, w = crop_size(size)
    bh, bw = int(h * 1.4), int(w * 12)

    palette = scene_palette(seed)

    def dull() -> tuple[int, int, int]:
        base = palette[int(rng.integers(len(palette)))]
        return tuple(int(np.clip(b + v, 0, 255)) for b, v in zip(base, rng.integers(-12, 13, 3)))

    bg = Image.new("RGB", (bw, bh))
    d = ImageDraw.Draw(bg)
    x = 0
    while x < bw:  # building fronts of varying width, each with its own wall and pavement
        seg = int(rng.integers(w // 4, w))
        horizon = int(bh * rng.uniform(0.45, 0.7))
        d.rectangle([x, 0, x + seg, horizon], fill=dull())
        d.rectangle([x, horizon, x + seg, bh], fill=dull())
        x += seg
    for _ in range(int(rng.integers(30, 40))):  # windows, doors, posters, shop fronts
        x0, y0 = rng.integers(0, bw), rng.integers(0, bh // 2)
        x1, y1 = x0 + rng.integers(w // 4, w), y0 + rng.integers(bh // 12, bh // 2)
        d.rectangle([int(x0), int(y0), int(x1), int(y1)], fill=dull())
    for _ in range(int(rng.integers(4, 8))):  # paving lines
        y = int(rng.integers(bh // 2, bh))
        d.line([0, y, bw, y + int(rng.integers(-bh // 8, bh // 8))], fill=dull(), width=1)
    arr = np.asarray(bg, dtype=np.float32)
    arr += rng.normal(0, 6, arr.shape)  # texture
    views = np.roll(np.array([0.5, 0.3, 0.1, 0.1]), cam)  # each camera sees people mostly from one side
    return Camera(
        background=np.clip(arr, 0, 255).astype(np.uint8),
        gains=1.0 + rng.uniform(-0.08, 0.08, 3),
        brightness=float(rng.uniform(0.85, 1.15)),
        contrast=float(rng.uniform(0.85, 1.1)),
        blur=float(rng.uniform(0.3, 1.0)) * h / 128,
        noise=float(rng.uniform(3, 9)),
        quality=int(rng.integers(40, 80)),
        view_p=tuple(float(v) for v in views),
    )


def scene_props(seed: int) -> list[tuple[str, tuple, tuple]]:
    """The street furniture (kind, main colour, second colour) of every camera: the same few
    objects stand behind and in front of many identities, in clothing-like colours."""
    rng = np.random.default_rng([seed, 23])
    palette = scene_palette(seed)
    return [(kind, pick(rng, GARMENT), palette[int(rng.integers(len(palette)))]) for kind in PROPS]


def camera_sequence(params: SynthParams, pid: int) -> list[int]:
    """Camera of each image of ``pid``: the first images cover distinct cameras, the rest are random."""
    rng = np.random.default_rng([params.seed, pid, 3])
    n, c = params.images_per_identity, params.cameras
    first = list(rng.permutation(c)[: min(n, c)])
    return [int(x) for x in first] + [int(x) for x in rng.integers(0, c, n - len(first))]
