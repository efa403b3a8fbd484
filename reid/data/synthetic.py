"""Procedural synthetic pedestrians: the embedded default dataset.

Renderer version 1: each identity is a person drawn from small attribute palettes (so many identities share
most attributes): build (height, width), skin tone, hair colour and style, upper garment
colour, sleeve length and pattern (plain / stripes / checks / logo, with a second colour),
lower garment type (trousers / shorts / skirt) and colour, shoe colour, an optional
backpack or shoulder bag (with its colour) and an optional cap (with its colour) — 15
independent identity attributes.

Each image adds the nuisance of real re-ID footage: the camera (its own background, colour
cast, brightness, blur, noise, JPEG quality and preferred walking direction), the
viewpoint (front / back / left / right: a backpack is a big block from the back and two
straps from the front, a logo shows only from the front, long hair covers the back of the
head), the pose (leg and arm swing), scale and position jitter, partial occlusion and
JPEG compression artefacts.

Renderer version 2 adds the nuisances that make real re-ID hard: families of near-duplicate identities
(:func:`make_person_v2`: the same person with one or two visible attributes changed), a strong
viewpoint change between cameras (camera 0 sees people mostly from the front, camera 1 from the
back), strong per-camera white balance and exposure plus per-image lighting (brightness, colour
shifts, shadows), low resolution and motion blur, passers-by (other identities of the set) behind
and in front of the person, street furniture shared by every camera (:func:`scene_props`), and
misaligned detector crops (loose, tight, shifted; feet or head cut off).

Renderer version 3, **the default** (``data.synth_version``), draws with version 2's code and other
constants (:class:`RenderProfile`): identities wear one of a few outfits shared by the whole
population (:func:`make_person_v3`: every identity has outfit-mates in the training and the
validation split, told apart by cut, carried things and body, rarely by a colour), footage sharper
than version 2's, fewer people and objects in front, but stronger per-image white balance and
worse-aligned crops. Versions 1 and 2 keep their pixels (``data.synth_version = 1`` or ``2``). Its
calibration against the training recipes and the colour-histogram baseline is measured in
BENCHMARKS.md ("Synthetic default: calibration", ``benchmarks/calibrate_synthetic.py``).

Everything is derived from ``numpy.random.default_rng([seed, ...])`` streams, so the same
seed gives byte-identical files and different seeds give different people.

Example:
    >>> from reid.data.synthetic import SynthParams, render_identity_images
    >>> imgs = render_identity_images(SynthParams(identities=3, images_per_identity=2, size=(64, 64)), pid=1)
    >>> [(cam, im.size) for cam, im in imgs]
    [(1, (64, 64)), (0, (64, 64))]
"""

from __future__ import annotations

import io
import math
import os
import shutil
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from functools import lru_cache
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from reid.data.split import per_camera_query, split_identities
from reid.errors import ReidError

#: The renderers: 1 (easy), 2 (hard, heavily degraded) and 3 (the default). Part of the cache key;
#: add a version (never change one) whenever the pixels change.
RENDERER_VERSIONS = (1, 2, 3)

#: Most processes :func:`write_market_layout` renders with by default (one per CPU up to this). The
#: Market-size set (``data.synth_preset``: 25,517 images at 256×128) is ~170 CPU-seconds of rendering.
RENDER_PROCESSES = 32

SKIN = [(240, 210, 185), (225, 185, 150), (195, 145, 105), (150, 100, 70), (100, 70, 50)]
HAIR_COLOURS = [(25, 22, 20), (65, 45, 30), (115, 80, 50), (195, 165, 100), (150, 150, 150), (140, 60, 30)]
HAIR_WEIGHTS = [0.35, 0.25, 0.15, 0.1, 0.08, 0.07]
HAIR_STYLES = ("short", "long", "bald", "ponytail")
# Dark, desaturated colours dominate (as in real footage); several are close to each other.
GARMENT = [
    (30, 30, 34), (60, 60, 66), (120, 120, 125), (215, 215, 210), (35, 45, 85), (60, 90, 150),
    (150, 35, 40), (45, 95, 60), (190, 170, 130), (95, 65, 45), (200, 180, 60), (190, 130, 160),
]
GARMENT_WEIGHTS = [0.16, 0.1, 0.1, 0.1, 0.1, 0.08, 0.07, 0.06, 0.07, 0.06, 0.05, 0.05]
LOWER = [(28, 28, 32), (55, 55, 60), (40, 55, 95), (70, 95, 140), (180, 165, 130), (90, 70, 50), (110, 115, 90)]
LOWER_WEIGHTS = [0.25, 0.15, 0.2, 0.15, 0.1, 0.08, 0.07]
SHOES = [(20, 20, 20), (230, 230, 230), (90, 60, 40), (110, 110, 120)]
PATTERNS = ("plain", "stripes", "checks", "logo")
LOWER_TYPES = ("trousers", "shorts", "skirt")
ACCESSORIES = ("none", "backpack", "bag")
VIEWS = ("front", "back", "left", "right")


