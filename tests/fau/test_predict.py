"""`fau.predict`: raw photos and aligned crops → AU probabilities and template explanations.

The model is an untrained tiny ALGRNet saved like `fau train` saves one (shapes and plumbing need
no training); the photos are scikit-image's astronaut (one face) and coffee (no face).
"""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import skimage.data
import torch
from PIL import Image

import fau
from fau.aus import BP4D_AUS, DATASET_AUS, au_names
from fau.data.loader import AlignedFaceDataset, normalise
from fau.data.table import PreparedDataset
from fau.face.pipeline import FacePipeline
from fau.language.targets import load_template
from fau.models import MODELS, build_model
from fau.predict import Predictor, load_thresholds, model_input
from shared.checkpoint import save_checkpoint
from shared.errors import UserError


def tiny_checkpoint(path: Path, **meta_overrides) -> Path:
    """An untrained `algrnet_tiny` (BP4D AUs) checkpoint with `fau.train.checkpoint_meta`'s layout."""
    torch.manual_seed(0)
    config = MODELS.load_config("algrnet")
    model = build_model("algrnet", config["model"], num_aus=len(BP4D_AUS))
    meta = {"model": "algrnet", "config": config, "labels": au_names(BP4D_AUS), "aus": list(BP4D_AUS),
            "dataset": "bp4d", "task": "au", "fold": "part3", "prior": None, **meta_overrides}
    return save_checkpoint(path, model.state_dict(), meta)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "best")


@pytest.fixture(scope="module")
def predictor(checkpoint):
    return fau.load(checkpoint, device="cpu")


@pytest.fixture(scope="module")
def astronaut():
    return skimage.data.astronaut()


@pytest.fixture(scope="module")
def astronaut_result(predictor, astronaut):
    return predictor.predict(astronaut)


def test_fau_load_is_lazy_and_returns_a_predictor(predictor):
    assert isinstance(predictor, Predictor) and fau.Predictor is Predictor
    assert predictor.labels == au_names(BP4D_AUS) and (predictor.image_size, predictor.crop) == (91, 80)


def test_astronaut_end_to_end_one_face_with_landmarks_probabilities_and_states(astronaut_result):
    assert astronaut_result["image"] is None
    (face,) = astronaut_result["faces"]
    x0, y0, x1, y1 = face["box"]
    assert face["detector"] == "dlib" and face["score"] > 1.0
    points = np.array(face["landmarks"])
    assert points.shape == (68, 2)
    # dlib's HOG box ends above the chin: the 51 inner points (brows, eyes, nose, mouth) lie inside
    # it, the jaw line within 15 % of its side around it
    inner = points[17:]
    assert ((inner >= [x0, y0]) & (inner <= [x1, y1])).all()
    margin = 0.15 * np.array([x1 - x0, y1 - y0])
    assert ((points >= np.array([x0, y0]) - margin) & (points <= np.array([x1, y1]) + margin)).all()
    assert list(face["aus"]) == au_names(BP4D_AUS)
    assert all(0.0 <= p <= 1.0 for p in face["aus"].values())
    assert face["active"] == [name for name, p in face["aus"].items() if p >= 0.5]


def test_model_without_language_head_gives_only_the_labelled_template(astronaut_result):
    (face,) = astronaut_result["faces"]
    assert "description" not in face                      # ALGRNet.describe returns None
    template = face["template_description"]
    assert template["template"] == "facs_v1"
    assert list(template["local"]) == au_names(BP4D_AUS)
    texts = load_template().aus
    for name, sentence in template["local"].items():
        au = int(name.removeprefix("AU"))
        assert sentence == (texts[au].active if name in face["active"] else texts[au].inactive)


def test_template_descriptions_mention_only_aus_from_the_label_set(checkpoint, astronaut):
    everything = {name: 0.001 for name in au_names(BP4D_AUS)}     # every AU active
    face = fau.load(checkpoint, device="cpu", thresholds=everything).predict(astronaut)["faces"][0]
    assert face["active"] == au_names(BP4D_AUS)
    sentence = face["template_description"]["global"]
    texts = load_template().aus
    for au in DATASET_AUS["synfacs"]:
        phrase = texts[au].phrase.format(pos="their")
        assert (phrase in sentence) == (au in BP4D_AUS), au
    assert sentence.startswith("The person ")             # photos carry no gender


def test_explanation_modes(checkpoint, astronaut):
    generated = fau.load(checkpoint, device="cpu", explanation="generated").predict(astronaut)["faces"][0]
    assert "description" not in generated and "template_description" not in generated
    with pytest.raises(UserError, match="explanation"):
        fau.load(checkpoint, device="cpu", explanation="poem")
    with pytest.raises(UserError, match="decoding"):
        fau.load(checkpoint, device="cpu", decoding="sample")


