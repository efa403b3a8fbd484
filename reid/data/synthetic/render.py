"""What a synthetic dataset is rendered from (:class:`SynthParams`) and by (the registered renderer versions).

Every renderer version is a :class:`Renderer` registered in :data:`RENDERERS` under its number
(``"1"``, ``"2"``, ``"3"``: :mod:`~reid.data.synthetic.v1`, :mod:`~reid.data.synthetic.v2` and
:mod:`~reid.data.synthetic.v3`, imported with the package). The version is part of the cache key:
add a version (never change one) whenever the pixels change.

Example:
    >>> import reid.data.synthetic
    >>> RENDERERS.names()
    ['1', '2', '3']
    >>> [cam for cam, _ in render_identity_jpegs(SynthParams(identities=2, images_per_identity=3, size=(32, 32)), pid=1)]
    [1, 0, 1]
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Callable

from PIL import Image

from reid.data.synthetic.attributes import Person
from reid.errors import ReidError
from reid.registry import RENDERERS as RENDERER_REGISTRY
from reid.registry import Registry


@dataclass(frozen=True)
class Renderer:
    """One renderer version.

    ``make_person(seed, pid)`` draws identity ``pid``'s attributes; ``render_identity(params, pid)`` renders
    every image of that identity as ``(camera, JPEG bytes)``, in the order of
    :func:`~reid.data.synthetic.scene.camera_sequence`. Both are deterministic in their arguments.
    """

    make_person: Callable[[int, int], Person]
    render_identity: Callable[[SynthParams, int], list[tuple[int, bytes]]]


#: The renderer versions by number (as a string), :data:`reid.registry.RENDERERS`; the built-ins register on
#: importing :mod:`reid.data.synthetic`.
RENDERERS: Registry = RENDERER_REGISTRY


@dataclass(frozen=True)
class SynthParams:
    """Everything that decides the pixels of a synthetic dataset (and so its cache key).

    ``size`` is (height, width). Identities are numbered 1..identities (Market style; 0 and
    -1 mean distractor and junk there). ``version`` picks the renderer (:data:`RENDERERS`).

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
        if str(self.version) not in RENDERERS:
            raise ReidError(f"unknown synthetic renderer version {self.version}", where="data.synth_version",
                            fix=f"use one of {', '.join(RENDERERS.names())}")

    def key(self) -> str:
        """A folder name unique to the renderer version and these parameters."""
        h, w = self.size
        return f"v{self.version}-n{self.identities}x{self.images_per_identity}-c{self.cameras}-s{self.seed}-{h}x{w}"

    def renderer(self) -> Renderer:
        """The :class:`Renderer` registered as ``version``."""
        return RENDERERS.get(str(self.version))


def make_person_for(params: SynthParams, pid: int) -> Person:
    """Identity ``pid`` as renderer ``params.version`` makes it."""
    return params.renderer().make_person(params.seed, pid)


def render_identity_jpegs(params: SynthParams, pid: int) -> list[tuple[int, bytes]]:
    """(camera, JPEG bytes) of every image of identity ``pid``, drawn by renderer ``params.version``."""
    return params.renderer().render_identity(params, pid)


def render_identity_images(params: SynthParams, pid: int) -> list[tuple[int, Image.Image]]:
    """(camera, decoded PIL image) of every image of identity ``pid`` (for previews and tests)."""
    return [(cam, Image.open(io.BytesIO(data)).convert("RGB")) for cam, data in render_identity_jpegs(params, pid)]
