"""Renderer version 3, **the default** (``data.synth_version = 3``): version 2's drawing code with other constants.

Identities wear one of a few outfits shared by the whole population (:func:`make_person_v3`:
every identity has outfit-mates in the training and the validation split, told apart by cut,
carried things and body, rarely by a colour); the footage (:data:`PROFILE_V3`) is sharper than
version 2's, with fewer people and objects in front, but stronger per-image white balance and
worse-aligned crops. Its calibration against the training recipes and the colour-histogram
baseline is measured in BENCHMARKS.md ("Synthetic default: calibration",
``benchmarks/calibrate_synthetic.py``).

Example:
    >>> outfit_of(0, 1) in range(OUTFITS), make_person_v3(0, 1) == make_person_v3(0, 1)
    (True, True)
"""

from __future__ import annotations

from dataclasses import replace
from functools import lru_cache, partial

import numpy as np

from reid.data.synthetic.attributes import Person, change_attribute, random_person
from reid.data.synthetic.render import RENDERERS, Renderer
from reid.data.synthetic.v2 import RenderProfile, render_identity_v2

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


#: Version 3 (the default): outfits shared across the whole population, sharper footage.
PROFILE_V3 = RenderProfile(
    gains=0.2, brightness=(0.7, 1.2), contrast=(0.75, 1.05), blur=(0.2, 0.7), noise=(3, 8),
    quality=(45, 80), resolution=(0.85, 1.0), motion=(0.05, 0.15), white_balance=0.12, exposure=(0.8, 1.2),
    prop_behind=0.6, passer_behind=0.3, passer_front=0.08, prop_front=0.1, scale=(0.75, 1.15), feet=(-0.12, 0.08),
    centre=0.2,
)


RENDERERS.register("3")(Renderer(make_person_v3, partial(render_identity_v2, make_person=make_person_v3, profile=PROFILE_V3)))