def test_photo_without_a_face_gives_an_empty_face_list(predictor):
    assert predictor.predict(skimage.data.coffee()) == {"image": None, "faces": []}


def test_path_input_matches_array_input_and_names_the_file(predictor, astronaut, astronaut_result, tmp_path):
    path = tmp_path / "astronaut.png"
    Image.fromarray(astronaut).save(path)
    result = predictor.predict(path)
    assert result["image"] == str(path)
    assert result["faces"] == astronaut_result["faces"]


def test_truncated_jpeg_is_a_per_file_error(predictor, astronaut, tmp_path):
    path = tmp_path / "cut.jpg"
    Image.fromarray(astronaut).save(path)
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(UserError, match="truncated"):
        predictor.predict(path)
    bad, good = predictor.run([path, astronaut], errors="record")
    assert bad.faces == [] and "cut.jpg" in bad.error and "truncated" in bad.record()["error"]
    assert len(good.faces) == 1 and good.error is None


def test_aligned_crop_input_gives_the_same_probabilities_as_the_photo(predictor, astronaut, astronaut_result):
    face = FacePipeline().process(astronaut)[0]
    result = predictor.predict(face.aligned.image, aligned=True)
    (aligned_face,) = result["faces"]
    assert aligned_face["landmarks"] is None and aligned_face["box"] == [0.0, 0.0, 199.0, 199.0]
    expected = astronaut_result["faces"][0]["aus"]
    assert aligned_face["aus"] == pytest.approx(expected, abs=1e-5)
    with pytest.raises(UserError, match="square"):
        predictor.predict(astronaut[:, :300], aligned=True)


def test_model_input_is_exactly_what_evaluation_feeds_the_model(astronaut, tmp_path):
    face = FacePipeline().process(astronaut)[0]
    crop_file = tmp_path / "crops" / "0.png"                  # lossless, as the loader reads it back
    crop_file.parent.mkdir()
    Image.fromarray(face.aligned.image).save(crop_file)
    landmarks49 = face.aligned.landmarks[[i for i in range(17, 68) if i not in (60, 64)]]
    table = pd.DataFrame({"path": ["crops/0.png"], "subject": ["s"], "sequence": ["t"], "frame": [0],
                          "gender": ["unknown"], "AU1": [1]})
    data = PreparedDataset(tmp_path, {"columns": ["AU1"], "crop_size": 200}, table, landmarks49[None])
    item = AlignedFaceDataset(data, [0], image_size=91, crop=80, train=False)[0]
    crop, points = model_input(face.aligned.image, landmarks49, 91, 80)
    assert torch.equal(normalise(crop), item["image"])
    np.testing.assert_allclose(points, item["landmarks"].numpy(), atol=1e-4)


def test_batched_predictions_equal_single_ones(checkpoint, astronaut, astronaut_result):
    batched = fau.load(checkpoint, device="cpu", batch_size=2)
    flipped = np.ascontiguousarray(astronaut[:, ::-1])
    results = batched.predict_many([astronaut, skimage.data.coffee(), flipped])
    assert [len(r["faces"]) for r in results] == [1, 0, 1]
    assert results[0]["faces"][0]["aus"] == pytest.approx(astronaut_result["faces"][0]["aus"], abs=1e-5)
    assert results[2]["faces"][0]["aus"] == pytest.approx(batched.predict(flipped)["faces"][0]["aus"], abs=1e-5)


def test_threshold_file_sets_per_au_thresholds(tmp_path):
    labels = au_names(BP4D_AUS)
    path = tmp_path / "thresholds.yaml"
    path.write_text("AU12: 0.3\nAU6: 0.7\n")
    values = load_thresholds(path, labels)
    assert values[labels.index("AU12")] == 0.3 and values[labels.index("AU6")] == 0.7
    assert values[labels.index("AU1")] == 0.5
    path.write_text('{"AU9": 0.3}')
    with pytest.raises(UserError, match="AU9"):
        load_thresholds(path, labels)
    path.write_text("AU12: 1.5\n")
    with pytest.raises(UserError, match=r"\(0, 1\)"):
        load_thresholds(path, labels)
    with pytest.raises(UserError, match="no such file"):
        load_thresholds(tmp_path / "none.yaml", labels)


def test_checkpoints_predict_cannot_serve_are_refused(tmp_path):
    with pytest.raises(UserError, match="paralysis"):
        fau.load(tiny_checkpoint(tmp_path / "par", task="paralysis"), device="cpu")
    with pytest.raises(UserError, match="facs_v0"):
        fau.load(tiny_checkpoint(tmp_path / "old", template_version="facs_v0"), device="cpu")
