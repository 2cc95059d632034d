"""Face pipeline on real photos shipped with scikit-image: detection, landmarks, alignment, crops."""

import cv2
import numpy as np
import pytest
import skimage.data
from PIL import Image

from fau.aus import BP4D_AUS, au_centres, au_names
from fau.face.align import align_face, centre_crop, random_crop_flip
from fau.face.detect import as_rgb_uint8, detect_dlib, detect_haar
from fau.face.overlay import draw_alignment_overlay
from fau.face.pipeline import FacePipeline, load_image
from fau.face.points import flip_landmarks, to49
from shared.errors import UserError


def eye_centres(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    points = to49(landmarks)
    return points[19:25].mean(axis=0), points[25:31].mean(axis=0)


def lfw_faces(count: int) -> list[np.ndarray]:
    """The first `count` LFW faces of skimage's subset (25x25 grey floats), upscaled x8 to RGB."""
    faces = skimage.data.lfw_subset()[:count]
    return [
        cv2.cvtColor(cv2.resize((face * 255).round().astype(np.uint8), (200, 200), interpolation=cv2.INTER_CUBIC),
                     cv2.COLOR_GRAY2RGB)
        for face in faces
    ]


@pytest.fixture(scope="module")
def astronaut():
    return skimage.data.astronaut()


@pytest.fixture(scope="module")
def astronaut_faces(astronaut):
    return FacePipeline().process(astronaut)


def test_astronaut_has_one_face_with_landmarks_in_the_box(astronaut_faces):
    assert len(astronaut_faces) == 1
    face = astronaut_faces[0]
    box = face.box
    assert face.box.source == "dlib" and face.box.score > 0
    assert face.landmarks68.shape == (68, 2) and face.landmarks68.dtype == np.float32
    inner = to49(face.landmarks68)  # brows, eyes, nose, mouth lie inside the detector box
    assert np.all((inner > np.array([box.x0, box.y0])) & (inner < np.array([box.x1, box.y1])))
    margin = 0.15 * (box.x1 - box.x0)  # the jaw line may leave the HOG box a little
    assert np.all(face.landmarks68 >= np.array([box.x0, box.y0]) - margin)
    assert np.all(face.landmarks68 <= np.array([box.x1, box.y1]) + margin)


def test_alignment_levels_the_eyes_and_maps_landmarks(astronaut, astronaut_faces):
    aligned = astronaut_faces[0].aligned
    assert aligned.image.shape == (200, 200, 3) and aligned.image.dtype == np.uint8
    left, right = eye_centres(aligned.landmarks)
    assert abs(left[1] - right[1]) < 1.0 and left[0] < right[0]
    assert np.all((aligned.landmarks > 0) & (aligned.landmarks < 200))
    # the matrix maps the photo's landmarks onto the returned ones
    mapped = astronaut_faces[0].landmarks68 @ aligned.matrix[:, :2].T + aligned.matrix[:, 2]
    assert np.allclose(mapped, aligned.landmarks, atol=1e-3)
    # pixel check: the aligned nose tip shows the photo's pixel at the nose tip
    tip_aligned = np.round(to49(aligned.landmarks)[13]).astype(int)
    tip_photo = np.round(to49(astronaut_faces[0].landmarks68)[13]).astype(int)
    difference = aligned.image[tip_aligned[1], tip_aligned[0]].astype(int) - astronaut[tip_photo[1], tip_photo[0]]
    assert np.abs(difference).max() < 40
    bigger = align_face(astronaut, to49(astronaut_faces[0].landmarks68), size=256)
    assert bigger.image.shape == (256, 256, 3) and bigger.landmarks.shape == (49, 2)
    assert np.allclose(bigger.landmarks, to49(aligned.landmarks) * (255 / 199), atol=1e-2)


def test_flip_permutation_matches_a_real_frontal_face(astronaut_faces):
    aligned = astronaut_faces[0].aligned
    left, right = eye_centres(aligned.landmarks)
    inter_ocular = np.linalg.norm(right - left)
    error = np.linalg.norm(flip_landmarks(aligned.landmarks, 200) - aligned.landmarks, axis=1)
    assert error.mean() < 0.1 * inter_ocular  # a frontal face is nearly its own mirror image


def test_crops_shift_and_flip_landmarks_with_the_image(astronaut_faces):
    aligned = astronaut_faces[0].aligned
    image, points = centre_crop(aligned.image, aligned.landmarks)
    assert image.shape == (176, 176, 3) and np.allclose(points, aligned.landmarks - 12)
    for seed in range(6):
        replay = np.random.default_rng(seed)
        x0, y0, flip = int(replay.integers(0, 25)), int(replay.integers(0, 25)), replay.random() < 0.5
        crop, cropped = random_crop_flip(aligned.image, to49(aligned.landmarks), rng=np.random.default_rng(seed))
        window = aligned.image[y0 : y0 + 176, x0 : x0 + 176]
        expected = to49(aligned.landmarks) - np.array([x0, y0], dtype=np.float32)
        if flip:
            window, expected = window[:, ::-1], flip_landmarks(expected, 176)
        assert np.array_equal(crop, window) and np.allclose(cropped, expected)
        left, right = eye_centres(cropped)
        assert left[0] < right[0]  # after a flip, point 19-24 is still the image-left eye


def test_overlay_png_is_written(tmp_path, astronaut_faces):
    aligned = astronaut_faces[0].aligned
    path = tmp_path / "overlay.png"
    centres = au_centres(aligned.landmarks, "bp4d")
    draw_alignment_overlay(aligned, centres, path, labels=au_names(BP4D_AUS))
    image = np.asarray(Image.open(path))
    assert image.shape[0] > 400 and image.shape[1] > 800


def test_haar_fallback_finds_the_astronaut_in_dlib_framing(astronaut, astronaut_faces):
    boxes = detect_haar(astronaut)
    assert len(boxes) == 1 and boxes[0].source == "haar"
    haar, hog = boxes[0], astronaut_faces[0].box
    width = max(0.0, min(haar.x1, hog.x1) - max(haar.x0, hog.x0))
    overlap = width * max(0.0, min(haar.y1, hog.y1) - max(haar.y0, hog.y0))
    assert overlap / (haar.area + hog.area - overlap) > 0.7


def test_photo_without_face_gives_empty_list():
    assert FacePipeline().process(skimage.data.coffee()) == []


def test_lfw_faces_are_found_and_aligned_with_grey_border():
    faces = lfw_faces(10)
    dlib_found = sum(bool(detect_dlib(face)) for face in faces)
    haar_found = sum(bool(detect_haar(face)) for face in faces)
    results = [FacePipeline(max_faces=1).process(face) for face in faces]
    pipeline_found = sum(bool(result) for result in results)
    print(f"LFW first 10 faces: dlib {dlib_found}, haar {haar_found}, pipeline with fallback {pipeline_found}")
    assert dlib_found >= 7 and haar_found >= 7 and pipeline_found >= dlib_found
    aligned = next(result for result in results if result)[0].aligned
    assert np.array_equal(aligned.image[0, 0], [128, 128, 128])  # the 2.9x box leaves the tight crop
    left, right = eye_centres(aligned.landmarks)
    assert abs(left[1] - right[1]) < 1.0


def test_grey_images_are_accepted_and_bad_dtypes_rejected():
    grey = np.zeros((4, 5), dtype=np.uint8)
    assert as_rgb_uint8(grey).shape == (4, 5, 3)
    with pytest.raises(ValueError, match="uint8"):
        as_rgb_uint8(np.zeros((4, 5), dtype=np.float32))


def test_load_image_reads_photos_and_rejects_bad_files(tmp_path, astronaut):
    good = tmp_path / "astronaut.jpg"
    Image.fromarray(astronaut).save(good, quality=90)
    loaded = load_image(good)
    assert loaded.shape == (512, 512, 3) and loaded.dtype == np.uint8
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    not_image = tmp_path / "notes.jpg"
    not_image.write_text("hello")
    cases = [(truncated, "truncated"), (not_image, "readable image format"), (tmp_path / "nope.png", "does not exist")]
    for path, reason in cases:
        with pytest.raises(UserError) as caught:
            load_image(path)
        message = str(caught.value)
        assert "\n" not in message and path.name in message and reason in message
