"""SynFACS rendering: an OpenCV drawing of a posed 68-point face with AU appearance cues.

A face is drawn in layers (background, clothes, neck, hair, ears, head, features), then shaded by
two multiplicative maps — a broad one (head roundness, eye sockets, cheek bulges, lighting) and a
fine one (creases and wrinkles) — then an optional occluder, global lighting, blur and noise.
Everything is placed in face units (shape.py) and projected with `project`: a rotation about a
centre behind the face (yaw, pitch, roll) and an orthographic projection, which is a fair
approximation of a head turning by up to ~20 degrees.

Appearance cues (mostly drawn broad enough to survive the tiny models' 80-px crops): AU1/AU2
forehead lines (central / lateral), AU4 glabellar lines and brow knit, AU6 cheek bulge,
infraorbital furrow and fold, puffed lower lid and crow's feet, AU7 lower-lid line, AU9
nose-bridge and nose-side wrinkles and darker nose sides, AU9/AU10 raised infraorbital triangle
and deepened upper nasolabial fold, AU12 deepened nasolabial fold, AU14 dimple pits, crescents
and bulges, AU15 lip-corner creases, AU17 chin-boss bulge, stipple and mentolabial fold, AU23 lip
wrinkles and narrowed red of the lips, AU24 bulges around the pressed, paler lips and a darker lip
line, AU25/26 open mouth with teeth. For the AUs whose cue is mostly appearance
(`fau.synth.cues.CUE_KIND`) these are the main cue: their landmarks move little (actions.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from fau.aus import SYNFACS_AUS
from fau.synth.actions import intensity_gain
from fau.synth.shape import Identity

IMAGE_WIDTH = 320
IMAGE_HEIGHT = 400
_SHIFT = 4  # sub-pixel bits for OpenCV drawing
_ONE = 1 << _SHIFT
_AA = cv2.LINE_AA
_ROT_CENTRE = np.array([0.0, 0.35, -1.1])  # head rotation centre (face units)

_SKIN_LIGHT = np.array([185.0, 205.0, 240.0])  # BGR
_SKIN_DARK = np.array([55.0, 80.0, 120.0])
_HAIR_COLOURS = np.array([[20, 20, 25], [30, 45, 70], [40, 70, 110], [70, 110, 160],
                          [120, 120, 125], [25, 30, 45]], dtype=float)
_IRIS_COLOURS = np.array([[30, 50, 80], [60, 80, 100], [120, 90, 60], [80, 110, 80]], float)
#: Hair styles a `Look` can have; women draw from the first three, men from the last three.
HAIR_STYLES = ("long", "fringe", "short", "bald")
_GRID4 = np.mgrid[0:IMAGE_HEIGHT:4, 0:IMAGE_WIDTH:4].astype(np.float32)  # quarter-res pixel grid


@dataclass(frozen=True)
class Look:
    """Appearance identity of a subject (colours BGR 0–255)."""

    skin: tuple[float, float, float]
    hair: tuple[float, float, float]
    hair_style: str
    hairline: float  # y of the hairline top (face units)
    brow_thickness: float  # face units at the inner brow
    brow_darkness: float  # 0 = skin colour, 1 = hair colour
    lip: tuple[float, float, float]
    iris: tuple[float, float, float]
    glasses: bool
    stubble: float  # 0..1
    clothes: tuple[float, float, float]
    background: tuple[float, float, float]
    wrinkle_depth: float  # per-subject scale of the appearance cues
    detail_seed: int  # fixes the subject's wrinkle jitter and chin stipple


@dataclass(frozen=True)
class Occluder:
    """An opaque blob (a hand, a cup, a strand of hair) over part of the face, in face units."""

    centre: tuple[float, float]
    axes: tuple[float, float]
    angle: float
    colour: tuple[float, float, float]


@dataclass(frozen=True)
class View:
    """Per-frame camera, pose and imaging conditions."""

    yaw: float  # degrees, + turns the face to the image right
    pitch: float  # degrees, + tilts the face down
    roll: float  # degrees, + rotates clockwise in the image
    scale: float  # pixels per face unit
    centre: tuple[float, float]  # pixel position of the eye midpoint (before rotation)
    light_angle: float  # direction the light comes from, radians in the image plane
    light_strength: float  # 0..~0.35 side-lighting contrast
    gain: float  # global brightness
    cast: tuple[float, float, float]  # per-channel colour cast
    gamma: float
    blur: float  # Gaussian sigma in pixels (0 = sharp)
    noise: float  # Gaussian (luminance) noise sigma in grey levels
    gaze: tuple[float, float]  # iris offset, fraction of the eye half-width
    occluder: Occluder | None = None


def sample_look(rng: np.random.Generator, female: bool) -> Look:
    """Draw a subject's appearance: skin tone, hair, brows, lips, eyes, glasses, clothes."""
    tone = rng.beta(1.6, 1.6)
    skin = _SKIN_LIGHT + tone * (_SKIN_DARK - _SKIN_LIGHT) + rng.normal(0, 6, 3)
    hair = _HAIR_COLOURS[rng.integers(len(_HAIR_COLOURS))] * rng.uniform(0.8, 1.2)
    if tone > 0.55:
        hair = np.minimum(hair, [45, 55, 70])
    styles = HAIR_STYLES[:3] if female else HAIR_STYLES[1:]
    lip = skin * np.array([0.78, 0.72, 0.98]) + np.array([0, 0, 18]) * (1 - tone)
    if female and rng.random() < 0.4:
        lip = np.array([70.0, 60.0, 170.0]) * rng.uniform(0.8, 1.1)
    background = rng.uniform(40, 220, 3)
    return Look(
        skin=tuple(np.clip(skin, 0, 255)), hair=tuple(np.clip(hair, 0, 255)),
        hair_style=str(styles[rng.integers(len(styles))]),
        hairline=float(rng.uniform(-1.35, -1.1)),
        brow_thickness=float(rng.uniform(0.06, 0.09) if female else rng.uniform(0.08, 0.12)),
        brow_darkness=float(rng.uniform(0.55, 0.9)), lip=tuple(np.clip(lip, 0, 255)),
        iris=tuple(_IRIS_COLOURS[rng.integers(len(_IRIS_COLOURS))]),
        glasses=bool(rng.random() < 0.25),
        stubble=float(0.0 if female or rng.random() < 0.6 else rng.uniform(0.3, 0.8)),
        clothes=tuple(rng.uniform(20, 230, 3)), background=tuple(background),
        wrinkle_depth=float(rng.uniform(0.8, 1.25)), detail_seed=int(rng.integers(2**31)))


