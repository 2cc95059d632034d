"""SynFACS action units: landmark displacements of the 15 AUs as a function of intensity 0–5.

Each AU moves the landmarks its muscle moves, in the direction the FACS manual describes
(Ekman, Friesen & Hager, *Facial Action Coding System*, 2002; names and muscles as in the
thesis, Figure 3.2). `_FULL` gives every AU's displacement at full intensity (5 = FACS level E)
in face units (shape.py: eye-centre distance 1, y down). AUs whose cue is mostly appearance
(`fau.synth.cues.CUE_KIND`) keep that direction but are scaled down so that no point moves more
than `cues.APPEARANCE_MAX_SHIFT` (about the tracker error of the shipped landmarks): render.py
draws them mainly as wrinkles, furrows, bulges and shading. Displacements scale with
``(I / 5) ** INTENSITY_EXPONENT``; combined AUs add, then anatomical constraints (lips and
eyelids cannot cross) are enforced.
"""

from __future__ import annotations

import numpy as np

from fau.aus import SYNFACS_AUS
from fau.synth.cues import APPEARANCE, APPEARANCE_MAX_SHIFT, CUE_KIND

MAX_INTENSITY = 5.0
INTENSITY_EXPONENT = 0.9

# Landmark pairs (image-left, image-right) mirrored about the midline; x displacements given
# for the image-left member are negated for the right one, so "+dx" below means "outwards".
_PAIRS = {
    17: 26, 18: 25, 19: 24, 20: 23, 21: 22,
    36: 45, 37: 44, 38: 43, 39: 42, 40: 47, 41: 46,
    31: 35, 32: 34,
    48: 54, 49: 53, 50: 52, 59: 55, 58: 56, 60: 64, 61: 63, 67: 65,
    0: 16, 1: 15, 2: 14, 3: 13, 4: 12, 5: 11, 6: 10, 7: 9,
}
_MIDLINE = (8, 27, 28, 29, 30, 33, 51, 57, 62, 66)