@dataclass(frozen=True)
class SynthParams:
    """Everything that decides the pixels of a synthetic dataset (and so its cache key).

    ``size`` is (height, width). Identities are numbered 1..identities (Market style; 0 and
    -1 mean distractor and junk there). ``version`` picks the renderer (:data:`RENDERER_VERSIONS`).

    Example:
        >>> SynthParams(identities=3, version=2).key()
        'v2-n3x10-c2-s0-128x128'
    """

    identities: int = 279
    images_per_identity: int = 10
    cameras: int = 2
    seed: int = 0
    size: tuple[int, int] = (128, 128)
    version: int = 3

    def __post_init__(self) -> None:
        if self.version not in RENDERER_VERSIONS:
            raise ReidError(f"unknown synthetic renderer version {self.version}", where="data.synth_version",
                            fix=f"use one of {', '.join(map(str, RENDERER_VERSIONS))}")

    def key(self) -> str:
        """A folder name unique to the renderer version and these parameters."""
        h, w = self.size
        return f"v{self.version}-n{self.identities}x{self.images_per_identity}-c{self.cameras}-s{self.seed}-{h}x{w}"


@dataclass(frozen=True)
class Person:
    """The identity attributes of one synthetic pedestrian."""

    height: float
    build: float
    skin: tuple
    hair_colour: tuple
    hair_style: str
    upper: tuple
    upper_second: tuple
    pattern: str
    long_sleeves: bool
    lower_type: str
    lower: tuple
    shoes: tuple
    accessory: str
    accessory_colour: tuple
    cap: tuple | None


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


def _pick(rng: np.random.Generator, items, weights=None):
    p = None if weights is None else np.asarray(weights) / np.sum(weights)
    return items[int(rng.choice(len(items), p=p))]


def make_person(seed: int, pid: int) -> Person:
    """Draw the attributes of identity ``pid`` (deterministic in ``seed`` and ``pid``)."""
    return random_person(np.random.default_rng([seed, pid, 1]))


def random_person(rng: np.random.Generator) -> Person:
    """Draw every attribute of a person from the palettes with ``rng``."""
    upper = _pick(rng, GARMENT, GARMENT_WEIGHTS)
    second = _pick(rng, [c for c in GARMENT if c != upper])
    return Person(
        height=float(_pick(rng, [0.8, 0.85, 0.9, 0.95])),
        build=float(_pick(rng, [0.85, 1.0, 1.15])),
        skin=_pick(rng, SKIN),
        hair_colour=_pick(rng, HAIR_COLOURS, HAIR_WEIGHTS),
        hair_style=_pick(rng, HAIR_STYLES, [0.45, 0.3, 0.1, 0.15]),
        upper=upper,
        upper_second=second,
        pattern=_pick(rng, PATTERNS, [0.4, 0.2, 0.2, 0.2]),
        long_sleeves=bool(rng.random() < 0.6),
        lower_type=_pick(rng, LOWER_TYPES, [0.6, 0.2, 0.2]),
        lower=_pick(rng, LOWER, LOWER_WEIGHTS),
        shoes=_pick(rng, SHOES),
        accessory=_pick(rng, ACCESSORIES, [0.45, 0.3, 0.25]),
        accessory_colour=_pick(rng, GARMENT, GARMENT_WEIGHTS),
        cap=_pick(rng, GARMENT) if rng.random() < 0.2 else None,
    )


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