def sequence_views(rng: np.random.Generator, n_frames: int, ident: Identity,
                   occlusion_rate: float = 0.1) -> list[View]:
    """Views of one sequence: a base pose and lighting with smooth drift, per-frame noise/blur,
    and occlusion events (a blob held over one face region for a few frames)."""
    t = np.arange(n_frames)

    def drift(amplitude: float) -> np.ndarray:
        period, phase = rng.uniform(25, 80), rng.uniform(0, 2 * np.pi)
        return amplitude * np.sin(2 * np.pi * t / period + phase)

    yaw = rng.uniform(-12, 12) + drift(6.0)
    pitch = rng.uniform(-7, 7) + drift(3.0)
    roll = rng.uniform(-9, 9) + drift(3.0)
    scale = rng.uniform(205, 235) / (2 * ident.face_half_width)
    cx = IMAGE_WIDTH / 2 + rng.uniform(-12, 12) + drift(3.0)
    cy = IMAGE_HEIGHT * 0.44 + rng.uniform(-10, 10) + drift(2.0)
    light_angle = rng.uniform(0, 2 * np.pi)
    light_strength = rng.uniform(0.0, 0.3)
    gain, gamma = rng.uniform(0.8, 1.08), rng.uniform(0.9, 1.15)
    cast = tuple(rng.uniform(0.94, 1.06, 3))
    base_noise, base_blur = rng.uniform(1.0, 5.0), rng.uniform(0.0, 0.9)
    gaze_x, gaze_y = drift(0.25), drift(0.15)
    occluded = np.zeros(n_frames, dtype=bool)
    occluders: list[Occluder | None] = [None] * n_frames
    n_events = rng.poisson(occlusion_rate * n_frames / 6)
    for _ in range(n_events):
        start, length = int(rng.integers(n_frames)), int(rng.integers(3, 9))
        blob = _sample_occluder(rng, ident)
        for i in range(start, min(n_frames, start + length)):
            if not occluded[i]:
                occluded[i], occluders[i] = True, blob
    return [View(yaw=float(yaw[i]), pitch=float(pitch[i]), roll=float(roll[i]),
                 scale=float(scale), centre=(float(cx[i]), float(cy[i])),
                 light_angle=float(light_angle), light_strength=float(light_strength),
                 gain=float(gain), cast=cast, gamma=float(gamma),
                 blur=float(max(0.0, base_blur + rng.normal(0, 0.15))),
                 noise=float(base_noise), gaze=(float(gaze_x[i]), float(gaze_y[i])),
                 occluder=occluders[i]) for i in range(n_frames)]


def _sample_occluder(rng: np.random.Generator, ident: Identity) -> Occluder:
    """A moderate occluder over one region (cheek, chin/mouth side, temple)."""
    side = rng.choice([-1.0, 1.0])
    region = rng.integers(3)
    if region == 0:  # lower cheek / jaw, from the side
        centre = (side * ident.face_half_width * 0.95, ident.mouth_y + 0.1)
    elif region == 1:  # chin from below
        centre = (side * 0.3, ident.chin + 0.05)
    else:  # temple / outer brow from the side
        centre = (side * (ident.face_half_width + 0.05), -0.35)
    axes = (float(rng.uniform(0.25, 0.42)), float(rng.uniform(0.3, 0.5)))
    colour = tuple(rng.uniform(30, 230, 3))
    return Occluder(centre=(float(centre[0]), float(centre[1])), axes=axes,
                    angle=float(rng.uniform(0, 180)), colour=colour)


def rotation(view: View) -> np.ndarray:
    """3x3 rotation R = Rz(roll) · Rx(pitch) · Ry(yaw) (y down, z towards the camera)."""
    y, p, r = np.deg2rad([view.yaw, view.pitch, view.roll])
    ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    rx = np.array([[1, 0, 0], [0, np.cos(p), np.sin(p)], [0, -np.sin(p), np.cos(p)]])
    rz = np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]])
    return rz @ rx @ ry


def project(points: np.ndarray, view: View, rot: np.ndarray | None = None) -> np.ndarray:
    """Pixel coordinates (N, 2) of face-unit points (N, 3) under `view` (orthographic);
    `rot` is `rotation(view)` when the caller has it already."""
    rot = rotation(view) if rot is None else rot
    rotated = (points - _ROT_CENTRE) @ rot.T + _ROT_CENTRE
    return rotated[:, :2] * view.scale + np.asarray(view.centre)


# --------------------------------------------------------------------------- drawing helpers
def _fx(points: np.ndarray) -> np.ndarray:
    return np.round(np.asarray(points) * _ONE).astype(np.int32).reshape(-1, 1, 2)


