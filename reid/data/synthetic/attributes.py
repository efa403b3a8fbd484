"""The attribute palettes of synthetic pedestrians, a person's attributes, and how one is drawn or changed.

Each identity is a person drawn from small palettes (so many identities share most attributes):
build (height, width), skin tone, hair colour and style, upper garment colour, sleeve length
and pattern (plain / stripes / checks / logo, with a second colour), lower garment type
(trousers / shorts / skirt) and colour, shoe colour, an optional backpack or shoulder bag (with
its colour) and an optional cap (with its colour) — 15 independent identity attributes.

Example:
    >>> p = random_person(np.random.default_rng(0))
    >>> p.pattern in PATTERNS and p.lower in LOWER
    True
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

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
#: The palette each changeable attribute takes its values from (:func:`change_attribute`).
_PALETTES = {"upper": GARMENT, "upper_second": GARMENT, "accessory_colour": GARMENT, "cap": GARMENT, "pattern": PATTERNS,
             "lower_type": LOWER_TYPES, "lower": LOWER, "shoes": SHOES, "accessory": ACCESSORIES,
             "hair_style": HAIR_STYLES, "hair_colour": HAIR_COLOURS}


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


def pick(rng: np.random.Generator, items, weights=None):
    """One of ``items``, drawn with ``rng`` (with probabilities proportional to ``weights`` when given).

    Example:
        >>> pick(np.random.default_rng(0), ["a", "b"], [0, 1])
        'b'
    """
    p = None if weights is None else np.asarray(weights) / np.sum(weights)
    return items[int(rng.choice(len(items), p=p))]


def random_person(rng: np.random.Generator) -> Person:
    """Draw every attribute of a person from the palettes with ``rng``."""
    upper = pick(rng, GARMENT, GARMENT_WEIGHTS)
    second = pick(rng, [c for c in GARMENT if c != upper])
    return Person(
        height=float(pick(rng, [0.8, 0.85, 0.9, 0.95])),
        build=float(pick(rng, [0.85, 1.0, 1.15])),
        skin=pick(rng, SKIN),
        hair_colour=pick(rng, HAIR_COLOURS, HAIR_WEIGHTS),
        hair_style=pick(rng, HAIR_STYLES, [0.45, 0.3, 0.1, 0.15]),
        upper=upper,
        upper_second=second,
        pattern=pick(rng, PATTERNS, [0.4, 0.2, 0.2, 0.2]),
        long_sleeves=bool(rng.random() < 0.6),
        lower_type=pick(rng, LOWER_TYPES, [0.6, 0.2, 0.2]),
        lower=pick(rng, LOWER, LOWER_WEIGHTS),
        shoes=pick(rng, SHOES),
        accessory=pick(rng, ACCESSORIES, [0.45, 0.3, 0.25]),
        accessory_colour=pick(rng, GARMENT, GARMENT_WEIGHTS),
        cap=pick(rng, GARMENT) if rng.random() < 0.2 else None,
    )


def visible_changes(p: Person) -> list[str]:
    """The attributes of ``p`` whose change shows in the pixels (a bag's colour only if there is a bag, …)."""
    keys = ["upper", "pattern", "long_sleeves", "lower_type", "lower", "shoes", "accessory", "cap", "hair_style"]
    keys += ["upper_second"] * (p.pattern != "plain") + ["accessory_colour"] * (p.accessory != "none")
    return keys + ["hair_colour"] * (p.hair_style != "bald")


def change_attribute(p: Person, key: str, rng: np.random.Generator) -> Person:
    """``p`` with attribute ``key`` set to another value (a cap may also come off).

    Example:
        >>> p = random_person(np.random.default_rng([0, 1, 1]))
        >>> change_attribute(p, "long_sleeves", np.random.default_rng(0)).long_sleeves != p.long_sleeves
        True
    """
    if key == "long_sleeves":
        return replace(p, long_sleeves=not p.long_sleeves)
    if key == "cap" and p.cap is not None and rng.random() < 0.5:
        return replace(p, cap=None)
    taken = {getattr(p, key)} | ({p.upper, p.upper_second} if key in ("upper", "upper_second") else set())
    return replace(p, **{key: pick(rng, [v for v in _PALETTES[key] if v not in taken])})