def _draw_person(d: ImageDraw.ImageDraw, p: Person, cx: float, feet: float, u: float, view: str, swing: float) -> None:
    """Draw person ``p`` of height ``u`` pixels standing at (cx, feet), seen from ``view``."""
    side = view in ("left", "right")
    facing = -1 if view == "left" else 1
    top = feet - u
    tw = (0.1 if side else 0.16) * u * p.build  # half torso width
    sy, hy = top + 0.17 * u, top + 0.53 * u  # shoulders, hips
    lw = max(1, int(0.09 * u * p.build))
    r_h = 0.065 * u
    hx, hyc = cx + (0.02 * u * facing if side else 0), top + r_h + 0.01 * u

    def rect(x0, y0, x1, y1, fill):
        x0, x1, y0, y1 = min(x0, x1), max(x0, x1), min(y0, y1), max(y0, y1)
        d.rectangle([math.floor(x0), math.floor(y0), max(math.floor(x0), round(x1)), max(math.floor(y0), round(y1))], fill=fill)  # floor: off-canvas negatives stay ordered

    # backpack behind the body (side view) and long hair behind the shoulders (front view)
    if p.accessory == "backpack" and side:
        bx = cx - facing * (tw + 0.06 * u)
        rect(bx, sy + 0.02 * u, cx, sy + 0.28 * u, p.accessory_colour)
    if p.hair_style == "long" and view == "front":
        rect(hx - 1.1 * r_h, hyc, hx + 1.1 * r_h, sy + 0.08 * u, p.hair_colour)

    # legs, lower garment, shoes
    spread = (0.14 if side else 0.04) * u * swing
    leg_x = [cx - 0.06 * u * p.build, cx + 0.06 * u * p.build] if not side else [cx, cx]
    feet_x = [leg_x[0] - spread, leg_x[1] + spread]
    leg_colour = {"trousers": p.lower, "shorts": p.skin, "skirt": p.skin}[p.lower_type]
    for x0, x1 in zip(leg_x, feet_x):
        d.line([(x0, hy), (x1, feet - 0.02 * u)], fill=leg_colour, width=lw)
        if p.lower_type == "shorts":
            d.line([(x0, hy), (x0 + (x1 - x0) * 0.4, hy + 0.4 * (feet - hy))], fill=p.lower, width=lw + 1)
        d.ellipse([x1 - 0.04 * u + 0.02 * u * facing * side, feet - 0.035 * u, x1 + 0.04 * u + 0.02 * u * facing * side, feet], fill=p.shoes)
    rect(cx - tw, hy - 0.03 * u, cx + tw, hy + 0.06 * u, p.lower)
    if p.lower_type == "skirt":
        d.polygon([(cx - tw, hy - 0.02 * u), (cx + tw, hy - 0.02 * u), (cx + tw + 0.05 * u, hy + 0.22 * u), (cx - tw - 0.05 * u, hy + 0.22 * u)], fill=p.lower)

    # torso and its pattern
    d.rounded_rectangle([int(cx - tw), int(sy), int(cx + tw), int(hy + 0.02 * u)], radius=max(1, int(0.03 * u)), fill=p.upper)
    if p.pattern == "stripes":
        period = max(3.0, 0.06 * u)
        y = sy + period / 2
        while y < hy:
            rect(cx - tw + 1, y, cx + tw - 1, y + period / 2 - 1, p.upper_second)
            y += period
    elif p.pattern == "checks":
        period = max(4.0, 0.07 * u)
        for k in range(int((hy - sy) / period) + 1):
            rect(cx - tw + 1, sy + k * period, cx + tw - 1, sy + k * period + max(1, period / 4), p.upper_second)
        for k in range(int(2 * tw / period) + 1):
            rect(cx - tw + k * period, sy + 1, cx - tw + k * period + max(1, period / 4), hy, p.upper_second)
    elif p.pattern == "logo" and view == "front":
        r = 0.05 * u
        d.ellipse([cx - r, sy + 0.1 * u - r, cx + r, sy + 0.1 * u + r], fill=p.upper_second)
        d.rectangle([int(cx - r / 2), int(sy + 0.1 * u - r / 2), int(cx + r / 2), int(sy + 0.1 * u + r / 2)], fill=p.upper)

    # accessories on top of the torso
    if p.accessory == "backpack" and view == "back":
        rect(cx - 0.8 * tw, sy + 0.03 * u, cx + 0.8 * tw, sy + 0.27 * u, p.accessory_colour)
    elif p.accessory == "backpack" and view == "front":
        for sx in (cx - 0.6 * tw, cx + 0.6 * tw):
            d.line([(sx, sy), (sx, sy + 0.2 * u)], fill=p.accessory_colour, width=max(1, int(0.025 * u)))

    # arms (sleeves in the upper colour, hands in skin)
    arm_w = max(1, int(0.065 * u * p.build))
    shoulders = [cx] if side else [cx - tw - 0.015 * u, cx + tw + 0.015 * u]
    for k, ax in enumerate(shoulders):
        dx = (0.12 * u * -swing) if side else (0.025 * u * (swing if k else -swing) + (0.02 * u if k else -0.02 * u))
        hand = (ax + dx, sy + 0.33 * u)
        elbow = (ax + dx * 0.45, sy + (0.33 if p.long_sleeves else 0.12) * u)
        d.line([(ax, sy + 0.02 * u), hand], fill=p.skin, width=arm_w)
        d.line([(ax, sy + 0.02 * u), elbow], fill=p.upper, width=arm_w + 1)
        d.ellipse([hand[0] - 0.02 * u, hand[1] - 0.02 * u, hand[0] + 0.02 * u, hand[1] + 0.02 * u], fill=p.skin)

    if p.accessory == "bag":  # shoulder bag: strap across the body, bag at the hip
        bag_x = cx + (tw + 0.02 * u) * (facing if side else 1)
        if not side:
            d.line([(cx - tw, sy + 0.01 * u), (bag_x, hy - 0.02 * u)], fill=p.accessory_colour, width=max(1, int(0.02 * u)))
        rect(bag_x - 0.05 * u, hy - 0.04 * u, bag_x + 0.05 * u, hy + 0.06 * u, p.accessory_colour)

    # head, hair, cap
    d.ellipse([hx - r_h, hyc - r_h, hx + r_h, hyc + r_h], fill=p.skin)
    if p.hair_style != "bald":
        box = [hx - r_h * 1.08, hyc - r_h * 1.12, hx + r_h * 1.08, hyc + r_h * 1.04]
        if view == "back":
            d.ellipse(box, fill=p.hair_colour)
            if p.hair_style == "long":
                rect(hx - r_h, hyc, hx + r_h, sy + 0.1 * u, p.hair_colour)
        elif side:
            d.pieslice(box, 180 if facing > 0 else -90, 270 if facing > 0 else 360, fill=p.hair_colour)
            d.pieslice(box, 90 if facing > 0 else 0, 180 if facing > 0 else 90, fill=p.hair_colour)
        else:
            d.chord(box, 180, 360, fill=p.hair_colour)
        if p.hair_style == "ponytail" and view != "front":
            tx = hx - facing * r_h if side else hx
            d.ellipse([tx - 0.025 * u, hyc, tx + 0.025 * u, hyc + 0.12 * u], fill=p.hair_colour)
        if p.hair_style == "long" and side:
            rect(hx - facing * 1.05 * r_h - 0.02 * u, hyc, hx - facing * 0.3 * r_h, sy + 0.08 * u, p.hair_colour)
    if p.cap is not None:
        d.chord([hx - r_h * 1.1, hyc - r_h * 1.25, hx + r_h * 1.1, hyc + r_h * 0.5], 180, 360, fill=p.cap)
        if view != "back":
            brim = (facing * r_h * 1.6, 0) if side else (-r_h * 0.9, r_h * 0.9)
            d.line([(hx + min(brim), hyc - 0.2 * r_h), (hx + max(brim) + (r_h * 0.2 if not side else 0), hyc - 0.2 * r_h)], fill=p.cap, width=max(1, int(0.02 * u)))


