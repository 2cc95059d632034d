"""SynFACS realism: cue kinds, texture vs landmark cues, calibrated identity spread, tracker error."""

from __future__ import annotations

import subprocess
import sys

import cv2
import numpy as np
import pytest

from fau.aus import SYNFACS_AUS
from fau.face.align import align_face
from fau.synth import APPEARANCE, CUE_KIND, GEOMETRIC, aus_of_kind
from fau.synth.actions import AU_BASIS, apply_actions
from fau.synth.calibration import (CALIBRATION_TARGET, REAL_FACE_SPREAD, measure_lfw, real_spread,
                                   synthetic_spread)
from fau.synth.cues import APPEARANCE_MAX_SHIFT
from fau.synth.render import View, render, sample_look
from fau.synth.shape import Identity, interocular, neutral_landmarks
from fau.synth.tracking import REGION_SCALE, TRACKER_NME, track, tracker_error
from fau.synth.writer import KEEP_49

FRONTAL = View(yaw=0, pitch=0, roll=0, scale=95, centre=(160, 176), light_angle=0, light_strength=0,
               gain=1, cast=(1, 1, 1), gamma=1, blur=0, noise=0, gaze=(0, 0))


def _one(au: int, value: float = 5.0) -> np.ndarray:
    out = np.zeros(len(SYNFACS_AUS))
    out[SYNFACS_AUS.index(au)] = value
    return out


# ----------------------------------------------------------------- the cue-kind table
def test_cue_kind_covers_every_synfacs_au_and_imports_without_opencv():
    assert set(CUE_KIND) == set(SYNFACS_AUS)
    assert set(CUE_KIND.values()) == {GEOMETRIC, APPEARANCE}
    assert aus_of_kind(GEOMETRIC, SYNFACS_AUS) == [1, 2, 4, 7, 12, 15, 25, 26]
    assert aus_of_kind(APPEARANCE, SYNFACS_AUS) == [6, 9, 10, 14, 17, 23, 24]
    with pytest.raises(ValueError):
        aus_of_kind("texture", SYNFACS_AUS)
    code = "import sys, fau.synth; print(len(fau.synth.CUE_KIND), 'cv2' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["15", "False"]


def test_appearance_aus_barely_move_landmarks_and_geometric_aus_do():
    largest = {au: float(np.linalg.norm(b, axis=1).max()) for au, b in zip(SYNFACS_AUS, AU_BASIS)}
    for au in aus_of_kind(APPEARANCE, SYNFACS_AUS):
        assert largest[au] <= APPEARANCE_MAX_SHIFT + 1e-9, au
    for au in aus_of_kind(GEOMETRIC, SYNFACS_AUS):
        if au != 7:  # the lid tightener moves thin lids: tested as aperture in test_synth.py
            assert largest[au] > 2 * APPEARANCE_MAX_SHIFT, au


# ----------------------------------------------------------------- texture vs landmarks
@pytest.fixture(scope="module")
def cue_sizes() -> dict[int, tuple[float, float]]:
    """Per AU at intensity 5: (texture change, landmark shift). Texture change = mean |pixel
    difference| when the AU's cues are drawn on the neutral geometry; landmark shift = mean
    displacement of the 49 tracked points over the inter-ocular distance."""
    ident, look = Identity(), sample_look(np.random.default_rng(3), female=False)
    neutral = neutral_landmarks(ident)
    zero = np.zeros(len(SYNFACS_AUS))
    base, lm0, _ = render(neutral, zero, ident, look, FRONTAL, np.random.default_rng(0))
    keep = list(KEEP_49)
    out = {}
    for au in SYNFACS_AUS:
        texture, _, _ = render(neutral, _one(au), ident, look, FRONTAL, np.random.default_rng(0))
        moved = apply_actions(neutral, _one(au))
        _, lm1, _ = render(moved, _one(au), ident, look, FRONTAL, np.random.default_rng(0))
        shift = np.linalg.norm(lm1[keep] - lm0[keep], axis=1).mean() / interocular(lm0)
        out[au] = (float(np.abs(texture.astype(float) - base).mean()), float(shift))
    return out


def test_appearance_aus_change_texture_more_than_landmarks_and_geometric_aus_the_opposite(cue_sizes):
    ratio = {au: t / s for au, (t, s) in cue_sizes.items()}
    appearance = [ratio[au] for au in aus_of_kind(APPEARANCE, SYNFACS_AUS)]
    geometric = [ratio[au] for au in aus_of_kind(GEOMETRIC, SYNFACS_AUS)]
    assert min(appearance) > 2 * max(geometric)
    for au in aus_of_kind(APPEARANCE, SYNFACS_AUS):
        texture, shift = cue_sizes[au]
        assert texture > 0.08 and shift < 0.015, au