# AU -> {landmark: (outwards dx, dy, dz)} at full intensity, for image-left / midline points,
# in the FACS direction (appearance AUs are scaled down afterwards, see `_basis`).
_FULL: dict[int, dict[int, tuple[float, float, float]]] = {
    # AU1 inner brow raiser (frontalis, pars medialis): inner brow up, brow oblique.
    1: {21: (-0.01, -0.21, 0), 20: (0, -0.15, 0), 19: (0, -0.08, 0), 18: (0, -0.03, 0),
        37: (0, -0.012, 0), 38: (0, -0.015, 0)},
    # AU2 outer brow raiser (frontalis, pars lateralis): lateral brow up, arched.
    2: {17: (0.01, -0.19, 0), 18: (0, -0.19, 0), 19: (0, -0.14, 0), 20: (0, -0.06, 0),
        21: (0, -0.015, 0), 36: (0, -0.01, 0), 37: (0, -0.015, 0)},
    # AU4 brow lowerer (corrugator): brows lowered and drawn together, upper lid lowered.
    4: {21: (-0.08, 0.13, 0), 20: (-0.06, 0.13, 0), 19: (-0.04, 0.10, 0), 18: (-0.02, 0.07, 0),
        17: (0, 0.04, 0), 37: (0, 0.015, 0), 38: (0, 0.02, 0)},
    # AU6 cheek raiser (orbicularis oculi, pars orbitalis): lower lid pushed up, eye narrowed,
    # lateral brow pulled down slightly, cheeks lifted.
    6: {41: (0, -0.04, 0), 40: (0, -0.032, 0), 36: (0.005, -0.015, 0), 37: (0, 0.008, 0),
        17: (0, 0.03, 0), 18: (0, 0.015, 0), 1: (0.01, -0.02, 0), 2: (0.015, -0.025, 0),
        3: (0.01, -0.015, 0)},
    # AU7 lid tightener (orbicularis oculi, pars palpebralis): lower lid raised and straightened,
    # upper lid slightly lowered.
    7: {40: (0, -0.035, 0), 41: (0, -0.033, 0), 37: (0, 0.016, 0), 38: (0, 0.018, 0),
        39: (-0.005, 0, 0)},
    # AU9 nose wrinkler (levator labii superioris alaeque nasi): nose wings and upper lip up,
    # inner brows pulled down, lower lids pushed up.
    9: {31: (0.02, -0.075, 0), 32: (0.01, -0.055, 0), 33: (0, -0.045, 0), 29: (0, -0.035, 0),
        30: (0, -0.03, 0), 50: (0, -0.06, 0), 51: (0, -0.06, 0), 49: (0, -0.04, 0),
        61: (0, -0.045, 0), 62: (0, -0.045, 0), 21: (-0.02, 0.06, 0), 20: (-0.01, 0.035, 0),
        40: (0, -0.015, 0), 41: (0, -0.012, 0)},
    # AU10 upper lip raiser (levator labii superioris): upper lip raised (lateral-centre most),
    # nasal wings lifted and widened.
    10: {50: (0, -0.10, 0), 51: (0, -0.085, 0), 49: (0, -0.075, 0), 48: (0, -0.02, 0),
         61: (0, -0.055, 0), 62: (0, -0.05, 0), 60: (0, -0.015, 0), 67: (0, -0.02, 0),
         66: (0, -0.02, 0), 31: (0.015, -0.025, 0), 32: (0.005, -0.015, 0)},
    # AU12 lip corner puller (zygomaticus major): corners up and out (obliquely), lips stretched.
    12: {48: (0.12, -0.15, 0), 60: (0.10, -0.13, 0), 49: (0.05, -0.06, 0),
         59: (0.06, -0.06, 0), 58: (0.02, -0.01, 0), 61: (0.02, -0.035, 0),
         67: (0.025, -0.03, 0), 66: (0, -0.01, 0), 57: (0, 0.0, 0), 31: (0.01, -0.01, 0),
         41: (0, -0.01, 0), 2: (0.02, -0.01, 0), 3: (0.02, -0.01, 0)},
    # AU14 dimpler (buccinator): corners tightened and drawn back into the cheek (slightly
    # outwards and up in a frontal view), lips thinned near the corners.
    14: {48: (0.035, -0.025, -0.04), 60: (0.03, -0.02, -0.03), 49: (0.01, 0.012, 0),
         59: (0.01, -0.012, 0)},
    # AU15 lip corner depressor (triangularis): corners pulled down (and slightly out).
    15: {48: (0.02, 0.11, 0), 60: (0.015, 0.09, 0), 59: (0.01, 0.05, 0), 49: (0, 0.03, 0),
         58: (0, 0.02, 0), 67: (0, 0.03, 0), 61: (0, 0.02, 0)},
    # AU17 chin raiser (mentalis): chin boss and lower lip pushed up, mouth shaped like an
    # inverted U, lower lip protrudes.
    17: {57: (0, -0.10, 0.05), 58: (0, -0.09, 0.05), 59: (0, -0.06, 0.03), 66: (0, -0.07, 0.03),
         67: (0, -0.06, 0.03), 48: (0, 0.02, 0), 60: (0, 0.01, 0), 62: (0, -0.025, 0),
         61: (0, -0.02, 0), 51: (0, -0.03, 0), 50: (0, -0.025, 0), 8: (0, -0.05, 0),
         7: (0, -0.045, 0), 6: (0, -0.025, 0)},
    # AU23 lip tightener (orbicularis oris): red of the lips narrowed, mouth narrowed.
    23: {48: (-0.05, 0, 0), 60: (-0.04, 0, 0), 49: (-0.02, 0.03, 0), 50: (-0.01, 0.045, 0),
         51: (0, 0.04, 0), 59: (-0.02, -0.04, 0), 58: (-0.01, -0.06, 0), 57: (0, -0.06, 0)},
    # AU24 lip pressor (orbicularis oris): lips pressed together, vermilion thinned vertically.
    24: {49: (0, 0.045, 0), 50: (0, 0.055, 0), 51: (0, 0.05, 0), 59: (0, -0.06, 0),
         58: (0, -0.085, 0), 57: (0, -0.085, 0), 61: (0, 0.012, 0), 62: (0, 0.012, 0),
         67: (0, -0.012, 0), 66: (0, -0.012, 0), 48: (0.01, 0.01, 0)},
    # AU25 lips part: inner lips separate, lower lip drops a little.
    25: {61: (0, -0.025, 0), 62: (0, -0.03, 0), 67: (0, 0.10, 0), 66: (0, 0.11, 0),
         59: (0, 0.06, 0), 58: (0, 0.075, 0), 57: (0, 0.08, 0), 50: (0, -0.015, 0),
         51: (0, -0.015, 0), 60: (0, 0.01, 0)},
    # AU26 jaw drop (masseter/temporalis relaxed): mandible lowered: chin, lower jaw, lower lip
    # down; mouth corners follow a little and narrow.
    26: {8: (0, 0.40, 0), 7: (-0.02, 0.38, 0), 6: (-0.025, 0.33, 0), 5: (-0.02, 0.25, 0),
         4: (-0.01, 0.16, 0), 3: (0, 0.08, 0), 2: (0, 0.03, 0), 57: (0, 0.32, 0),
         58: (0, 0.31, 0), 59: (0, 0.26, 0), 66: (0, 0.30, 0), 67: (0, 0.28, 0),
         48: (-0.03, 0.08, 0), 60: (-0.02, 0.10, 0), 61: (0, -0.01, 0), 62: (0, -0.01, 0)},
}