def render_image(person: Person, camera: Camera, rng: np.random.Generator, size: tuple[int, int]) -> bytes:
    """Render one JPEG of ``person`` seen by ``camera``; ``rng`` draws the per-image nuisance.

    The person is drawn in a 2:1 crop (:func:`crop_size`) that is resized to ``size``
    (height, width), as detector boxes are resized for a network.
    """
    h, w = crop_size(size)
    bh, bw = camera.background.shape[:2]
    oy, ox = int(rng.integers(0, bh - h + 1)), int(rng.integers(0, bw - w + 1))
    img = Image.fromarray(camera.background[oy : oy + h, ox : ox + w])
    d = ImageDraw.Draw(img)
    u = person.height * h * rng.uniform(0.92, 1.08)
    feet = h - rng.uniform(0.01, 0.05) * h
    u = min(u, feet - 1)
    cx = w / 2 + rng.uniform(-0.1, 0.1) * w
    view = VIEWS[int(rng.choice(4, p=camera.view_p))]
    _draw_person(d, person, cx, feet, u, view, swing=float(rng.uniform(-1, 1)))

    if rng.random() < 0.2:  # partial occlusion: something in front at the bottom or at a side
        colour = tuple(int(v) for v in rng.integers(20, 230, 3))
        if rng.random() < 0.5:
            top = h * (1 - rng.uniform(0.15, 0.35))
            d.rectangle([0, int(top), w, h], fill=colour)
        else:
            ow = w * rng.uniform(0.12, 0.25)
            x0 = cx + rng.choice([-1, 1]) * rng.uniform(0.05, 0.2) * w - ow / 2
            d.rectangle([int(x0), 0, int(x0 + ow), h], fill=colour)

    img = img.filter(ImageFilter.GaussianBlur(camera.blur * rng.uniform(0.7, 1.3))).resize(size[::-1], Image.BILINEAR)
    arr = np.asarray(img, dtype=np.float32)
    mean = arr.mean()
    arr = (arr - mean) * np.float32(camera.contrast * rng.uniform(0.9, 1.1)) + mean
    arr *= (camera.gains * (1 + rng.normal(0, 0.04, 3)) * camera.brightness * rng.uniform(0.85, 1.15)).astype(np.float32)
    arr += rng.standard_normal(arr.shape, dtype=np.float32) * camera.noise
    out = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    buf = io.BytesIO()
    out.save(buf, format="JPEG", quality=int(np.clip(camera.quality + rng.integers(-10, 11), 20, 95)))
    return buf.getvalue()


