"""Drawing a shapes-world scene: anti-aliased polygons with small jitter in place, size, angle
and colour, on a plain or patterned background. The pixels are a pure function of the scene
and the random generator, so a seed gives the same PNG everywhere."""

from __future__ import annotations

import colorsys
import math
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

from ccr_demo.data.scene import BACKGROUNDS, COLOURS, POSITIONS, SIZES, Scene

SUPERSAMPLE = 4  # draw at 4x and box-downsample: antialiasing for free
JITTER_POSITION = 0.015  # fraction of the side
JITTER_RADIUS = 0.04  # relative
JITTER_ROTATION = 10.0  # degrees; small, so a square never turns into a diamond
JITTER_HUE, JITTER_SAT, JITTER_VALUE = 0.015, 0.08, 0.06

def _unit_polygons() -> dict[str, np.ndarray]:
    """Each shape as polygon vertices inside the unit circle, centred on the origin
    (so the object's anchor pixel lies inside it). Image y points down."""
    def ring(k, radius=1.0, start=-90.0):
        a = np.radians(start + 360.0 * np.arange(k) / k)
        return np.stack([radius * np.cos(a), radius * np.sin(a)], 1)

    star = ring(10)
    star[1::2] *= 0.45
    t = np.linspace(0, 2 * np.pi, 64, endpoint=False)
    heart = np.stack([16 * np.sin(t) ** 3,
                      -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t)) - 2.5], 1) / 16.5
    w, L = 0.3, 0.95
    cross = np.array([(-w, -L), (w, -L), (w, -w), (L, -w), (L, w), (w, w), (w, L), (-w, L),
                      (-w, w), (-L, w), (-L, -w), (-w, -w)])
    return {
        "square": np.array([(-0.72, -0.72), (0.72, -0.72), (0.72, 0.72), (-0.72, 0.72)]),
        "triangle": ring(3),
        "star": star,
        "heart": heart,
        "cross": cross,
        "hexagon": ring(6, start=0.0),
        "diamond": np.array([(0.0, -1.0), (0.62, 0.0), (0.0, 1.0), (-0.62, 0.0)]),
    }


_POLYGONS = _unit_polygons()
CIRCLE_RADIUS = 0.9  # a circle filling the unit circle would look bigger than the polygons


def _jitter_colour(rgb: Sequence[int], rng: np.random.Generator) -> tuple[int, int, int]:
    h, s, v = colorsys.rgb_to_hsv(*(c / 255.0 for c in rgb))
    h = (h + rng.uniform(-JITTER_HUE, JITTER_HUE)) % 1.0
    s = min(1.0, max(0.0, s + rng.uniform(-JITTER_SAT, JITTER_SAT))) if s > 0 else 0.0
    v = min(1.0, max(0.0, v + rng.uniform(-JITTER_VALUE, JITTER_VALUE)))
    return tuple(int(round(c * 255)) for c in colorsys.hsv_to_rgb(h, s, v))


def _draw_background(draw: ImageDraw.ImageDraw, name: str, side: int, rng: np.random.Generator) -> None:
    if name in ("white", "grey", "black"):
        draw.rectangle((0, 0, side, side), fill=_jitter_colour(BACKGROUNDS[name], rng))
        return
    light, dark = (_jitter_colour(c, rng) for c in BACKGROUNDS[name])
    draw.rectangle((0, 0, side, side), fill=light)
    cell = side / 6
    offset = rng.uniform(0, cell)
    if name == "checkered":
        for i in range(-1, 7):
            for j in range(-1, 7):
                if (i + j) % 2:
                    x, y = i * cell + offset, j * cell + offset
                    draw.rectangle((x, y, x + cell, y + cell), fill=dark)
        return
    # Stripes half a cell wide at one of four orientations.
    angle = math.radians(45.0 * rng.integers(4))
    d, n = np.array([math.cos(angle), math.sin(angle)]), np.array([-math.sin(angle), math.cos(angle)])
    centre = np.array([side / 2, side / 2])
    for k in range(-12, 12):
        a = (k * cell + offset) * d + centre
        b = a + 0.5 * cell * d
        draw.polygon([tuple(p) for p in (a - side * n, b - side * n, b + side * n, a + side * n)], fill=dark)


def render_scene(scene: Scene, size: int = 128, rng: np.random.Generator | None = None) -> Image.Image:
    """Draw ``scene`` as an RGB image of ``size`` x ``size``, with light jitter from ``rng``."""
    rng = rng if rng is not None else np.random.default_rng()
    side = size * SUPERSAMPLE
    img = Image.new("RGB", (side, side))
    draw = ImageDraw.Draw(img)
    _draw_background(draw, scene.background, side, rng)
    for obj in scene.objects:
        ax, ay = POSITIONS[obj.position]
        cx = (ax + rng.uniform(-JITTER_POSITION, JITTER_POSITION)) * side
        cy = (ay + rng.uniform(-JITTER_POSITION, JITTER_POSITION)) * side
        r = SIZES[obj.size] * side * (1 + rng.uniform(-JITTER_RADIUS, JITTER_RADIUS))
        theta = math.radians(rng.uniform(-JITTER_ROTATION, JITTER_ROTATION))
        fill = _jitter_colour(COLOURS[obj.colour], rng)
        if obj.shape == "circle":
            rc = r * CIRCLE_RADIUS
            draw.ellipse((cx - rc, cy - rc, cx + rc, cy + rc), fill=fill)
            continue
        c, s = math.cos(theta), math.sin(theta)
        pts = _POLYGONS[obj.shape] @ np.array([[c, s], [-s, c]]) * r + (cx, cy)
        draw.polygon([tuple(p) for p in pts], fill=fill)
    return img.reduce(SUPERSAMPLE)
