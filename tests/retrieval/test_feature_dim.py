"""The feature dimension a model was built for is read from the model and checked against the split."""

from __future__ import annotations

import numpy as np
import pytest

from retrieval.data.pairs import check_model_inputs, model_feature_dim
from retrieval.data.precomp import load_split
from retrieval.models import MODELS, build_model
from retrieval.search.encoder import Retriever
from retrieval.models import CONFIG_DIR
from shared.config import load_run_config
from shared.errors import UserError

from .fixtures import write_precomp


def _tiny(name, dim):
    config = MODELS.load_config(name)
    key = "feature_dim" if "feature_dim" in config["model"] else "region_dim"
    config["model"][key] = dim
    return build_model(name, config, vocab_size=64, pretrained=False)


@pytest.mark.parametrize("name", MODELS.names())
def test_every_model_reports_the_dimension_it_was_built_for(name):
    assert model_feature_dim(_tiny(name, 24)) == 24


def test_region_and_grid_mismatches_name_the_file_and_both_sizes(tmp_path):
    folder = write_precomp(tmp_path, splits={"train": 2}, dim=12)
    split = load_split(tmp_path, "train", feature_dim=None)
    check_model_inputs(split, _tiny("vsepp", 12), "here")
    with pytest.raises(UserError, match=rf"^{folder.resolve() / 'train_ims.npy'}: features are 12-d but the model expects 24-d"):
        check_model_inputs(split, _tiny("vsepp", 24), "here")
    config = load_run_config("shnet_grid_tiny", CONFIG_DIR, ["model.feature_dim=20"])
    grid_model = build_model("3shnet", config, pretrained=False)
    with pytest.raises(UserError, match=r"train_grid\.npy: features are 12-d but the model expects 20-d"):
        check_model_inputs(split, grid_model, "here")


def test_python_api_feature_arrays_are_checked_too():
    retriever = Retriever(_tiny("vsepp", 24).eval(), {"model": "vsepp"}, None, "ckpt")
    with pytest.raises(UserError, match=r"^image input 'regions': features are 16-d but the model expects 24-d"):
        retriever.image_loader(np.zeros((2, 36, 16), np.float32))