# Version 2: the nuisances that make real re-ID hard (see the module docstring).

#: Version-2 identities come in families of this many near-duplicates (:func:`make_person_v2`).
FAMILY_SIZE = 4
PROPS = ("pole", "bin", "sign", "bike", "car", "bench")
_PALETTES = {"upper": GARMENT, "upper_second": GARMENT, "accessory_colour": GARMENT, "cap": GARMENT, "pattern": PATTERNS,
             "lower_type": LOWER_TYPES, "lower": LOWER, "shoes": SHOES, "accessory": ACCESSORIES,
             "hair_style": HAIR_STYLES, "hair_colour": HAIR_COLOURS}


@dataclass(frozen=True)
class CameraV2(Camera):
    """A version-2 camera: a :class:`Camera` that also resolves only ``resolution`` of the crop's
    pixels (low-resolution footage) and motion-blurs ``motion`` of its images."""

    resolution: float = 1.0
    motion: float = 0.0


@dataclass(frozen=True)
class RenderProfile:
    """The difficulty constants of the version-2 family of renderers (versions 2 and 3 share the
    drawing code and differ only in these numbers and in how identities are made).

    Camera signature ranges (drawn once per camera): ``gains`` (± white balance), ``brightness``,
    ``contrast``, ``blur`` (σ at 128 px), ``noise`` (σ in grey levels), JPEG ``quality``,
    ``resolution`` (fraction of the crop's pixels resolved) and ``motion`` (fraction of images
    motion-blurred). Per image: ``white_balance`` (σ of the per-channel gain), ``exposure``
    (brightness factor range) and the rates of street furniture and passers-by behind and in front.
    """

    gains: float
    brightness: tuple[float, float]
    contrast: tuple[float, float]
    blur: tuple[float, float]
    noise: tuple[float, float]
    quality: tuple[int, int]
    resolution: tuple[float, float]
    motion: tuple[float, float]
    white_balance: float
    exposure: tuple[float, float]
    prop_behind: float
    passer_behind: float
    passer_front: float
    prop_front: float
    scale: tuple[float, float]
    feet: tuple[float, float]
    centre: float


#: Version 2: families of near-duplicates, heavy degradation (its pixels are frozen).
PROFILE_V2 = RenderProfile(
    gains=0.2, brightness=(0.7, 1.2), contrast=(0.75, 1.05), blur=(0.4, 1.2), noise=(5, 12),
    quality=(25, 60), resolution=(0.55, 0.85), motion=(0.1, 0.4), white_balance=0.06, exposure=(0.8, 1.2),
    prop_behind=0.6, passer_behind=0.3, passer_front=0.15, prop_front=0.15, scale=(0.85, 1.1), feet=(-0.08, 0.05),
    centre=0.15,
)
#: Version 3 (the default): outfits shared across the whole population, sharper footage.
PROFILE_V3 = RenderProfile(
    gains=0.2, brightness=(0.7, 1.2), contrast=(0.75, 1.05), blur=(0.2, 0.7), noise=(3, 8),
    quality=(45, 80), resolution=(0.85, 1.0), motion=(0.05, 0.15), white_balance=0.12, exposure=(0.8, 1.2),
    prop_behind=0.6, passer_behind=0.3, passer_front=0.08, prop_front=0.1, scale=(0.75, 1.15), feet=(-0.12, 0.08),
    centre=0.2,
)
PROFILES = {2: PROFILE_V2, 3: PROFILE_V3}


def visible_changes(p: Person) -> list[str]:
    """The attributes of ``p`` whose change shows in the pixels (a bag's colour only if there is a bag, …)."""
    keys = ["upper", "pattern", "long_sleeves", "lower_type", "lower", "shoes", "accessory", "cap", "hair_style"]
    keys += ["upper_second"] * (p.pattern != "plain") + ["accessory_colour"] * (p.accessory != "none")
    return keys + ["hair_colour"] * (p.hair_style != "bald")


def change_attribute(p: Person, key: str, rng: np.random.Generator) -> Person:
    """``p`` with attribute ``key`` set to another value (a cap may also come off).

    Example:
        >>> p = make_person(0, 1)
        >>> change_attribute(p, "long_sleeves", np.random.default_rng(0)).long_sleeves != p.long_sleeves
        True
    """
    if key == "long_sleeves":
        return replace(p, long_sleeves=not p.long_sleeves)
    if key == "cap" and p.cap is not None and rng.random() < 0.5:
        return replace(p, cap=None)
    taken = {getattr(p, key)} | ({p.upper, p.upper_second} if key in ("upper", "upper_second") else set())
    return replace(p, **{key: _pick(rng, [v for v in _PALETTES[key] if v not in taken])})