def _fill(img: np.ndarray, points: np.ndarray, colour) -> None:
    cv2.fillPoly(img, [_fx(points)], colour, _AA, _SHIFT)


def _line(img: np.ndarray, points: np.ndarray, colour, width: float, closed: bool = False) -> None:
    cv2.polylines(img, [_fx(points)], closed, colour, max(1, int(round(width))), _AA, _SHIFT)


def _ellipse(img, centre, axes, angle, colour, thickness=-1) -> None:
    cv2.ellipse(img, tuple(int(round(c * _ONE)) for c in centre),
                tuple(max(1, int(round(a * _ONE))) for a in axes), float(angle), 0, 360,
                colour, thickness, _AA, _SHIFT)


def _arc(centre: np.ndarray, axes: tuple[float, float], start: float, stop: float,
         z: float, n: int = 12) -> np.ndarray:
    """Face-unit 3-D points on an elliptic arc (angles in degrees, 0 = +x, 90 = +y/down)."""
    a = np.deg2rad(np.linspace(start, stop, n))
    return np.stack([centre[0] + axes[0] * np.cos(a), centre[1] + axes[1] * np.sin(a),
                     np.full(n, z)], axis=1)


def _bezier(p0, p1, p2, n: int = 10) -> np.ndarray:
    t = np.linspace(0, 1, n)[:, None]
    p0, p1, p2 = (np.asarray(p, dtype=float) for p in (p0, p1, p2))
    return (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t ** 2 * p2


def _fill_clipped(img: np.ndarray, clip: np.ndarray, shape: np.ndarray, colour) -> None:
    """Fill polygon `shape` (pixels) only inside polygon `clip` (pixels)."""
    x0, y0 = np.floor(np.minimum(clip.min(0), shape.min(0))).astype(int) - 2
    x1, y1 = np.ceil(np.maximum(clip.max(0), shape.max(0))).astype(int) + 2
    x0, y0 = max(x0, 0), max(y0, 0)
    x1, y1 = min(x1, img.shape[1]), min(y1, img.shape[0])
    if x1 <= x0 or y1 <= y0:
        return
    offset = np.array([x0, y0], dtype=float)
    mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
    _fill(mask, clip - offset, 255)
    layer = img[y0:y1, x0:x1].copy()
    _fill(layer, shape - offset, colour)
    alpha = (mask.astype(np.float32) / 255.0)[..., None]
    img[y0:y1, x0:x1] = layer * alpha + img[y0:y1, x0:x1] * (1 - alpha)


# --------------------------------------------------------------------------- the renderer
class _Painter:
    """State of one frame being drawn: the canvas, two shade maps and the projection."""

    def __init__(self, ident: Identity, look: Look, view: View, lm: np.ndarray):
        self.ident, self.look, self.view, self.lm3 = ident, look, view, lm
        self.img = np.empty((IMAGE_HEIGHT, IMAGE_WIDTH, 3), np.float32)
        self.broad = np.ones((IMAGE_HEIGHT // 4, IMAGE_WIDTH // 4), np.float32)
        self.fine = np.ones((IMAGE_HEIGHT, IMAGE_WIDTH), np.float32)
        self.rot = rotation(view)
        self.lm = project(lm, view, self.rot)
        self.px = view.scale  # pixels per face unit
        self.skin = np.array(look.skin)
        self.hull = np.zeros((0, 0), np.float32)  # full-resolution head mask, set by _head

    def p(self, points) -> np.ndarray:
        return project(np.asarray(points, dtype=float).reshape(-1, 3), self.view, self.rot)

    def broad_fill(self, points3d, value: float) -> None:
        _fill(self.broad, self.p(points3d) / 4, float(value))

    def broad_ellipse(self, centre3d, axes, value: float) -> None:
        c = self.p(centre3d)[0] / 4
        _ellipse(self.broad, c, (axes[0] * self.px / 4, axes[1] * self.px / 4),
                 self.view.roll, float(value))

    def crease(self, points3d, depth: float, width: float = 1.3) -> None:
        """A dark line in the fine shade map; depth 0..1 (1 = darkest)."""
        if depth > 0.01:
            _line(self.fine, self.p(points3d), float(1.0 - 0.55 * min(depth, 1.0)),
                  width * self.px / 95)


def _background(pt: _Painter) -> None:
    bg = np.array(pt.look.background, np.float32)
    ramp = np.linspace(1.1, 0.85, IMAGE_HEIGHT, dtype=np.float32)[:, None, None]
    pt.img[:] = bg * ramp


def _body(pt: _Painter) -> None:
    ident, skin = pt.ident, pt.skin
    w, chin = ident.face_half_width, ident.chin
    shoulders = np.array([[-0.75 * w, chin + 0.55, -0.6], [-2.6, chin + 1.0, -0.8],
                          [-2.8, chin + 3.0, -0.8], [2.8, chin + 3.0, -0.8],
                          [2.6, chin + 1.0, -0.8], [0.75 * w, chin + 0.55, -0.6]])
    _fill(pt.img, pt.p(shoulders), pt.look.clothes)
    neck = np.array([[-0.62 * w, 0.9, -0.7], [-0.6 * w, chin + 0.75, -0.5],
                     [0.6 * w, chin + 0.75, -0.5], [0.62 * w, 0.9, -0.7]])
    _fill(pt.img, pt.p(neck), skin * 0.82)
    collar = _arc(np.array([0, chin + 0.6]), (0.62 * w, 0.25), 0, 180, -0.45)
    _fill(pt.img, pt.p(collar), np.array(pt.look.clothes) * 0.8)


def _head_outline(ident: Identity, lm: np.ndarray) -> np.ndarray:
    """Face hull (3-D): jaw landmarks 0..16, then a forehead/skull arc back to point 0."""
    w, top = ident.face_half_width, ident.jaw_top
    a = np.deg2rad(np.linspace(0, 180, 19)[1:-1])  # right temple over the crown to the left
    cos, sin = np.cos(a), np.sin(a)
    # A squarish (superellipse) cranium, slightly wider than the jaw top, crown ~1.75 above.
    skull = np.stack([w * 1.04 * np.sign(cos) * np.abs(cos) ** 0.8,
                      top - (top + 1.75) * sin ** 0.85, -1.0 + 0.95 * sin], axis=1)
    return np.concatenate([lm[0:17], skull])


def _hair_back(pt: _Painter) -> None:
    if pt.look.hair_style != "long":
        return
    w, chin = pt.ident.face_half_width, pt.ident.chin
    a = np.deg2rad(np.linspace(-10, 190, 24))
    cap = np.stack([(w + 0.3) * np.cos(a), -0.2 - 1.75 * np.sin(a), np.full(24, -1.2)], 1)
    hang = np.array([[-(w + 0.35), chin + 0.5, -1.2], [-(w - 0.1), chin + 0.7, -1.2],
                     [w - 0.1, chin + 0.7, -1.2], [w + 0.35, chin + 0.5, -1.2]])
    _fill(pt.img, pt.p(np.concatenate([cap, hang[2:], hang[:2]])), pt.look.hair)


def _ears(pt: _Painter) -> None:
    """Ears: half-ellipses sticking out of the head's sides (their inner halves are squashed so
    that the head drawn over them hides them)."""
    ident = pt.ident
    for side in (-1.0, 1.0):
        centre = np.array([side * (ident.face_half_width + 0.02), 0.33, -1.05])
        ear = _arc(centre, (0.17, 0.34), 0, 360, -1.05, n=20)
        ear[:, 0] = centre[0] + (ear[:, 0] - centre[0]) * np.where(
            side * (ear[:, 0] - centre[0]) > 0, 1.0, 0.3)
        _fill(pt.img, pt.p(ear), pt.skin * 0.9)


def _head(pt: _Painter) -> None:
    outline = _head_outline(pt.ident, pt.lm3)
    _fill(pt.img, pt.p(outline), pt.skin)
    # The hull mask at quarter resolution (blurred into a roundness profile by `render`) and at
    # full resolution (so the edge darkening stops exactly at the outline).
    pt.broad[:] = 0.0
    _fill(pt.broad, pt.p(outline) / 4, 1.0)
    pt.hull = np.zeros((IMAGE_HEIGHT, IMAGE_WIDTH), np.float32)
    _fill(pt.hull, pt.p(outline), 1.0)


def _hair_front(pt: _Painter) -> None:
    look, ident = pt.look, pt.ident
    if look.hair_style == "bald":
        return
    w, top = ident.face_half_width, ident.jaw_top
    a = np.deg2rad(np.linspace(0, 180, 21))
    cos, sin = np.cos(a), np.sin(a)
    outer = np.stack([(w * 1.04 + 0.1) * np.sign(cos) * np.abs(cos) ** 0.8,
                      top - 0.15 - (top + 1.85) * sin ** 0.85, -1.0 + sin], axis=1)
    hl = look.hairline if look.hair_style != "fringe" else look.hairline + 0.35
    temple = -0.45 if look.hair_style != "long" else -0.2
    inner_a = np.deg2rad(np.linspace(180, 0, 21))
    bulge = 0.12 if look.hair_style == "fringe" else 0.0
    inner = np.stack([w * 0.93 * np.cos(inner_a),
                      temple + (hl - temple) * np.sin(inner_a) ** (0.6 + bulge),
                      -0.9 + 0.9 * np.sin(inner_a)], axis=1)
    _fill(pt.img, pt.p(np.concatenate([outer, inner])), look.hair)
    if look.hair_style == "long":
        for side in (-1.0, 1.0):
            strand = np.array([[side * w * 0.93, temple, -0.9], [side * (w + 0.1), temple, -1.0],
                               [side * (w + 0.32), ident.chin + 0.4, -1.1],
                               [side * (w - 0.05), ident.chin - 0.2, -1.0],
                               [side * (w - 0.02), 0.4, -0.95]])
            _fill(pt.img, pt.p(strand), look.hair)


def _shading(pt: _Painter, g: dict[int, float]) -> None:
    """Broad shade: eye sockets, nose sides, under-lip and chin shadows, and the bulges and
    hollows of the appearance AUs (AU6 cheeks, AU9/AU10 infraorbital triangle and nose sides,
    AU14 dimple pits, AU17 chin boss, AU23/AU24 skin around pressed lips), drawn broad enough to
    survive the tiny models' 80-px crops."""
    lm, depth = pt.lm3, pt.look.wrinkle_depth
    raise_sub = max(g[10], 0.8 * g[9])  # infraorbital triangle pushed up (AU10, AU9)
    for eye, brow, side in ((slice(36, 42), slice(17, 22), -1), (slice(42, 48), slice(22, 27), 1)):
        # Eye socket: between the brow and the upper lid (both listed so the polygon closes).
        socket = np.concatenate([lm[brow] + [0, 0.05, 0], lm[eye][[3, 2, 1, 0]] + [0, 0.03, 0]])
        pt.broad_fill(socket, 0.86)
        # AU6 cheek bulge: a lifted, lit cheek under the eye, a shadowed furrow below it and a
        # puffed lower lid.
        centre = lm[eye].mean(0) + [side * 0.06, 0.3 - 0.08 * g[6], 0.0]
        pt.broad_ellipse(centre + [0, 0.16, 0], (0.32, 0.12), 1.0 - 0.2 * g[6] * depth)
        pt.broad_ellipse(centre, (0.27 + 0.04 * g[6], 0.14 + 0.02 * g[6]), 1.0 + 0.15 * g[6] * depth)
        pt.broad_ellipse(lm[eye].mean(0) + [0, 0.1, 0], (0.17, 0.045), 1.0 + 0.1 * g[6] * depth)
        # AU9/AU10: the skin between the nose wing and the cheek (infraorbital triangle) bulges.
        alar = lm[31] if side < 0 else lm[35]
        if raise_sub > 0:
            pt.broad_ellipse(alar + [side * 0.2, -0.16, 0], (0.14, 0.1), 1.0 + 0.14 * raise_sub * depth)
    for side in (-1, 1):  # nose sides, darker when AU9 wrinkles them
        alar = lm[31] if side < 0 else lm[35]
        pt.broad_fill(np.array([lm[27] + [side * 0.07, 0, 0], lm[29] + [side * 0.08, 0, 0],
                                alar + [side * 0.02, -0.03, 0], alar + [side * 0.1, -0.05, 0],
                                lm[28] + [side * 0.16, 0, 0]]), 0.88 - 0.12 * g[9] * depth)
    pt.broad_ellipse(lm[30], (0.07, 0.06), 1.08)
    pt.broad_fill(np.concatenate([lm[[48, 59, 58, 57, 56, 55, 54]],
                                  lm[[54, 55, 56, 57, 58, 59, 48]] + [0, 0.13, 0]]),
                  0.88 - 0.1 * max(g[24], g[23], g[17]) * depth)
    # AU17: the chin boss pushed up and bulging, lit on top, the mentolabial sulcus in shadow.
    chin_boss = lm[8] + [0, -0.2 - 0.05 * g[17], 0.02]
    pt.broad_ellipse(chin_boss, (0.24 + 0.03 * g[17], 0.12 + 0.02 * g[17]),
                     1.05 + 0.14 * g[17] * depth)
    under_chin = lm[4:13] + [0, 0.08, -0.3]
    pt.broad_fill(np.concatenate([under_chin, under_chin[::-1] + [0, 0.35, 0]]), 0.7)
    if g[4] > 0:  # brow knit: shadow between the lowered brows
        pt.broad_ellipse((lm[21] + lm[22]) / 2 + [0, 0.05, 0], (0.12, 0.1), 1.0 - 0.12 * g[4])
    # AU24 (and AU17, AU23): the skin above the pressed upper lip bulges.
    bulge = max(g[24], 0.6 * g[23], 0.5 * g[17])
    if bulge > 0:
        pt.broad_ellipse(lm[51] + [0, -0.1, 0], (0.3, 0.06), 1.0 + 0.14 * bulge * depth)
    # AU14: dimple pits beside the lip corners with a small bulge above them.
    if g[14] > 0:
        for corner, side in ((48, -1), (54, 1)):
            pt.broad_ellipse(lm[corner] + [side * 0.1, -0.05, 0], (0.06, 0.09), 1.0 + 0.12 * g[14] * depth)
            pt.broad_ellipse(lm[corner] + [side * 0.09, 0.02, 0], (0.045, 0.065), 1.0 - 0.22 * g[14] * depth)


def _fold(pt: _Painter, points, depth: float, width: float, offset, light: float = 0.5) -> None:
    """A skin fold: a dark crease and, `offset` (face units, 3-vector) beside it, a lit ridge."""
    points = np.asarray(points, dtype=float)
    pt.crease(points, depth, width)
    if depth > 0.01:
        _line(pt.fine, pt.p(points + np.asarray(offset)), float(1.0 + 0.3 * light * min(depth, 1.0)),
              width * pt.px / 95)


def _wrinkles(pt: _Painter, g: dict[int, float]) -> None:
    """Fine creases in the fine shade map, each darker with its AU's intensity (module doc)."""
    lm, d = pt.lm3, pt.look.wrinkle_depth
    jitter = np.random.default_rng(pt.look.detail_seed)
    brow_inner_y = (lm[21, 1] + lm[22, 1]) / 2
    # AU1: central forehead lines, following the raised inner brows; AU2: lateral lines.
    for k in range(3):
        y = brow_inner_y - 0.22 - 0.13 * k + jitter.normal(0, 0.01)
        central = _bezier([-0.32, y + 0.03, 0], [0, y - 0.06, 0.05], [0.32, y + 0.03, 0], 9)
        pt.crease(central, d * g[1] * (0.75 - 0.12 * k))
        for side in (-1, 1):
            oy = lm[19 if side < 0 else 24, 1] - 0.2 - 0.12 * k + jitter.normal(0, 0.01)
            lateral = _bezier([side * 0.3, oy + 0.02, 0], [side * 0.62, oy - 0.05, -0.1],
                              [side * 0.92, oy + 0.05, -0.35], 9)
            pt.crease(lateral, d * g[2] * (0.75 - 0.12 * k))
    # AU4: vertical glabellar lines between the brows, a short procerus line at the nose root.
    for side in (-1, 1):
        x = side * (0.07 + 0.01 * jitter.normal())
        pt.crease(np.array([[x, brow_inner_y + 0.06, 0], [x * 1.4, brow_inner_y - 0.2, 0]]),
                  d * g[4] * 0.9, 1.6)
    pt.crease(np.array([[-0.08, lm[27, 1] + 0.02, 0.0], [0.08, lm[27, 1] + 0.02, 0.0]]),
              d * max(g[4], g[9]) * 0.5)
    for eye, side in ((slice(36, 42), -1), (slice(42, 48), 1)):
        e = lm[eye]
        outer = e[0] if side < 0 else e[3]
        lower = e[[3, 4, 5, 0]] if side < 0 else e[[0, 5, 4, 3]]
        # Upper lid crease (always), lower-lid bulge line (AU7, AU6), infraorbital furrow (AU6).
        upper = e[[0, 1, 2, 3]] if side < 0 else e[[3, 2, 1, 0]]
        pt.crease(upper + [0, -0.045, 0], 0.35, 1.1)
        pt.crease(lower[1:-1] + [0, 0.05, 0], d * max(g[7], 0.8 * g[6]) * 0.8, 1.6)
        _fold(pt, _bezier(e[0 if side < 0 else 3] + [side * -0.05, 0.13, 0],
                          e.mean(0) + [0, 0.26, 0], e[3 if side < 0 else 0] + [side * 0.02, 0.15, 0], 8),
              d * g[6] * 0.9, 2.2, [0, -0.03, 0])
        # AU6 crow's feet radiating from the outer eye corner.
        for angle in (-34, -12, 10, 32):
            a = np.deg2rad(angle + jitter.normal(0, 4))
            start = outer + [side * 0.05, 0.0, 0]
            end = start + [side * 0.24 * np.cos(a), 0.24 * np.sin(a), -0.05]
            pt.crease(np.array([start, end]), d * g[6] * 0.95, 2.0)
    # AU9: horizontal wrinkles across the nose bridge and oblique ones down its sides.
    for k in range(3):
        y = lm[27, 1] + 0.08 + 0.08 * k + jitter.normal(0, 0.008)
        pt.crease(np.array([[-0.14, y + 0.025, 0.1], [0, y - 0.015, 0.14], [0.14, y + 0.025, 0.1]]),
                  d * g[9], 2.2)
    for side in (-1, 1):
        for k in range(2):
            top = lm[28] + [side * (0.07 + 0.04 * k), 0.02 + 0.06 * k, 0]
            pt.crease(np.array([top, top + [side * 0.09, 0.12, -0.02]]), d * g[9] * 0.9, 2.0)
    # Nasolabial furrows: always faint; the upper part (beside the nose wing) deepened most by
    # AU10 and AU9, the whole fold by AU12 (and AU6, AU14).
    upper_fold = 0.2 + 0.8 * max(g[10], 0.9 * g[9], g[12], 0.5 * g[6], 0.4 * g[14])
    lower_fold = 0.2 + 0.75 * max(g[12], 0.5 * g[10], 0.5 * g[9], 0.5 * g[6], 0.4 * g[14])
    for alar, corner, side in ((31, 48, -1), (35, 54, 1)):
        start = lm[alar] + [side * 0.06, -0.05, -0.02]
        end = lm[corner] + [side * 0.1, 0.1, -0.05]
        mid = (start + end) / 2 + [side * 0.12, 0.0, 0.0]
        curve = _bezier(start, mid, end, 10)
        _fold(pt, curve[:5], d * upper_fold * 0.85, 1.5 + 1.5 * max(g[10], g[9]), [side * 0.03, 0, 0])
        _fold(pt, curve[4:], d * lower_fold * 0.85, 1.5 + 0.8 * g[12], [side * 0.03, 0, 0])
        # AU14 dimples: crescents lateral to the lip corners.
        c = lm[corner] + [side * 0.08, -0.01, 0]
        arc = _arc(c, (0.04, 0.08), -70 if side > 0 else 110, 70 if side > 0 else 250, 0.0, 8)
        pt.crease(arc, d * g[14], 2.6)
        # AU15: creases running down and out from the depressed corners.
        pt.crease(np.array([lm[corner] + [side * 0.03, 0.04, 0], lm[corner] + [side * 0.1, 0.2, 0]]),
                  d * g[15] * 0.9)
    # AU17: mentolabial furrow and chin-boss wrinkling (a fixed stipple per subject).
    _fold(pt, _bezier(lm[58] + [-0.05, 0.1, 0], lm[57] + [0, 0.06 + 0.03 * g[17], 0],
                      lm[56] + [0.05, 0.1, 0], 8), 0.15 + d * g[17] * 0.85, 1.5 + 1.2 * g[17],
          [0, 0.035, 0])
    if g[17] > 0.05:
        dots = jitter.uniform([-0.2, 0.0], [0.2, 0.2], (18, 2))
        base = lm[8] + [0, -0.33, 0.02]
        for dx, dy in dots:
            centre = pt.p(base + [dx, dy, 0])[0]
            _ellipse(pt.fine, centre, (2.0 * pt.px / 95, 1.5 * pt.px / 95), 0,
                     float(1.0 - 0.45 * min(d * g[17], 1.0)))
    # AU23 (and AU24 weakly): vertical wrinkles on the tightened lips.
    lip_lines = max(g[23], 0.4 * g[24])
    for frac in (-0.6, -0.35, -0.12, 0.12, 0.35, 0.6):
        top = lm[51] * (1 - abs(frac)) + lm[48 if frac < 0 else 54] * abs(frac)
        bottom = lm[57] * (1 - abs(frac)) + lm[48 if frac < 0 else 54] * abs(frac)
        pt.crease(np.array([top + [0, 0.015, 0], top + [0, 0.06, 0]]), d * lip_lines * 0.8, 1.5)
        pt.crease(np.array([bottom + [0, -0.06, 0], bottom + [0, -0.015, 0]]), d * lip_lines * 0.7, 1.5)
    # Philtrum ridges.
    for side in (-1, 1):
        pt.crease(np.array([lm[33] + [side * 0.04, 0.02, 0], lm[51] + [side * 0.05, -0.03, 0]]), 0.12)


def _stubble(pt: _Painter) -> None:
    if pt.look.stubble <= 0:
        return
    lm = pt.lm3
    region = np.concatenate([lm[3:14], lm[[54]] + [0.05, -0.12, 0], lm[[33]] + [0, 0.03, 0],
                             lm[[48]] + [-0.05, -0.12, 0]])
    pt.broad_fill(region, 1.0 - 0.22 * pt.look.stubble)


def _eyes(pt: _Painter) -> None:
    lm, look, view = pt.lm, pt.look, pt.view
    for idx in (slice(36, 42), slice(42, 48)):
        eye = lm[idx]
        _fill(pt.img, eye, (232, 236, 240))
        half = np.linalg.norm(eye[3] - eye[0]) / 2
        centre = eye.mean(0) + np.array(view.gaze) * half
        radius = 0.42 * half
        disc = centre + radius * np.stack([np.cos(np.linspace(0, 2 * np.pi, 24)),
                                           np.sin(np.linspace(0, 2 * np.pi, 24))], 1)
        _fill_clipped(pt.img, eye, disc, look.iris)
        _fill_clipped(pt.img, eye, centre + 0.45 * (disc - centre), (15, 15, 15))
        _ellipse(pt.img, centre + radius * np.array([-0.3, -0.35]), (1.2, 1.2), 0,
                 (245, 245, 245))
        _line(pt.img, eye[[0, 1, 2, 3]], (25, 25, 30), 2.2 * pt.px / 95)
        _line(pt.img, eye[[3, 4, 5, 0]], tuple(pt.skin * 0.55), 1.0)


def _brows(pt: _Painter) -> None:
    look = pt.look
    colour = pt.skin + look.brow_darkness * (np.array(look.hair) - pt.skin)
    for idx, order in ((slice(17, 22), 1), (slice(22, 27), -1)):
        brow = pt.lm3[idx][::order]  # outer -> inner
        thick = look.brow_thickness * np.linspace(0.55, 1.0, 5)[:, None]
        top = brow + np.hstack([np.zeros((5, 1)), -0.6 * thick, np.zeros((5, 1))])
        bottom = brow + np.hstack([np.zeros((5, 1)), 0.4 * thick, np.zeros((5, 1))])
        _fill(pt.img, pt.p(np.concatenate([top, bottom[::-1]])), colour)


def _nose(pt: _Painter) -> None:
    lm = pt.lm3
    dark = tuple(pt.skin * 0.35)
    for a, b, side in ((31, 32, -1), (35, 34, 1)):
        centre = pt.p(lm[a] * 0.45 + lm[b] * 0.55 + [0, -0.015, 0])[0]
        width = np.linalg.norm(pt.lm[a] - pt.lm[b]) * 0.55
        _ellipse(pt.img, centre, (width, width * 0.45), pt.view.roll + side * 15, dark)
    pt.crease(lm[[31, 32, 33, 34, 35]], 0.3, 1.2)
    for alar, side in ((31, -1), (35, 1)):  # alar creases around the nose wings
        wing = lm[alar]
        pt.crease(_bezier(wing + [side * -0.03, -0.1, 0], wing + [side * 0.06, -0.04, 0],
                          wing + [side * -0.01, 0.03, 0], 8), 0.3)


def _mouth(pt: _Painter, g: dict[int, float]) -> None:
    lm, lm3, look = pt.lm, pt.lm3, pt.look
    lip = np.array(look.lip)
    lip = lip + (pt.skin - lip) * 0.5 * max(g[24], g[23])  # pressed, tightened lips pale
    _fill(pt.img, lm[48:60], tuple(lip * 0.9))
    _fill(pt.img, lm[[48, 60, 67, 66, 65, 64, 54, 55, 56, 57, 58, 59]], tuple(lip))
    narrowed = max(g[23], 0.6 * g[24])
    if narrowed > 0.05:  # AU23/AU24: less of the red shows; skin creeps in from the outline
        _line(pt.img, lm[48:60], tuple(pt.skin * 0.97), 4.0 * narrowed * pt.px / 95, closed=True)
    gap = float(np.mean(lm3[[67, 66, 65], 1] - lm3[[61, 62, 63], 1]))
    inner = lm[[60, 61, 62, 63, 64, 65, 66, 67]]
    if gap > 0.03:
        _fill(pt.img, inner, (35, 25, 55))
        teeth = np.concatenate([lm3[60:65], lm3[64:59:-1] + [0, min(0.09, 0.55 * gap), 0]])
        _fill_clipped(pt.img, inner, pt.p(teeth), (215, 225, 230))
        if gap > 0.16:
            low = lm3[[64, 65, 66, 67, 60]]
            lower_teeth = np.concatenate([low, low[::-1] + [0, -0.05, 0]])
            _fill_clipped(pt.img, inner, pt.p(lower_teeth), (200, 210, 215))
    _line(pt.img, lm[[60, 61, 62, 63, 64]], tuple(lip * 0.45), (1.6 + 1.6 * g[24]) * pt.px / 95)
    if gap > 0.03:
        _line(pt.img, lm[[64, 65, 66, 67, 60]], tuple(lip * 0.6), 1.0)
    # Lower-lip highlight and the corners' dark pits.
    pt.broad_ellipse((lm3[57] + lm3[66]) / 2, (0.12, 0.03), 1.08)
    for corner in (48, 54):
        _ellipse(pt.img, lm[corner], (1.3, 1.3), 0, tuple(lip * 0.4))


def _glasses(pt: _Painter) -> None:
    """Rounded-rectangle rims (superellipses) around the eye centres, a bridge and temples."""
    if not pt.look.glasses:
        return
    frame_colour = (30, 30, 35)
    width = max(1.5, 2.2 * pt.px / 95)
    a = np.linspace(0, 2 * np.pi, 32, endpoint=False)
    cos, sin = np.cos(a), np.sin(a)
    for side in (-1.0, 1.0):
        c = np.array([side * 0.5, 0.02, -0.15])
        rim = np.stack([c[0] + 0.31 * np.sign(cos) * np.abs(cos) ** 0.6,
                        c[1] + 0.2 * np.sign(sin) * np.abs(sin) ** 0.6, np.full(32, c[2])], 1)
        _line(pt.img, pt.p(rim), frame_colour, width, closed=True)
        temple = np.array([c + [side * 0.31, -0.05, 0],
                           [side * (pt.ident.face_half_width + 0.02), 0.1, -0.9]])
        _line(pt.img, pt.p(temple), frame_colour, width)
    bridge = _bezier([-0.19, -0.04, -0.1], [0, -0.1, 0.05], [0.19, -0.04, -0.1], 6)
    _line(pt.img, pt.p(bridge), frame_colour, width)


def _occluder(pt: _Painter) -> np.ndarray:
    """Draw the view's occluder (after shading) and return its mask (H, W) uint8."""
    mask = np.zeros((IMAGE_HEIGHT, IMAGE_WIDTH), np.uint8)
    occ = pt.view.occluder
    if occ is None:
        return mask
    centre = pt.p([occ.centre[0], occ.centre[1], 0.2])[0]
    axes = (occ.axes[0] * pt.px, occ.axes[1] * pt.px)
    _ellipse(mask, centre, axes, occ.angle + pt.view.roll, 255)
    shade = np.linspace(1.1, 0.8, IMAGE_HEIGHT, dtype=np.float32)[:, None, None]
    colour = np.array(occ.colour, np.float32) * shade
    alpha = (mask.astype(np.float32) / 255.0)[..., None]
    pt.img[:] = colour * alpha + pt.img * (1 - alpha)
    return mask


def _lighting(pt: _Painter) -> None:
    """Directional side light (a clipped linear ramp across the head), gain and colour cast."""
    view = pt.view
    ys, xs = _GRID4
    cx, cy = view.centre
    direction = np.array([np.cos(view.light_angle), np.sin(view.light_angle)], np.float32)
    ramp = ((xs - cx) * direction[0] + (ys - cy) * direction[1]) / (1.2 * pt.px)
    light = view.gain * (1.0 + view.light_strength * np.clip(ramp, -1.2, 1.2))
    light = cv2.resize(light.astype(np.float32), (IMAGE_WIDTH, IMAGE_HEIGHT),
                       interpolation=cv2.INTER_LINEAR)
    pt.img *= light[..., None] * np.array(view.cast, np.float32)


def _gamma_table(gamma: float) -> np.ndarray:
    return np.clip(255.0 * (np.arange(256) / 255.0) ** gamma + 0.5, 0, 255).astype(np.uint8)


def render(landmarks3d: np.ndarray, intensities: np.ndarray, ident: Identity, look: Look,
           view: View, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw one frame.

    Returns the BGR uint8 image (IMAGE_HEIGHT, IMAGE_WIDTH, 3), the projected 68 landmarks in
    pixels (68, 2, float32) and the occluder mask (H, W, uint8, 255 = occluded).
    `rng` supplies only the sensor noise, so a frame is a pure function of its inputs and seed.
    """
    g = {au: float(x) for au, x in zip(SYNFACS_AUS, intensity_gain(intensities))}
    pt = _Painter(ident, look, view, landmarks3d)
    _background(pt)
    _hair_back(pt)
    _body(pt)
    _ears(pt)
    _head(pt)
    # The hull mask (in `broad`) becomes an edge-darkening profile before the other shades.
    roundness = cv2.GaussianBlur(pt.broad, (0, 0), 0.16 * pt.px / 4)
    pt.broad[:] = 1.0
    _shading(pt, g)
    _stubble(pt)
    _wrinkles(pt, g)
    _eyes(pt)
    _brows(pt)
    _nose(pt)
    _mouth(pt, g)
    _hair_front(pt)
    _glasses(pt)
    broad = cv2.GaussianBlur(pt.broad, (0, 0), 0.05 * pt.px / 4)
    broad = cv2.resize(broad, (IMAGE_WIDTH, IMAGE_HEIGHT), interpolation=cv2.INTER_LINEAR)
    roundness = cv2.resize(roundness, (IMAGE_WIDTH, IMAGE_HEIGHT), interpolation=cv2.INTER_LINEAR)
    broad *= 1.0 - 0.5 * pt.hull * (1.0 - roundness)
    fine = cv2.GaussianBlur(pt.fine, (0, 0), 0.7)
    pt.img *= (broad * fine)[..., None]
    mask = _occluder(pt)
    _lighting(pt)
    img = pt.img
    if view.blur > 0.2:
        img = cv2.GaussianBlur(img, (0, 0), view.blur)
    img += rng.standard_normal((IMAGE_HEIGHT, IMAGE_WIDTH, 1), dtype=np.float32) * np.float32(view.noise)
    image = cv2.LUT(np.clip(img + 0.5, 0, 255).astype(np.uint8), _gamma_table(view.gamma))
    return image, pt.lm.astype(np.float32), mask
