"""A small pseudo-3D renderer for SynScenes (OpenCV drawing; CLEVR-like look, no ray tracing).

Wall above the horizon, floor below, soft shadows, objects drawn far-to-near with three shades per
shape (lit top, front, dark side); metal objects get a specular highlight.  Alongside the RGB image
the same outlines are filled into a label map (0 = wall, 1 = floor, 2 + k = object k) used for the
segmentation arrays and grid features, so every map agrees with the picture.
"""

from __future__ import annotations

import cv2
import numpy as np

from retrieval.synth.scene import COLOURS, HEIGHT, HORIZON, WIDTH, Scene, SceneObject

WALL, FLOOR = 0, 1
_SHIFT = 4  # fixed-point bits for sub-pixel OpenCV drawing
_S = 1 << _SHIFT


def _pt(x: float, y: float) -> tuple[int, int]:
    return int(round(x * _S)), int(round(y * _S))


def _poly(img: np.ndarray, pts, colour, aa: bool) -> None:
    arr = np.array([_pt(x, y) for x, y in pts], dtype=np.int32)
    cv2.fillPoly(img, [arr], colour, cv2.LINE_AA if aa else cv2.LINE_8, _SHIFT)


def _ellipse(img: np.ndarray, cx, cy, ax, ay, colour, aa: bool) -> None:
    cv2.ellipse(img, _pt(cx, cy), _pt(max(ax, 0.5), max(ay, 0.5)), 0, 0, 360, colour, -1, cv2.LINE_AA if aa else cv2.LINE_8, _SHIFT)


def _shade(rgb, factor: float) -> tuple[int, int, int]:
    return tuple(int(min(255, c * factor)) for c in rgb)


def _draw_object(img: np.ndarray, obj: SceneObject, label: int | None) -> None:
    """Draw `obj` into an RGB image (label None) or its `label` into a label map."""
    aa = label is None
    base = COLOURS[obj.colour]
    lit, dark = (_shade(base, 1.35), _shade(base, 0.6)) if aa else ((label,) * 3, (label,) * 3)
    body = base if aa else (label,) * 3
    r, x, y = obj.radius, obj.x, obj.y
    if obj.shape == "cube":
        s = 1.7 * r
        d = 0.3 * s
        _poly(img, [(x - s / 2, y), (x + s / 2, y), (x + s / 2, y - s), (x - s / 2, y - s)], body, aa)
        _poly(img, [(x - s / 2, y - s), (x + s / 2, y - s), (x + s / 2 + d, y - s - d), (x - s / 2 + d, y - s - d)], lit, aa)
        _poly(img, [(x + s / 2, y), (x + s / 2, y - s), (x + s / 2 + d, y - s - d), (x + s / 2 + d, y - d)], dark, aa)
        spot = (x, y - s * 0.75, s * 0.18, s * 0.08)
    elif obj.shape == "cylinder":
        w, h = 1.6 * r, 1.8 * r
        _ellipse(img, x, y, w / 2, w / 6, dark, aa)
        _poly(img, [(x - w / 2, y), (x + w / 2, y), (x + w / 2, y - h), (x - w / 2, y - h)], body, aa)
        _ellipse(img, x, y - h, w / 2, w / 6, lit, aa)
        spot = (x - w / 4, y - h / 2, w * 0.08, h * 0.3)
    elif obj.shape == "cone":
        _ellipse(img, x, y, r, r / 4, dark, aa)
        _poly(img, [(x - r, y), (x + r, y), (x, y - 2.2 * r)], body, aa)
        _poly(img, [(x - r * 0.35, y + r * 0.05), (x - r * 0.05, y + r * 0.2), (x, y - 2.2 * r)], lit, aa)
        spot = (x - r * 0.25, y - r * 0.7, r * 0.1, r * 0.35)
    else:  # sphere
        _ellipse(img, x, y - r, r, r, body, aa)
        _ellipse(img, x - r * 0.3, y - r * 1.3, r * 0.45, r * 0.45, lit, aa)
        spot = (x - r * 0.35, y - r * 1.4, r * 0.18, r * 0.18)
    if aa and obj.material == "metal":
        _ellipse(img, *spot, (250, 250, 250), aa)


def render(scene: Scene) -> tuple[np.ndarray, np.ndarray]:
    """RGB image (HEIGHT, WIDTH, 3) uint8 and label map (HEIGHT, WIDTH) uint8 (0 wall, 1 floor, 2+k object k)."""
    rows = np.arange(HEIGHT, dtype=np.float32)[:, None, None]
    wall = np.array([196, 200, 206], np.float32) - 0.5 * rows
    floor = np.array([150, 150, 146], np.float32) + 0.55 * (rows - HORIZON)
    img = np.where(rows < HORIZON, wall, floor).repeat(WIDTH, axis=1).clip(0, 255).astype(np.uint8)
    labels = np.full((HEIGHT, WIDTH), FLOOR, np.uint8)
    labels[:HORIZON] = WALL
    shadow = img.copy()
    for obj in scene.objects:
        _ellipse(shadow, obj.x + obj.radius * 0.35, obj.y, obj.radius * 1.1, obj.radius * 0.3, (70, 70, 70), True)
    img = cv2.addWeighted(img, 0.55, shadow, 0.45, 0)
    for k in sorted(range(len(scene.objects)), key=lambda i: scene.objects[i].y):
        _draw_object(img, scene.objects[k], None)
        _draw_object(labels, scene.objects[k], 2 + k)
    return img, labels


def write_png(path, image: np.ndarray) -> None:
    """Write an RGB image as PNG (OpenCV expects BGR)."""
    if not cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 1]):
        raise OSError(f"could not write {path}")