@lru_cache(maxsize=8192)
def make_person_v2(seed: int, pid: int) -> Person:
    """The version-2 identity ``pid``: consecutive identities (1, 2, …) form families of
    :data:`FAMILY_SIZE` near-duplicates; the first of a family is a random person, each other one
    is that person with one or two visible attributes changed (:func:`visible_changes`).

    Example:
        >>> a, b = make_person_v2(0, 1), make_person_v2(0, 2)
        >>> 1 <= sum(x != y for x, y in zip(a.__dict__.values(), b.__dict__.values())) <= 2
        True
    """
    family, member = divmod(pid - 1, FAMILY_SIZE)
    person = random_person(np.random.default_rng([seed, family, 21]))
    if member == 0:
        return person
    rng = np.random.default_rng([seed, pid, 22])
    changed: list[str] = []
    for _ in range(1 + int(rng.random() < 0.5)):
        key = _pick(rng, [k for k in visible_changes(person) if k not in changed])
        person = change_attribute(person, key, rng)
        changed.append(key)
    return person


#: Version-3 identities wear one of this many outfits, shared across the whole population.
OUTFITS = 16
BODY = ("height", "build", "skin", "hair_colour", "hair_style")
#: What tells version-3 outfit-mates apart: the cut and the carried things, rarely a colour.
OUTFIT_CHANGES = ("pattern", "long_sleeves", "lower_type", "accessory", "cap", "shoes")


def outfit_of(seed: int, pid: int) -> int:
    """Which of the :data:`OUTFITS` shared outfits version-3 identity ``pid`` wears."""
    return int(np.random.default_rng([seed, pid, 27]).integers(OUTFITS))


@lru_cache(maxsize=8192)
def make_person_v3(seed: int, pid: int) -> Person:
    """The version-3 identity ``pid``: one of :data:`OUTFITS` outfits shared by the whole population
    (:func:`outfit_of`; so every identity has near-duplicates in both the training and the validation
    split), changed in one or two of :data:`OUTFIT_CHANGES` (the cut, a carried thing or the shoes; never
    the garments' colours),
    worn by a body of its own (:data:`BODY`: height, build, skin, hair).

    Example:
        >>> people = [make_person_v3(0, pid) for pid in range(1, 200)]
        >>> len({p.upper for p in people}) < 12 < len(set(people)) == 199
        True
    """
    outfit = random_person(np.random.default_rng([seed, outfit_of(seed, pid), 28]))
    body = random_person(np.random.default_rng([seed, pid, 29]))
    person = replace(outfit, **{k: getattr(body, k) for k in BODY})
    rng = np.random.default_rng([seed, pid, 30])
    for key in rng.choice(OUTFIT_CHANGES, 1 + int(rng.random() < 0.5), replace=False):
        person = change_attribute(person, str(key), rng)
    return person


def scene_props(seed: int) -> list[tuple[str, tuple, tuple]]:
    """The street furniture (kind, main colour, second colour) of every camera: the same few
    objects stand behind and in front of many identities, in clothing-like colours."""
    rng = np.random.default_rng([seed, 23])
    palette = scene_palette(seed)
    return [(kind, _pick(rng, GARMENT), palette[int(rng.integers(len(palette)))]) for kind in PROPS]


def _draw_prop(d: ImageDraw.ImageDraw, prop: tuple[str, tuple, tuple], x: float, ground: float, u: float) -> None:
    """Draw ``prop`` standing on ``ground`` at ``x``, sized for a person ``u`` pixels tall."""
    kind, c1, c2 = prop

    def rect(x0, y0, x1, y1, fill):
        d.rectangle([int(x + x0 * u), int(ground - y1 * u), int(x + x1 * u), int(ground - y0 * u)], fill=fill)

    if kind == "pole":
        rect(-0.03, 0, 0.03, 1.4, c1)
    elif kind == "bin":
        rect(-0.12, 0, 0.12, 0.32, c1)
        rect(-0.13, 0.3, 0.13, 0.36, c2)
    elif kind == "sign":
        rect(-0.015, 0, 0.015, 0.9, c2)
        rect(-0.16, 0.62, 0.16, 0.9, c1)
    elif kind == "bike":
        for wx in (-0.2, 0.2):
            d.ellipse([x + (wx - 0.12) * u, ground - 0.24 * u, x + (wx + 0.12) * u, ground], outline=c2, width=max(1, int(0.02 * u)))
        d.line([(x - 0.2 * u, ground - 0.12 * u), (x, ground - 0.3 * u), (x + 0.2 * u, ground - 0.12 * u)], fill=c1, width=max(1, int(0.03 * u)))
    elif kind == "car":
        rect(-0.8, 0.08, 0.8, 0.4, c1)
        rect(-0.45, 0.38, 0.4, 0.58, c2)
        for wx in (-0.5, 0.5):
            d.ellipse([x + (wx - 0.1) * u, ground - 0.2 * u, x + (wx + 0.1) * u, ground], fill=(25, 25, 25))
    else:  # bench
        rect(-0.32, 0.18, 0.32, 0.24, c1)
        rect(-0.32, 0.3, 0.32, 0.42, c1)
        for lx in (-0.28, 0.24):
            rect(lx, 0, lx + 0.04, 0.2, c2)