def _expand(full: dict[int, tuple[float, float, float]]) -> np.ndarray:
    """Full-intensity (68, 3) displacement with mirrored right-side points (x sign flipped)."""
    out = np.zeros((68, 3))
    for index, (dx, dy, dz) in full.items():
        if index in _MIDLINE:
            out[index] = (0.0, dy, dz)
        else:
            out[index] = (-dx, dy, dz)
            out[_PAIRS[index]] = (dx, dy, dz)
    return out


def _basis(au: int) -> np.ndarray:
    """Full-intensity displacement of `au`; appearance AUs capped at APPEARANCE_MAX_SHIFT."""
    full = _expand(_FULL[au])
    if CUE_KIND[au] == APPEARANCE:
        largest = float(np.linalg.norm(full, axis=1).max())
        if largest > APPEARANCE_MAX_SHIFT:
            full *= APPEARANCE_MAX_SHIFT / largest
    return full


#: (15, 68, 3) full-intensity displacement basis in `fau.aus.SYNFACS_AUS` order.
AU_BASIS: np.ndarray = np.stack([_basis(au) for au in SYNFACS_AUS])


def intensity_gain(intensity: np.ndarray) -> np.ndarray:
    """Fraction of the full displacement at FACS intensity 0–5: (I/5)^0.9, clipped to [0, 1]."""
    return np.clip(np.asarray(intensity, dtype=float) / MAX_INTENSITY, 0.0, 1.0) ** INTENSITY_EXPONENT


def _enforce_constraints(p: np.ndarray) -> np.ndarray:
    """Lips and eyelids cannot pass through each other: lower ≥ upper (+ a small margin)."""
    for upper, lower in ((61, 67), (62, 66), (63, 65)):
        overlap = p[upper, 1] - p[lower, 1]
        if overlap > 0:
            p[upper, 1] -= overlap / 2
            p[lower, 1] += overlap / 2
    for upper, lower in ((50, 61), (51, 62), (52, 63), (66, 57), (67, 58), (65, 56)):
        if p[lower, 1] - p[upper, 1] < 0.02:
            if upper in (50, 51, 52):
                p[upper, 1] = p[lower, 1] - 0.02
            else:
                p[lower, 1] = p[upper, 1] + 0.02
    for upper, lower in ((37, 41), (38, 40), (44, 46), (43, 47)):
        if p[lower, 1] - p[upper, 1] < 0.012:
            mid = (p[lower, 1] + p[upper, 1]) / 2
            p[upper, 1], p[lower, 1] = mid - 0.006, mid + 0.006
    return p


def apply_actions(neutral: np.ndarray, intensities: np.ndarray) -> np.ndarray:
    """Landmarks (68, 3) of a face showing AU `intensities` (15, SYNFACS_AUS order, 0–5).

    Implements the additive FACS-direction displacement model of this module's docstring.
    """
    intensities = np.asarray(intensities, dtype=float)
    if intensities.shape != (len(SYNFACS_AUS),):
        raise ValueError(f"expected {len(SYNFACS_AUS)} AU intensities, got {intensities.shape}")
    moved = neutral + np.tensordot(intensity_gain(intensities), AU_BASIS, axes=1)
    return _enforce_constraints(moved)
