"""The rasteriser: people and street furniture drawn with PIL on a camera's background crop.

A person is drawn from their attributes (:class:`~reid.data.synthetic.attributes.Person`) as
seen from a viewpoint: a backpack is a big block from the back and two straps from the front,
a logo shows only from the front, long hair covers the back of the head; ``swing`` moves the
legs and arms (the walking pose).

Example:
    >>> import numpy as np
    >>> from PIL import Image
    >>> from reid.data.synthetic.attributes import random_person
    >>> img = Image.new("RGB", (32, 64))
    >>> draw_person(ImageDraw.Draw(img), random_person(np.random.default_rng(0)), 16, 62, 56, "front", swing=0.5)
    >>> img.getbbox() is not None
    True
"""

from __future__ import annotations

import math

from PIL import ImageDraw

from reid.data.synthetic.attributes import Person


def draw_person(d: ImageDraw.ImageDraw, p: Person, cx: float, feet: float, u: float, view: str, swing: float) -> None:
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


def draw_prop(d: ImageDraw.ImageDraw, prop: tuple[str, tuple, tuple], x: float, ground: float, u: float) -> None:
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
