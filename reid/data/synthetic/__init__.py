"""Procedural synthetic pedestrians: the embedded default dataset, in several renderer versions.

Each identity is a person drawn from small attribute palettes (so many identities share most
attributes); each image adds the nuisance of real re-ID footage — the camera (background, colour
cast, exposure, optics, preferred viewpoint), the pose, the crop, occlusion and JPEG artefacts.
The renderer versions (``data.synth_version``) are registered in :data:`RENDERERS`: 1 (easy),
2 (hard, heavily degraded) and 3, **the default**; versions 1 and 2 keep their pixels.

Modules:

- :mod:`~reid.data.synthetic.attributes`: the palettes, :class:`Person`, drawing and changing attributes;
- :mod:`~reid.data.synthetic.render`: :class:`SynthParams`, the :data:`RENDERERS` registry, rendering an identity;
- :mod:`~reid.data.synthetic.v1`, :mod:`~reid.data.synthetic.v2`, :mod:`~reid.data.synthetic.v3`: one per version;
- :mod:`~reid.data.synthetic.scene`: cameras, their scenes and street furniture, which camera takes each image;
- :mod:`~reid.data.synthetic.raster`: people and street furniture drawn on a crop;
- :mod:`~reid.data.synthetic.layout`: the dataset written in Market-1501 layout (:func:`write_market_layout`).

Everything is derived from ``numpy.random.default_rng([seed, ...])`` streams, so the same
seed gives byte-identical files and different seeds give different people.

Example:
    >>> from reid.data.synthetic import SynthParams, render_identity_images
    >>> imgs = render_identity_images(SynthParams(identities=3, images_per_identity=2, size=(64, 64)), pid=1)
    >>> [(cam, im.size) for cam, im in imgs]
    [(1, (64, 64)), (0, (64, 64))]
"""

from reid.data.synthetic.attributes import (
    ACCESSORIES, GARMENT, GARMENT_WEIGHTS, HAIR_COLOURS, HAIR_STYLES, HAIR_WEIGHTS, LOWER, LOWER_TYPES, LOWER_WEIGHTS,
    PATTERNS, SHOES, SKIN, Person, change_attribute, random_person, visible_changes,
)
from reid.data.synthetic.layout import RENDER_PROCESSES, write_market_layout
from reid.data.synthetic.render import (
    RENDERERS, Renderer, SynthParams, make_person_for, render_identity_images, render_identity_jpegs,
)
from reid.data.synthetic.scene import (
    PROPS, VIEWS, Camera, camera_sequence, crop_size, make_camera, scene_palette, scene_props,
)
from reid.data.synthetic.v1 import make_person, render_image
from reid.data.synthetic.v2 import (
    FAMILY_SIZE, PROFILE_V2, CameraV2, RenderProfile, make_camera_v2, make_person_v2, motion_blur, render_image_v2,
)
from reid.data.synthetic.v3 import BODY, OUTFIT_CHANGES, OUTFITS, PROFILE_V3, make_person_v3, outfit_of

#: The built-in renderer versions, (1, 2, 3): the numbers :data:`RENDERERS` holds once the package is imported.
RENDERER_VERSIONS = tuple(int(name) for name in RENDERERS.names())

__all__ = [
    "ACCESSORIES", "BODY", "FAMILY_SIZE", "GARMENT", "GARMENT_WEIGHTS", "HAIR_COLOURS", "HAIR_STYLES", "HAIR_WEIGHTS",
    "LOWER", "LOWER_TYPES", "LOWER_WEIGHTS", "OUTFITS", "OUTFIT_CHANGES", "PATTERNS", "PROFILE_V2", "PROFILE_V3", "PROPS",
    "RENDERERS", "RENDERER_VERSIONS", "RENDER_PROCESSES", "SHOES", "SKIN", "VIEWS", "Camera", "CameraV2", "Person",
    "RenderProfile", "Renderer", "SynthParams", "camera_sequence", "change_attribute", "crop_size", "make_camera",
    "make_camera_v2", "make_person", "make_person_for", "make_person_v2", "make_person_v3", "motion_blur", "outfit_of",
    "random_person", "render_identity_images", "render_identity_jpegs", "render_image", "render_image_v2", "scene_palette",
    "scene_props", "visible_changes", "write_market_layout",
]