@lru_cache(maxsize=64)
def make_camera_v2(seed: int, cam: int, size: tuple[int, int], profile: RenderProfile = PROFILE_V2) -> CameraV2:
    """Version-2 camera ``cam``: the scene of :func:`make_camera` with a strong white-balance and
    exposure signature, low resolution, motion blur (their ranges from ``profile``), and one dominant
    viewpoint (camera 0 sees people from the front, camera 1 from the back, cameras 2 and 3 from the sides, …)."""
    base = make_camera(seed, cam, size)
    rng = np.random.default_rng([seed, cam, 25])
    views = np.full(4, 0.05)
    views[cam % 4], views[(cam % 4) ^ 1] = 0.8, 0.1  # mostly one side, sometimes the opposite one
    return CameraV2(
        background=base.background,
        gains=1.0 + rng.uniform(-profile.gains, profile.gains, 3),
        brightness=float(rng.uniform(*profile.brightness)),
        contrast=float(rng.uniform(*profile.contrast)),
        blur=float(rng.uniform(*profile.blur)) * crop_size(size)[0] / 128,
        noise=float(rng.uniform(*profile.noise)),
        quality=int(rng.integers(*profile.quality)),
        view_p=tuple(float(v) for v in views),
        resolution=float(rng.uniform(*profile.resolution)),
        motion=float(rng.uniform(*profile.motion)),
    )


