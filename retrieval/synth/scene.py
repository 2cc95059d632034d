"""SynScenes scene sampling: 3–8 CLEVR-style objects on a floor, seen by one camera.

Follows the spirit of the CLEVR / CLEVR-Remv generator (the IMC thesis (Chen 2023)): objects carry
shape, colour, size and material, placed at random with a minimum gap; relations are read from the
camera's image plane as in CLEVR (left/right from x, front/behind from the ground contact y).
Geometry is in pixels of the rendered image; an object stands on the floor at (x, y) and its
apparent size shrinks with distance (smaller y = further away).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

SHAPES = ("cube", "sphere", "cylinder", "cone")
COLOURS = {  # CLEVR properties.json palette (the IMC thesis (Chen 2023))
    "gray": (87, 87, 87), "red": (173, 35, 35), "blue": (42, 75, 215), "green": (29, 105, 20),
    "brown": (129, 74, 25), "purple": (129, 38, 192), "cyan": (41, 208, 208), "yellow": (255, 238, 51),
}
COLOUR_NAMES = tuple(COLOURS)
SIZES = ("small", "large")
MATERIALS = ("rubber", "metal")

WIDTH, HEIGHT = 192, 128
HORIZON = 40  # floor starts below this image row
MIN_OBJECTS, MAX_OBJECTS = 3, 8
BASE_RADIUS = {"small": 9.0, "large": 15.0}
GAP = 3.0  # minimum pixel gap between object boxes
X_MARGIN, Y_MARGIN = 6.0, 4.0  # CLEVR-style relation margins (pixels)


@dataclasses.dataclass(frozen=True)
class SceneObject:
    """One object: intrinsic attributes plus its ground contact point (x, y) in pixels."""

    shape: str
    colour: str
    size: str
    material: str
    x: float
    y: float

    @property
    def radius(self) -> float:
        """Apparent half-width: the size's base radius scaled by perspective (near = larger)."""
        depth = (self.y - HORIZON) / (HEIGHT - HORIZON)
        return BASE_RADIUS[self.size] * (0.55 + 0.45 * depth)

    @property
    def box(self) -> tuple[float, float, float, float]:
        """Pixel box (x0, y0, x1, y1) of the drawn object (see render.py for the outlines)."""
        r, x, y = self.radius, self.x, self.y
        if self.shape == "cube":
            s = 1.7 * r
            d = 0.3 * s
            return (x - s / 2, y - s - d, x + s / 2 + d, y)
        if self.shape == "cylinder":
            w = 1.6 * r
            return (x - w / 2, y - 1.8 * r - w / 6, x + w / 2, y + w / 6)
        if self.shape == "cone":
            return (x - r, y - 2.2 * r, x + r, y + r / 4)
        return (x - r, y - 2 * r, x + r, y)  # sphere

    def replace(self, **changes) -> "SceneObject":
        """A copy with some fields changed (used for the hard-subset twins)."""
        return dataclasses.replace(self, **changes)


@dataclasses.dataclass(frozen=True)
class Scene:
    """A list of objects; the image is WIDTH × HEIGHT pixels."""

    objects: tuple[SceneObject, ...]

    def to_json(self) -> dict:
        """Ground-truth record for scenes.json (attributes, floor position, pixel box)."""
        return {
            "width": WIDTH,
            "height": HEIGHT,
            "objects": [
                {**dataclasses.asdict(o), "box": [round(v, 2) for v in o.box]} for o in self.objects
            ],
        }


def boxes_clear(objects: tuple[SceneObject, ...] | list[SceneObject]) -> bool:
    """True when every object lies inside the frame and no two boxes come closer than GAP."""
    boxes = [o.box for o in objects]
    for i, (x0, y0, x1, y1) in enumerate(boxes):
        if x0 < 1 or x1 > WIDTH - 2 or y0 < 1 or y1 > HEIGHT - 2:
            return False
        for a0, b0, a1, b1 in boxes[i + 1 :]:
            if x0 < a1 + GAP and a0 < x1 + GAP and y0 < b1 + GAP and b0 < y1 + GAP:
                return False
    return True


def sample_object(rng: np.random.Generator) -> SceneObject:
    """Uniform attributes and a uniform floor position."""
    return SceneObject(
        shape=SHAPES[rng.integers(len(SHAPES))],
        colour=COLOUR_NAMES[rng.integers(len(COLOUR_NAMES))],
        size=SIZES[rng.integers(len(SIZES))],
        material=MATERIALS[rng.integers(len(MATERIALS))],
        x=float(rng.uniform(16, WIDTH - 22)),
        y=float(rng.uniform(HORIZON + 30, HEIGHT - 8)),
    )


def sample_scene(rng: np.random.Generator, max_retries: int = 60) -> Scene:
    """A scene of 3–8 objects placed with rejection sampling (CLEVR's `max_retries` idea)."""
    while True:
        n_objects = int(rng.integers(MIN_OBJECTS, MAX_OBJECTS + 1))
        objects: list[SceneObject] = []
        for _ in range(max_retries * n_objects):
            candidate = sample_object(rng)
            if boxes_clear(objects + [candidate]):
                objects.append(candidate)
                if len(objects) == n_objects:
                    return Scene(tuple(objects))


def relation_holds(rel: str, a: SceneObject, b: SceneObject) -> bool:
    """Directional image-plane predicates (CLEVR margins) and the action-like ones built on them.

    left/right: x differs by more than X_MARGIN; front/behind: ground y differs by more than
    Y_MARGIN (lower in the image = nearer = in front).  Action-like relations are geometric too:
    `pushing` = a directly left of b, at nearly the same depth and close; `hiding` = a behind b
    and overlapping it horizontally; `next_to` = close in the image (symmetric).
    """
    if rel == "left":
        return a.x < b.x - X_MARGIN
    if rel == "right":
        return a.x > b.x + X_MARGIN
    if rel == "front":
        return a.y > b.y + Y_MARGIN
    if rel == "behind":
        return a.y < b.y - Y_MARGIN
    gap = math.hypot(a.x - b.x, a.y - b.y) - a.radius - b.radius
    if rel == "pushing":
        return a.x < b.x - X_MARGIN and abs(a.y - b.y) < 10 and gap < 16
    if rel == "hiding":
        return a.y < b.y - Y_MARGIN and abs(a.x - b.x) < a.radius + b.radius and gap < 24
    if rel == "next_to":
        return gap < 14
    raise ValueError(f"unknown relation {rel!r}")


DIRECTIONAL_RELATIONS = ("left", "right", "front", "behind", "pushing", "hiding")
RELATIONS = DIRECTIONAL_RELATIONS + ("next_to",)