def _tiny_crop(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """What the tiny models see: the 200-px JAA-Net crop shrunk to 91 px, centre 80 px."""
    face = align_face(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), landmarks, 200, 2.9).image
    return cv2.resize(face, (91, 91), interpolation=cv2.INTER_AREA)[5:85, 5:85].astype(float)


@pytest.mark.parametrize("au", [6, 9, 10, 14, 17, 23, 24])
def test_appearance_cues_are_visible_in_the_tiny_models_crop(au):
    ident, look = Identity(), sample_look(np.random.default_rng(3), female=False)
    neutral = neutral_landmarks(ident)
    zero = np.zeros(len(SYNFACS_AUS))
    base, lm, _ = render(neutral, zero, ident, look, FRONTAL, np.random.default_rng(0))
    texture, _, _ = render(neutral, _one(au), ident, look, FRONTAL, np.random.default_rng(0))
    diff = np.abs(_tiny_crop(texture, lm) - _tiny_crop(base, lm)).mean(2)
    # A patch of at least 12 pixels of the 80 x 80 crop changes by more than 6 grey levels.
    assert (diff > 6).sum() >= 12, au


# ----------------------------------------------------------------- identity spread
def test_identity_spread_within_the_calibrated_range():
    spread = synthetic_spread(n_faces=600, seed=1)
    assert set(spread) == set(CALIBRATION_TARGET)
    for name, target in CALIBRATION_TARGET.items():
        assert 0.75 * target < spread[name] < 1.25 * target, (name, spread[name], target)


def test_real_face_spread_is_reproduced_from_the_lfw_faces():
    direct, mirrored = measure_lfw()
    assert direct.shape == mirrored.shape == (100, 68, 2)
    measured = real_spread(direct, mirrored)
    for name, value in REAL_FACE_SPREAD.items():
        assert abs(measured[name] - value) < 0.003, name


# ----------------------------------------------------------------- tracker error
def test_tracker_error_has_the_stated_size_profile_and_time_structure():
    error = tracker_error(400, np.random.default_rng(0))
    per_point = np.linalg.norm(error, axis=2)
    assert abs(per_point.mean() - TRACKER_NME) < 0.1 * TRACKER_NME
    eyes, mouth = per_point[:, 36:48].mean(), per_point[:, 48:68].mean()
    assert eyes < 0.5 * mouth and REGION_SCALE.mean() == pytest.approx(1.0)
    # consecutive frames share bias and drift; frames far apart share the bias only
    x = error[:, :, 0]
    lag1 = np.corrcoef(x[:-1].ravel(), x[1:].ravel())[0, 1]
    far = np.corrcoef(x[:-100].ravel(), x[100:].ravel())[0, 1]
    assert lag1 > 0.5 and 0.15 < far < lag1
    again = tracker_error(400, np.random.default_rng(0))
    assert np.array_equal(error, again)


def test_track_scales_error_with_the_face_size():
    truth = np.repeat(neutral_landmarks(Identity())[None, :, :2] * 100 + 200, 300, axis=0)
    tracked = track(truth, np.random.default_rng(1))
    assert tracked.dtype == np.float32 and tracked.shape == truth.shape
    nme = np.linalg.norm(tracked - truth, axis=2).mean() / interocular(truth).mean()
    assert abs(nme - TRACKER_NME) < 0.15 * TRACKER_NME


def test_written_landmarks_are_tracked_not_exact(tmp_path):
    from fau.synth.generate import generate

    out = tmp_path / "bp4d"
    generate(out, n_subjects=3, n_sequences=1, n_frames=8, seed=3, workers=1, progress=False)
    truth = np.load(out / "synfacs_truth.npz")
    exact, tracked = truth["landmarks"], truth["tracked_landmarks"]
    nme = np.linalg.norm(exact - tracked, axis=2).mean(1) / interocular(exact)
    assert 0.01 < nme.mean() < 0.08
    first = np.loadtxt(out / "landmarks" / f"{truth['subject'][0]}_{truth['sequence'][0]}.csv",
                       delimiter=",", skiprows=1)[0, 1:].reshape(49, 2)
    np.testing.assert_allclose(first, tracked[0][list(KEEP_49)], atol=0.01)
