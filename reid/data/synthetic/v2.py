"""Renderer version 2: the nuisances that make real re-ID hard (``data.synth_version = 2``; its pixels are frozen).

Families of near-duplicate identities (:func:`make_person_v2`: the same person with one or two
visible attributes changed), a strong viewpoint change between cameras (camera 0 sees people
mostly from the front, camera 1 from the back), strong per-camera white balance and exposure plus
per-image lighting (brightness, colour shifts, shadows), low resolution and motion blur,
passers-by (other identities of the set) behind and in front of the person, street furniture
shared by every camera (:func:`~reid.data.synthetic.scene.scene_props`), and misaligned detector
crops (loose, tight, shifted; feet or head cut off). Version 3 draws with this module's code and
its own :class:`RenderProfile` and identities (:mod:`reid.data.synthetic.v3`).

Example:
    >>> from reid.data.synthetic.render import SynthParams
    >>> [cam for cam, _ in render_identity_v2(SynthParams(images_per_identity=3, size=(32, 32), version=2), pid=1)]
    [1, 0, 1]
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from reid.data.synthetic.attributes import Person, change_attribute, pick, random_person, visible_changes
from reid.data.synthetic.raster import draw_person, draw_prop
from reid.data.synthetic.render import RENDERERS, Renderer, SynthParams
from reid.data.synthetic.scene import VIEWS, Camera, camera_sequence, crop_size, make_camera, scene_props

#: Version-2 identities come in families of this many near-duplicates (:func:`make_person_v2`).
FAMILY_SIZE = 4


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
        key = pick(rng, [k for k in visible_changes(person) if k not in changed])
        person = change_attribute(person, key, rng)
        changed.append(key)
    return person


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
        draw_prop(d, props[int(rng.integers(len(props)))], rng.uniform(0, w), feet - rng.uniform(0, 0.15) * h, u)
    if rng.random() < profile.passer_behind:  # a passer-by behind
        side = rng.choice([-1, 1])
        draw_person(d, crowd[0], cx + side * rng.uniform(0.3, 0.6) * w, feet - rng.uniform(0.03, 0.12) * h,
                     u * rng.uniform(0.75, 0.95), VIEWS[int(rng.integers(4))], swing=float(rng.uniform(-1, 1)))
    draw_person(d, person, cx, feet, u, view, swing=float(rng.uniform(-1, 1)))
    front = rng.random()
    if front < profile.passer_front:  # a passer-by in front
        side = rng.choice([-1, 1])
        draw_person(d, crowd[1], cx + side * rng.uniform(0.3, 0.55) * w, feet + rng.uniform(0, 0.1) * h,
                     u * rng.uniform(1.0, 1.15), VIEWS[int(rng.integers(4))], swing=float(rng.uniform(-1, 1)))
    elif front < profile.passer_front + profile.prop_front:  # street furniture in front
        draw_prop(d, props[int(rng.integers(len(props)))], cx + rng.uniform(-0.4, 0.4) * w, h + rng.uniform(0, 0.1) * h, u)

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


def _passers_by(params: SynthParams, pid: int, j: int, make_person: Callable[[int, int], Person]) -> tuple[Person, Person]:
    """Two other identities of the set who walk through image ``j`` of ``pid``."""
    n = params.identities
    others = np.random.default_rng([params.seed, pid, 26, j]).integers(1, max(2, n), 2)
    return tuple(make_person(params.seed, int(q) + int(q >= pid and n > 1)) for q in others)


def render_identity_v2(params: SynthParams, pid: int, make_person: Callable[[int, int], Person] = make_person_v2,
                       profile: RenderProfile = PROFILE_V2) -> list[tuple[int, bytes]]:
    """(camera, JPEG bytes) of every image of identity ``pid`` as ``make_person`` makes it (it also makes the
    passers-by), drawn with ``profile``'s nuisance: version 2 by default, version 3 with its own two."""
    person = make_person(params.seed, pid)
    cams = {c: make_camera_v2(params.seed, c, params.size, profile) for c in range(params.cameras)}
    props = scene_props(params.seed)
    return [(cam, render_image_v2(person, cams[cam], np.random.default_rng([params.seed, pid, 24, j]), params.size,
                                  _passers_by(params, pid, j, make_person), props, profile))
            for j, cam in enumerate(camera_sequence(params, pid))]


RENDERERS.register("2")(Renderer(make_person_v2, render_identity_v2))