def motion_blur(arr: np.ndarray, length: int) -> np.ndarray:
    """Average each pixel of an H×W×C array with its ``length`` horizontal neighbours (a walking blur).

    Example:
        >>> motion_blur(np.array([[[0.0], [3.0], [0.0]]]), 3)[0, :, 0].tolist()
        [1.0, 1.0, 1.0]
    """
    padded = np.pad(arr, ((0, 0), (length // 2, length - 1 - length // 2), (0, 0)), mode="edge")
    c = np.concatenate([np.zeros_like(padded[:, :1]), np.cumsum(padded, axis=1)], axis=1)
    return (c[:, length:] - c[:, :-length]) / length


def render_image_v2(person: Person, camera: CameraV2, rng: np.random.Generator, size: tuple[int, int],
                    crowd: tuple[Person, Person], props: list, profile: RenderProfile = PROFILE_V2) -> bytes:
    """Render one version-2 JPEG of ``person`` seen by ``camera``; ``crowd`` are two passers-by
    (one may walk behind, one in front), ``props`` the scene's street furniture (:func:`scene_props`),
    ``profile`` the per-image nuisance rates."""
    h, w = crop_size(size)
    bh, bw = camera.background.shape[:2]
    oy, ox = int(rng.integers(0, bh - h + 1)), int(rng.integers(0, bw - w + 1))
    img = Image.fromarray(camera.background[oy : oy + h, ox : ox + w])
    d = ImageDraw.Draw(img)
    u = person.height * h * rng.uniform(*profile.scale)  # detector boxes too tight or too loose ...
    feet = h * (1 + rng.uniform(*profile.feet))  # ... and shifted: feet or head may be cut off
    cx = w / 2 + rng.uniform(-profile.centre, profile.centre) * w
    view = VIEWS[int(rng.choice(4, p=camera.view_p))]
    if rng.random() < profile.prop_behind:  # street furniture behind
        _draw_prop(d, props[int(rng.integers(len(props)))], rng.uniform(0, w), feet - rng.uniform(0, 0.15) * h, u)
    if rng.random() < profile.passer_behind:  # a passer-by behind
        side = rng.choice([-1, 1])
        _draw_person(d, crowd[0], cx + side * rng.uniform(0.3, 0.6) * w, feet - rng.uniform(0.03, 0.12) * h,
                     u * rng.uniform(0.75, 0.95), VIEWS[int(rng.integers(4))], swing=float(rng.uniform(-1, 1)))
    _draw_person(d, person, cx, feet, u, view, swing=float(rng.uniform(-1, 1)))
    front = rng.random()
    if front < profile.passer_front:  # a passer-by in front
        side = rng.choice([-1, 1])
        _draw_person(d, crowd[1], cx + side * rng.uniform(0.3, 0.55) * w, feet + rng.uniform(0, 0.1) * h,
                     u * rng.uniform(1.0, 1.15), VIEWS[int(rng.integers(4))], swing=float(rng.uniform(-1, 1)))
    elif front < profile.passer_front + profile.prop_front:  # street furniture in front
        _draw_prop(d, props[int(rng.integers(len(props)))], cx + rng.uniform(-0.4, 0.4) * w, h + rng.uniform(0, 0.1) * h, u)

    arr = np.asarray(img, dtype=np.float32)
    if rng.random() < 0.5:  # shadow or light falling across the crop
        ramp = np.linspace(rng.uniform(0.5, 1.1), rng.uniform(0.5, 1.1), h if rng.random() < 0.5 else w, dtype=np.float32)
        arr = arr * (ramp[:, None, None] if len(ramp) == h else ramp[None, :, None])
    res = camera.resolution * rng.uniform(0.8, 1.25)  # low resolution, upsampled to the network size
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).resize((max(6, round(w * res)), max(12, round(h * res))), Image.BILINEAR)
    img = img.resize(size[::-1], Image.BILINEAR).filter(ImageFilter.GaussianBlur(camera.blur * rng.uniform(0.7, 1.3)))
    arr = np.asarray(img, dtype=np.float32)
    if rng.random() < camera.motion:
        arr = motion_blur(arr, int(rng.integers(3, 4 + size[1] // 12)))
    mean = arr.mean()
    arr = (arr - mean) * np.float32(camera.contrast * rng.uniform(0.85, 1.15)) + mean
    arr = arr * (camera.gains * (1 + rng.normal(0, profile.white_balance, 3)) * camera.brightness
                 * rng.uniform(*profile.exposure)).astype(np.float32)
    arr += rng.standard_normal(arr.shape, dtype=np.float32) * camera.noise
    out = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    buf = io.BytesIO()
    out.save(buf, format="JPEG", quality=int(np.clip(camera.quality + rng.integers(-10, 11), 15, 95)))
    return buf.getvalue()


def make_person_for(params: SynthParams, pid: int) -> Person:
    """Identity ``pid`` as renderer ``params.version`` makes it."""
    return {1: make_person, 2: make_person_v2, 3: make_person_v3}[params.version](params.seed, pid)


def _passers_by(params: SynthParams, pid: int, j: int) -> tuple[Person, Person]:
    """Two other identities of the set who walk through image ``j`` of ``pid``."""
    n = params.identities
    others = np.random.default_rng([params.seed, pid, 26, j]).integers(1, max(2, n), 2)
    return tuple(make_person_for(params, int(q) + int(q >= pid and n > 1)) for q in others)


def camera_sequence(params: SynthParams, pid: int) -> list[int]:
    """Camera of each image of ``pid``: the first images cover distinct cameras, the rest are random."""
    rng = np.random.default_rng([params.seed, pid, 3])
    n, c = params.images_per_identity, params.cameras
    first = list(rng.permutation(c)[: min(n, c)])
    return [int(x) for x in first] + [int(x) for x in rng.integers(0, c, n - len(first))]


def render_identity_jpegs(params: SynthParams, pid: int) -> list[tuple[int, bytes]]:
    """(camera, JPEG bytes) of every image of identity ``pid``, drawn by renderer ``params.version``."""
    person = make_person_for(params, pid)
    if params.version in PROFILES:
        profile = PROFILES[params.version]
        cams = {c: make_camera_v2(params.seed, c, params.size, profile) for c in range(params.cameras)}
        props = scene_props(params.seed)
        return [(cam, render_image_v2(person, cams[cam], np.random.default_rng([params.seed, pid, 24, j]), params.size,
                                      _passers_by(params, pid, j), props, profile))
                for j, cam in enumerate(camera_sequence(params, pid))]
    cams = {c: make_camera(params.seed, c, params.size) for c in range(params.cameras)}
    out = []
    for j, cam in enumerate(camera_sequence(params, pid)):
        rng = np.random.default_rng([params.seed, pid, 4, j])
        out.append((cam, render_image(person, cams[cam], rng, params.size)))
    return out


def render_identity_images(params: SynthParams, pid: int) -> list[tuple[int, Image.Image]]:
    """(camera, decoded PIL image) of every image of identity ``pid`` (for previews and tests)."""
    return [(cam, Image.open(io.BytesIO(data)).convert("RGB")) for cam, data in render_identity_jpegs(params, pid)]


def _write_identity(args: tuple[SynthParams, int, str, list[str]]) -> None:
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

