"""SynFACS: determinism, FACS geometry, appearance cues, co-occurrence, smoothness, raw layouts,
tracked landmarks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fau.aus import SYNFACS_AUS
from fau.cli import main
from fau.synth.generate import generate
from fau.synth.actions import apply_actions
from fau.synth.expressions import (EXPRESSIONS, sample_expressivity, sequence_intensities,
                                   task_profile, to_labels)
from fau.synth.render import View, render, sample_look
from fau.synth.report import conditional_cooccurrence, phi_matrix, prevalence
from fau.synth.shape import Identity, interocular, neutral_landmarks, sample_identity
from fau.synth.writer import KEEP_49, KEEP_66, occluded_aus, occurrence_codes

TINY = dict(n_subjects=3, n_sequences=2, n_frames=4, seed=7, progress=False)


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


@pytest.fixture(scope="module")
def bp4d_tree(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synfacs") / "bp4d"
    generate(out, layout="bp4d", workers=1, **TINY)
    return out


def _intensities(**aus: float) -> np.ndarray:
    values = np.zeros(len(SYNFACS_AUS))
    for name, value in aus.items():
        values[SYNFACS_AUS.index(int(name[2:]))] = value
    return values


def _moved(au: int, intensity: float = 5.0) -> tuple[np.ndarray, np.ndarray]:
    neutral = neutral_landmarks(Identity())
    return neutral, apply_actions(neutral, _intensities(**{f"AU{au}": intensity}))


# ----------------------------------------------------------------- determinism and layouts
def test_same_seed_gives_identical_bytes_for_any_worker_count(bp4d_tree, tmp_path):
    again = tmp_path / "again"
    generate(again, layout="bp4d", workers=2, **TINY)
    assert _files(again) == _files(bp4d_tree)
    other = tmp_path / "other"
    generate(other, layout="bp4d", workers=1, **{**TINY, "seed": 8})
    a = np.load(bp4d_tree / "synfacs_truth.npz")["intensity"]
    b = np.load(other / "synfacs_truth.npz")["intensity"]
    assert not np.array_equal(a, b)


def test_bp4d_layout_parses_with_the_loader(bp4d_tree):
    from fau.data.bp4d import load_bp4d
    from fau.data.folds import load_fold_spec

    truth = np.load(bp4d_tree / "synfacs_truth.npz")
    data = load_bp4d(bp4d_tree, aus=None)
    assert data.aus == SYNFACS_AUS and not data.skips
    assert len(data.frames) == 3 * 2 * 4
    index = {(s, q, int(f)): i for i, (s, q, f) in
             enumerate(zip(truth["subject"], truth["sequence"], truth["frame"]))}
    for frame in data.frames:
        i = index[(frame.subject, frame.sequence, frame.frame)]
        assert np.array_equal(frame.labels, truth["occurrence"][i])
        np.testing.assert_allclose(frame.landmarks, truth["tracked_landmarks"][i][list(KEEP_49)],
                                   atol=0.01)
        assert frame.gender == ("female" if frame.subject.startswith("F") else "male")
    spec = load_fold_spec(bp4d_tree / "folds.yaml")
    assert spec.subjects() == set(truth["subject"])
    assert all(len(spec.parts[p]) == 1 for p in ("part1", "part2", "part3"))


def test_disfa_layout_parses_with_the_loader(tmp_path):
    from fau.data.disfa import load_disfa

    out = tmp_path / "disfa"
    generate(out, layout="disfa", workers=1, **{**TINY, "n_frames": 3})
    truth = np.load(out / "synfacs_truth.npz")
    data = load_disfa(out, aus=SYNFACS_AUS)
    assert len(data.frames) == 3 * 6 and not data.skips
    assert {f.sequence for f in data.frames} == {"left"}
    for frame, labels, landmarks in zip(data.frames, truth["labels"], truth["tracked_landmarks"]):
        assert np.array_equal(frame.labels, (labels >= 2).astype(np.int8))
        np.testing.assert_allclose(frame.landmarks, landmarks[list(KEEP_66)], atol=0.01)
    assert {f.gender for f in data.frames} == {"female", "male"}


def test_unknown_code_marks_occluded_regions():
    lm = neutral_landmarks(Identity())[:, :2] * 100 + 200
    mask = np.zeros((400, 400), np.uint8)
    mouth = lm[48:68]
    x0, y0 = np.floor(mouth.min(0) - 15).astype(int)
    x1, y1 = np.ceil(mouth.max(0) + 60).astype(int)
    mask[y0:y1, x0:x1] = 255
    hidden = dict(zip(SYNFACS_AUS, occluded_aus(lm, mask)))
    assert all(hidden[au] for au in (10, 12, 14, 15, 17, 23, 24, 25, 26))
    assert not any(hidden[au] for au in (1, 2, 4, 7))
    codes = occurrence_codes(np.array([[3, 1, 2]]), np.array([[False, False, True]]))
    assert codes.tolist() == [[1, 0, 9]]


# ----------------------------------------------------------------- FACS geometry
def test_inner_and_outer_brow_raisers():
    neutral, moved = _moved(1)
    d = moved - neutral
    assert d[21, 1] < -0.1 and d[22, 1] < -0.1  # inner brow up
    assert d[21, 1] < d[17, 1] and d[22, 1] < d[26, 1]  # inner more than outer
    neutral, moved = _moved(2)
    d = moved - neutral
    assert d[17, 1] < -0.1 and d[26, 1] < -0.1 and d[17, 1] < d[21, 1]


def test_brow_lowerer_lowers_and_draws_brows_together():
    neutral, moved = _moved(4)
    assert (moved[17:27, 1] > neutral[17:27, 1]).all()
    assert moved[22, 0] - moved[21, 0] < neutral[22, 0] - neutral[21, 0]


def test_eye_aus_narrow_the_eye_from_below():
    for au in (6, 7):
        neutral, moved = _moved(au)
        assert (moved[[40, 41, 46, 47], 1] < neutral[[40, 41, 46, 47], 1]).all()
        aperture = lambda p: (p[[41, 40, 47, 46], 1] - p[[37, 38, 43, 44], 1]).mean()  # noqa: E731
        assert aperture(moved) < 0.75 * aperture(neutral)


def test_mouth_aus_move_the_right_landmarks():
    # Appearance AUs (AU9, 10, 14, 17, 23, 24) move little but in the FACS direction.
    neutral, moved = _moved(9)
    assert (moved[[31, 35], 1] < neutral[[31, 35], 1] - 0.02).all()  # nose wings up
    neutral, moved = _moved(10)
    assert (moved[[50, 51, 52], 1] < neutral[[50, 51, 52], 1] - 0.03).all()  # upper lip up
    neutral, moved = _moved(12)
    assert moved[48, 1] < neutral[48, 1] - 0.1 and moved[54, 1] < neutral[54, 1] - 0.1
    assert moved[48, 0] < neutral[48, 0] and moved[54, 0] > neutral[54, 0]  # up and out
    neutral, moved = _moved(14)
    assert moved[54, 0] - moved[48, 0] > neutral[54, 0] - neutral[48, 0]
    neutral, moved = _moved(15)
    assert (moved[[48, 54], 1] > neutral[[48, 54], 1] + 0.08).all()  # corners down
    neutral, moved = _moved(17)
    assert moved[57, 1] < neutral[57, 1] - 0.03 and moved[8, 1] < neutral[8, 1]
    neutral, moved = _moved(23)
    assert moved[54, 0] - moved[48, 0] < neutral[54, 0] - neutral[48, 0]  # narrowed
    neutral, moved = _moved(24)
    assert moved[57, 1] - moved[51, 1] < neutral[57, 1] - neutral[51, 1] - 0.05  # pressed thin
    neutral, moved = _moved(25)
    assert moved[66, 1] - moved[62, 1] > neutral[66, 1] - neutral[62, 1] + 0.1  # lips part
    neutral, moved = _moved(26)
    assert moved[8, 1] > neutral[8, 1] + 0.3 and moved[57, 1] > neutral[57, 1] + 0.25


def test_displacement_grows_with_intensity_and_vanishes_at_zero():
    neutral = neutral_landmarks(Identity())
    for au in SYNFACS_AUS:
        sizes = [np.abs(apply_actions(neutral, _intensities(**{f"AU{au}": i})) - neutral).sum()
                 for i in (0, 1, 3, 5)]
        assert sizes[0] == 0 and sizes[1] < sizes[2] < sizes[3], au


def test_identities_vary_but_stay_symmetric():
    rng = np.random.default_rng(0)
    faces = [neutral_landmarks(sample_identity(rng, female=bool(i % 2))) for i in range(6)]
    assert np.std([f[16, 0] - f[0, 0] for f in faces]) > 0.02
    for face in faces:
        np.testing.assert_allclose(face[[0, 17, 36, 48], 0], -face[[16, 26, 45, 54], 0])
        assert abs(interocular(face) - 1.0) < 0.05


# ----------------------------------------------------------------- appearance
def _render_pair(au: int) -> np.ndarray:
    rng = np.random.default_rng(3)
    ident = Identity()
    look = sample_look(rng, female=False)
    view = View(yaw=0, pitch=0, roll=0, scale=95, centre=(160, 176), light_angle=0,
                light_strength=0, gain=1, cast=(1, 1, 1), gamma=1, blur=0, noise=0, gaze=(0, 0))
    images, landmarks = [], None
    for intensity in (0.0, 5.0):
        values = _intensities(**{f"AU{au}": intensity})
        lm3 = apply_actions(neutral_landmarks(ident), values)
        image, lm, _ = render(lm3, values, ident, look, view, np.random.default_rng(0))
        images.append(image.astype(float))
        landmarks = lm if landmarks is None else landmarks
    return np.abs(images[1] - images[0]).mean(2), landmarks


@pytest.mark.parametrize("au,region", [(6, (41, 46)), (9, (28, 29)), (14, (48, 54)), (17, (8, 57))])
def test_appearance_cue_changes_pixels_where_the_au_acts(au, region):
    diff, lm = _render_pair(au)
    centre = lm[list(region)].mean(0).astype(int)
    near = diff[centre[1] - 30:centre[1] + 30, max(centre[0] - 60, 0):centre[0] + 60].mean()
    far_y = 40 if centre[1] > 200 else 330
    far = diff[far_y - 20:far_y + 20, 100:220].mean()
    assert near > 1.0 and near > 5 * far


# ----------------------------------------------------------------- expressions and time
def _simulate(n_sequences: int = 60, n_frames: int = 48) -> np.ndarray:
    rng = np.random.default_rng(11)
    tasks = [f"T{k}" for k in range(1, 9)]
    return np.stack([sequence_intensities(rng, n_frames, task_profile(tasks[i % 8]),
                                          sample_expressivity(rng))[0] for i in range(n_sequences)])


def test_latent_expressions_make_aus_co_occur():
    x = _simulate().reshape(-1, len(SYNFACS_AUS))
    corr = np.corrcoef(x.T)
    k = {au: i for i, au in enumerate(SYNFACS_AUS)}
    assert corr[k[6], k[12]] > 0.3 and corr[k[1], k[2]] > 0.5 and corr[k[9], k[10]] > 0.3
    assert corr[k[2], k[15]] < 0.15
    occ = to_labels(x) >= 2
    assert (occ.mean(0) > 0.03).all() and (occ.mean(0) < 0.6).all()


def test_intensities_are_smooth_within_a_sequence():
    seqs = _simulate(n_sequences=20)
    jumps = np.abs(np.diff(seqs, axis=1))
    # Raised-cosine onsets of >= 5 frames: slope <= peak * pi / 10 (peak 5 x expressivity 1.3).
    assert jumps.max() < 2.1 and np.percentile(jumps[jumps > 0], 99) < 1.3
    active = seqs.std(axis=1) > 0.3
    a, b = seqs[:, :-1], seqs[:, 1:]
    lag1 = [np.corrcoef(a[s, :, k], b[s, :, k])[0, 1] for s, k in zip(*np.nonzero(active))]
    assert np.mean(lag1) > 0.85
    assert seqs.min() >= 0 and seqs.max() <= 5


def test_every_expression_references_known_aus():
    for recipe in EXPRESSIONS.values():
        assert set(recipe) <= set(SYNFACS_AUS)


# ----------------------------------------------------------------- report, detection, CLI
def test_report_statistics_on_toy_labels():
    labels = np.array([[3, 0], [2, 2], [0, 4], [1, 0]])
    prev = prevalence(np.pad(labels, ((0, 0), (0, 13))))
    assert prev["AU1"]["occurrence"] == 0.5 and prev["AU1"]["trace_or_more"] == 0.75
    cond = conditional_cooccurrence(labels >= 2)
    np.testing.assert_allclose(cond, [[1.0, 0.5], [0.5, 1.0]])
    phi = phi_matrix(np.array([[1, 1], [0, 0], [1, 1], [0, 0]]))
    np.testing.assert_allclose(phi, np.ones((2, 2)))


def test_report_files_are_written(bp4d_tree):
    import json

    report = json.loads((bp4d_tree / "synfacs_report.json").read_text())
    assert report["frames"] == 24 and len(report["cooccurrence_conditional"]) == 15
    assert (bp4d_tree / "synfacs_cooccurrence.csv").read_text().count("\n") == 16
    assert (bp4d_tree / "synfacs_contact_sheet.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_dlib_finds_the_synthetic_faces(bp4d_tree):
    import cv2

    from fau.face.detect import detect_dlib
    from fau.face.landmarks import predict_landmarks

    truth = np.load(bp4d_tree / "synfacs_truth.npz")
    found, errors = 0, []
    for i in range(0, 24, 4):
        image = cv2.cvtColor(cv2.imread(str(bp4d_tree / str(truth["path"][i]))), cv2.COLOR_BGR2RGB)
        boxes = detect_dlib(image)
        if boxes:
            found += 1
            points = predict_landmarks(image, boxes[0])
            gt = truth["landmarks"][i]
            errors.append(np.linalg.norm(points - gt, axis=1).mean() / interocular(gt))
    assert found >= 5
    assert np.mean(errors) < 0.12


def test_cli_generates_and_rejects_bad_input(tmp_path, capsys):
    out = tmp_path / "cli"
    args = ["synth", "--out", str(out), "--subjects", "3", "--sequences", "1", "--frames", "2",
            "--workers", "1", "--quiet"]
    assert main(args) == 0
    assert '"frames": 6' in capsys.readouterr().out
    assert main(args) == 2  # not empty
    assert "not empty" in capsys.readouterr().err
    assert main(args + ["--overwrite", "--subjects", "2"]) == 2
    assert main(["synth", "--out", str(tmp_path / "x"), "--sequences", "9"]) == 2
    other = tmp_path / "precious"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    assert main(["synth", "--out", str(other), "--overwrite", "--quiet"]) == 2
    assert "not a SynFACS folder" in capsys.readouterr().err and (other / "notes.txt").exists()
    assert main(args + ["--overwrite", "--frames", "1"]) == 0
