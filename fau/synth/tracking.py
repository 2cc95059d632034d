"""Tracker-like error on the landmarks SynFACS ships (the rendering uses the exact ones).

Real AU datasets ship landmarks from a face tracker, not the true positions; a landmark model fed
exact positions would see AUs no tracker lets it see. SynFACS therefore writes
``truth + error`` to the landmark files, with:

* size: mean point-to-point error `TRACKER_NME` = 4% of the inter-ocular distance (eye-centre
  distance), over the 68 points. Our assumption, within the 3-5% that cascaded-regression
  trackers reach on real faces; checked against our own measurement (calibration.py): dlib's
  68-point predictor on the 25-px LFW faces of scikit-image disagrees with itself under a
  horizontal flip by 3.5% rms per point, and on the astronaut image shrunk to 25 px it lands 2.2%
  from its own full-resolution answer.
* spatial profile: per-region error scale `REGION_SCALE`, proportional to that measured flip
  disagreement of dlib on LFW (eye corners are found far more precisely than the jaw line or
  the mouth).
* time structure: a per-sequence bias (the tracker's fixed misfit of this face), a slowly
  drifting AR(1) part and per-frame jitter, sharing the variance as `VARIANCE_SHARES`.
"""

from __future__ import annotations

import numpy as np

from fau.synth.shape import interocular

TRACKER_NME = 0.04
#: variance shares of (per-sequence bias, AR(1) drift, per-frame jitter); they sum to 1
VARIANCE_SHARES = (0.4, 0.3, 0.3)
DRIFT_CORRELATION = 0.8  # frame-to-frame correlation of the drift

#: iBUG-68 index ranges -> relative error scale: dlib's flip-disagreement rms per region on the
#: frontal, closed-mouth LFW faces (calibration.py), in % of the inter-ocular distance.
_REGIONS = {"jaw": (range(0, 17), 6.6), "brows": (range(17, 27), 2.5), "nose": (range(27, 36), 2.9),
            "eyes": (range(36, 48), 0.9), "mouth": (range(48, 68), 4.9)}


def _region_scale() -> np.ndarray:
    scale = np.zeros(68)
    for points, rms in _REGIONS.values():
        scale[list(points)] = rms
    return scale / scale.mean()


#: (68,) per-point error scale, mean 1.
REGION_SCALE: np.ndarray = _region_scale()


def tracker_error(n_frames: int, rng: np.random.Generator) -> np.ndarray:
    """(n_frames, 68, 2) error in inter-ocular units whose mean point error is `TRACKER_NME`.

    For a 2-D Gaussian with per-axis deviation s the mean distance is s * sqrt(pi / 2), so each
    point gets s = TRACKER_NME * REGION_SCALE / sqrt(pi / 2).
    """
    bias_share, drift_share, jitter_share = VARIANCE_SHARES
    bias = rng.standard_normal((1, 68, 2)) * np.sqrt(bias_share)
    innovations = rng.standard_normal((n_frames, 68, 2))
    drift = np.empty_like(innovations)
    drift[0] = innovations[0]
    keep = np.sqrt(1.0 - DRIFT_CORRELATION ** 2)
    for t in range(1, n_frames):
        drift[t] = DRIFT_CORRELATION * drift[t - 1] + keep * innovations[t]
    jitter = rng.standard_normal((n_frames, 68, 2)) * np.sqrt(jitter_share)
    unit = bias + np.sqrt(drift_share) * drift + jitter
    sigma = TRACKER_NME * REGION_SCALE / np.sqrt(np.pi / 2)
    return unit * sigma[None, :, None]


def track(landmarks: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Tracked landmarks (T, 68, 2) float32: the true pixel `landmarks` (T, 68, 2) plus
    `tracker_error` scaled by each frame's inter-ocular distance in pixels."""
    landmarks = np.asarray(landmarks, dtype=np.float64)
    iod = interocular(landmarks)[:, None, None]
    return (landmarks + tracker_error(len(landmarks), rng) * iod).astype(np.float32)
