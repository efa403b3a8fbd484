"""Renderer version 1: the first, easy set (``data.synth_version = 1``; its pixels are frozen).

Identities are drawn independently from the attribute palettes (:func:`make_person`). Each image
adds the camera's nuisance (:func:`~reid.data.synthetic.scene.make_camera`), the viewpoint, the
pose (leg and arm swing), scale and position jitter, partial occlusion and JPEG compression
artefacts.

Example:
    >>> from reid.data.synthetic.render import SynthParams
    >>> [(cam, len(jpeg) > 100) for cam, jpeg in render_identity_v1(SynthParams(images_per_identity=2, size=(32, 32), version=1), pid=1)]
    [(1, True), (0, True)]
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from reid.data.synthetic.attributes import Person, random_person
from reid.data.synthetic.raster import draw_person
from reid.data.synthetic.render import RENDERERS, Renderer, SynthParams
from reid.data.synthetic.scene import VIEWS, Camera, camera_sequence, crop_size, make_camera


def make_person(seed: int, pid: int) -> Person:
    """Draw the attributes of identity ``pid`` (deterministic in ``seed`` and ``pid``)."""
    return random_person(np.random.default_rng([seed, pid, 1]))


def render_image(person: Person, camera: Camera, rng: np.random.Generator, size: tuple[int, int]) -> bytes:
    """Render one JPEG of ``person`` seen by ``camera``; ``rng`` draws the per-image nuisance.

    The person is drawn in a 2:1 crop (:func:`~reid.data.synthetic.scene.crop_size`) that is resized to ``size``
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
    draw_person(d, person, cx, feet, u, view, swing=float(rng.uniform(-1, 1)))

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


def render_identity_v1(params: SynthParams, pid: int) -> list[tuple[int, bytes]]:
    """(camera, JPEG bytes) of every image of version-1 identity ``pid``."""
    person = make_person(params.seed, pid)
    cams = {c: make_camera(params.seed, c, params.size) for c in range(params.cameras)}
    out = []
    for j, cam in enumerate(camera_sequence(params, pid)):
        rng = np.random.default_rng([params.seed, pid, 4, j])
        out.append((cam, render_image(person, cams[cam], rng, params.size)))
    return out


RENDERERS.register("1")(Renderer(make_person, render_identity_v1))
