"""SynFACS face geometry: a parametric 68-point face (iBUG-68 order) with identity parameters.

Units: the distance between the two eye centres is 1, the origin is their midpoint, x grows to
the image right, y grows down and z grows towards the camera (the nose tip has the largest z).
The 2-D layout follows the proportions of an average frontal face; z is a coarse head-shape
depth used only to approximate yaw and pitch (render.project).

Index convention (0-based, iBUG-68, the one dlib's 68-point predictor uses):
jaw 0–16 (0 = image left), brows 17–21 (image left, outer→inner) and 22–26 (inner→outer),
nose bridge 27–30 (30 = tip), lower nose 31–35, eyes 36–41 (image left: 36 outer, 39 inner)
and 42–47 (42 inner, 45 outer), outer lips 48–59 (48/54 corners), inner lips 60–67.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

N_LANDMARKS = 68

# Jaw, image-left half from the ear (0) to the chin (8): x as a fraction of the half width,
# y as a fraction of the drop from the jaw top to the chin.
_JAW_U = np.array([1.0, 0.99, 0.96, 0.905, 0.80, 0.64, 0.45, 0.235, 0.0])
_JAW_V = np.array([0.0, 0.163, 0.328, 0.489, 0.639, 0.772, 0.885, 0.976, 1.0])
_JAW_Z = np.array([-1.05, -0.95, -0.82, -0.66, -0.48, -0.30, -0.15, -0.03, 0.02])


@dataclass(frozen=True)
class Identity:
    """Geometric identity of one synthetic subject (face units, see module docstring)."""

    face_half_width: float = 1.17  # jaw 0/16 distance from the midline
    jaw_top: float = 0.03  # y of jaw points 0/16 (eye level)
    chin: float = 1.92  # y of the chin (landmark 8)
    jaw_square: float = 0.0  # > 0 widens the lower jaw (points 3–6), < 0 tapers it
    brow_height: float = 0.33  # brow arch peak above the eye centre line
    brow_arch: float = 0.12
    brow_inner_x: float = 0.20  # |x| of the inner brow ends (21/22)
    brow_outer_x: float = 0.94  # |x| of the outer brow ends (17/26)
    eye_half_width: float = 0.20
    eye_upper: float = 0.07  # upper lid height above the eye centre
    eye_lower: float = 0.055  # lower lid depth below the eye centre
    eye_tilt: float = 0.0  # outer corner raised (> 0) relative to the inner corner
    nose_tip: float = 0.60  # y of landmark 30
    nose_base: float = 0.80  # y of landmark 33
    nose_half_width: float = 0.23  # |x| of the alar points 31/35
    mouth_y: float = 1.13  # y of the lip line (inner lips)
    mouth_half_width: float = 0.45  # |x| of the corners 48/54
    upper_lip: float = 0.115  # lip line to the top of the upper lip (51)
    lower_lip: float = 0.21  # lip line to the bottom of the lower lip (57)
    female: bool = False

    def to_dict(self) -> dict:
        """Plain dict of the parameters (stored per subject in synfacs_truth.json)."""
        return asdict(self)


# Identity model: parameter -> (mean, standard deviation, lowest, highest), face units. Every
# parameter is Gaussian around the average face, clipped to [lowest, highest]. The deviations
# marked "calibrated" were set so that SynFACS faces (with SynFACS head poses) spread like real
# faces measured with dlib's 68-point predictor on the frontal, closed-mouth faces of
# scikit-image's LFW subset (calibration.py: `CALIBRATION_TARGET`; the test checks the match).
# The others keep the deviation of the first SynFACS's uniform draws, whose spread matched the
# real one already (brows, eye width). The first SynFACS spread the lower face (nose, mouth and
# chin height, mouth width, lip height) about half as much as real faces do.
IDENTITY_PARAMETERS: dict[str, tuple[float, float, float, float]] = {
    "face_half_width": (1.18, 0.055, 1.0, 1.36),  # calibrated
    "jaw_top": (0.03, 0.035, -0.06, 0.12),
    "chin": (1.925, 0.10, 1.65, 2.2),  # calibrated
    "jaw_square": (0.0, 0.35, -0.8, 0.8),
    "brow_height": (0.335, 0.0375, 0.24, 0.43),
    "brow_arch": (0.115, 0.032, 0.04, 0.19),
    "brow_inner_x": (0.20, 0.029, 0.13, 0.27),
    "brow_outer_x": (0.93, 0.040, 0.83, 1.03),
    "eye_half_width": (0.20, 0.0115, 0.17, 0.23),
    "eye_upper": (0.07, 0.013, 0.04, 0.10),  # calibrated
    "eye_lower": (0.055, 0.009, 0.035, 0.075),  # calibrated
    "eye_tilt": (0.005, 0.017, -0.04, 0.05),
    "nose_tip": (0.60, 0.05, 0.46, 0.74),  # calibrated
    "nose_half_width": (0.23, 0.026, 0.16, 0.30),  # calibrated
    "mouth_y": (1.13, 0.065, 0.96, 1.32),  # calibrated
    "mouth_half_width": (0.445, 0.045, 0.33, 0.56),  # calibrated
    "upper_lip": (0.1125, 0.03, 0.05, 0.18),  # calibrated
    "lower_lip": (0.205, 0.045, 0.11, 0.31),  # calibrated
}
#: nose base (landmark 33) below the nose tip: (mean, deviation, lowest, highest)
NOSE_BASE_DROP = (0.20, 0.017, 0.16, 0.24)
#: Shared "lower-face length" factor L ~ N(0, 1): parameter -> loading (face units per unit L).
#: Real faces whose nose is long relative to the eye spacing also have a low mouth, a long chin
#: and a wide jaw (correlations 0.6-0.9 between these on the LFW faces), so these parameters move
#: together rather than independently. Calibrated with the deviations above.
LOWER_FACE_LOADINGS: dict[str, float] = {
    "nose_tip": 0.045, "mouth_y": 0.07, "chin": 0.10, "face_half_width": 0.045,
}
#: least vertical gaps (face units) kept between features after sampling
_MIN_PHILTRUM = 0.10  # nose base (33) to the top of the upper lip (51)
_MIN_CHIN_DROP = 0.38  # bottom of the lower lip (57) to the chin (8)
_CLIP_Z = 2.5  # Gaussian draws are clipped to +-2.5 deviations


def _draw(rng: np.random.Generator, mean: float, sd: float, low: float, high: float,
          shared: float = 0.0) -> float:
    z = float(np.clip(rng.standard_normal(), -_CLIP_Z, _CLIP_Z))
    return float(np.clip(mean + sd * z + shared, low, high))


def sample_identity(rng: np.random.Generator, female: bool) -> Identity:
    """Draw a random identity from the calibrated model above (`IDENTITY_PARAMETERS`,
    `LOWER_FACE_LOADINGS`), then keep a philtrum and a chin below the lips.

    Male faces get slightly wider, squarer jaws and lower, flatter brows on average
    (a coarse sexual-dimorphism cue so gendered subject names are not arbitrary).
    """
    lower_face = float(np.clip(rng.standard_normal(), -_CLIP_Z, _CLIP_Z))
    values: dict[str, float | bool] = {}
    for name, (mean, sd, low, high) in IDENTITY_PARAMETERS.items():
        shared = LOWER_FACE_LOADINGS.get(name, 0.0) * lower_face
        values[name] = _draw(rng, mean, sd, low, high, shared)
    sex = -1.0 if female else 1.0
    values["jaw_square"] = float(np.clip(values["jaw_square"] + 0.25 * sex, -0.8, 0.8))
    values["face_half_width"] += 0.03 * sex
    values["brow_height"] -= 0.02 * sex
    values["brow_arch"] -= 0.015 * sex
    values["nose_base"] = values["nose_tip"] + _draw(rng, *NOSE_BASE_DROP)
    lip_top = values["mouth_y"] - 1.15 * values["upper_lip"]  # landmark 50, the highest lip point
    if lip_top < values["nose_base"] + _MIN_PHILTRUM:
        values["mouth_y"] += values["nose_base"] + _MIN_PHILTRUM - lip_top
    values["chin"] = max(values["chin"], values["mouth_y"] + values["lower_lip"] + _MIN_CHIN_DROP)
    values["female"] = female
    return Identity(**values)


def _mirror(points: np.ndarray) -> np.ndarray:
    out = points.copy()
    out[..., 0] = -out[..., 0]
    return out


def neutral_landmarks(ident: Identity) -> np.ndarray:
    """The neutral (no AU) 68-point face of `ident`, shape (68, 3): x, y, z in face units."""
    p = np.zeros((N_LANDMARKS, 3))
    # Jaw: left half 0..8, right half mirrored 16..8.
    u = _JAW_U.copy()
    u[3:7] = u[3:7] ** (1.0 - 0.35 * ident.jaw_square)
    left = np.stack([-ident.face_half_width * u,
                     ident.jaw_top + (ident.chin - ident.jaw_top) * _JAW_V, _JAW_Z], axis=1)
    p[0:9] = left
    p[16:7:-1] = _mirror(left)
    # Brows (17 outer → 21 inner), mirrored to 26 ← 22.
    t = np.linspace(0.0, 1.0, 5)
    h_outer, h_inner = ident.brow_height - 0.13, ident.brow_height - 0.09
    brow_y = -(h_outer + (h_inner - h_outer) * t + ident.brow_arch * 4 * t * (1 - t))
    brow_x = -(ident.brow_outer_x + (ident.brow_inner_x - ident.brow_outer_x) * t)
    brow_z = -0.38 + 0.33 * t
    brow = np.stack([brow_x, brow_y, brow_z], axis=1)
    p[17:22] = brow
    p[26:21:-1] = _mirror(brow)
    # Nose: bridge 27–30 on the midline, lower nose 31–35.
    p[27:31] = [[0, -0.02, -0.05], [0, 0.19, 0.10], [0, 0.39, 0.24], [0, ident.nose_tip, 0.42]]
    nb, nw = ident.nose_base, ident.nose_half_width
    p[31:36] = [[-nw, nb - 0.08, 0.06], [-0.48 * nw, nb - 0.03, 0.16], [0, nb, 0.22],
                [0.48 * nw, nb - 0.03, 0.16], [nw, nb - 0.08, 0.06]]
    # Eyes: image-left eye centred at (-0.5, 0): 36 outer, 37/38 upper, 39 inner, 40/41 lower.
    w, up, lo, tilt = ident.eye_half_width, ident.eye_upper, ident.eye_lower, ident.eye_tilt
    left_eye = np.array([
        [-w, -tilt, -0.34],
        [-0.38 * w, -up - 0.4 * tilt, -0.22],
        [0.37 * w, -up * 0.98, -0.20],
        [w, 0.02, -0.24],
        [0.34 * w, lo, -0.21],
        [-0.40 * w, lo * 1.02, -0.24],
    ])
    left_eye[:, 0] -= 0.5
    p[36:42] = left_eye
    # Right eye mirrored: 42 inner, 43/44 upper (inner→outer), 45 outer, 46/47 lower (outer→inner).
    p[[45, 44, 43, 42, 47, 46]] = _mirror(left_eye)
    # Outer lips: 48 corner, 49/50 upper left, 51 top centre, ..., 54 corner, 55–59 lower.
    m, mw, ul, ll = ident.mouth_y, ident.mouth_half_width, ident.upper_lip, ident.lower_lip
    p[48] = [-mw, m - 0.03, -0.08]
    p[49] = [-0.64 * mw, m - 0.85 * ul, 0.06]
    p[50] = [-0.26 * mw, m - 1.15 * ul, 0.13]
    p[51] = [0.0, m - 0.95 * ul, 0.15]
    p[55] = [0.66 * mw, m + 0.62 * ll, 0.04]
    p[56] = [0.30 * mw, m + 0.94 * ll, 0.11]
    p[57] = [0.0, m + ll, 0.13]
    p[[52, 53, 54]] = _mirror(p[[50, 49, 48]])
    p[[58, 59]] = _mirror(p[[56, 55]])
    # Inner lips: 60 left corner, 61–63 upper, 64 right corner, 65–67 lower (right → left).
    p[60] = [-0.82 * mw, m - 0.01, -0.04]
    p[61] = [-0.24 * mw, m - 0.012, 0.10]
    p[62] = [0.0, m - 0.01, 0.11]
    p[63] = _mirror(p[61])
    p[64] = _mirror(p[60])
    p[67] = [-0.24 * mw, m + 0.008, 0.10]
    p[66] = [0.0, m + 0.01, 0.11]
    p[65] = _mirror(p[67])
    return p


def eye_centres(landmarks: np.ndarray) -> np.ndarray:
    """Centres of the image-left and image-right eyes (means of points 36–41 and 42–47)."""
    return np.stack([landmarks[..., 36:42, :].mean(-2), landmarks[..., 42:48, :].mean(-2)], -2)


def interocular(landmarks: np.ndarray) -> np.ndarray:
    """Distance between the eye centres (the usual normaliser of landmark error)."""
    c = eye_centres(landmarks[..., :2])
    return np.linalg.norm(c[..., 0, :] - c[..., 1, :], axis=-1)
