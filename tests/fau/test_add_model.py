"""docs/fau.md "Adding a model", followed literally: the model file and the YAML are read from the
page, the model registers itself, is built from the YAML and trains for one step through `fau train`."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest
import torch

from fau.cli import main
from fau.data.prepare import prepare
from fau.models import MODELS, build_model, load_model
from shared.errors import UserError

from . import fixtures as fx

DOCS = Path(__file__).resolve().parents[2] / "docs" / "fau.md"


def example(name: str) -> str:
    """The fenced block that follows ``<!-- example: NAME -->`` in docs/fau.md."""
    match = re.search(rf"<!-- example: {re.escape(name)} -->\n```\w*\n(.*?)\n```", DOCS.read_text(encoding="utf-8"), re.S)
    assert match, f"docs/fau.md has no example {name}"
    return match.group(1) + "\n"


@pytest.fixture
def poolnet(tmp_path, monkeypatch):
    """The example model module, imported from the docs' text into a registry copy restored afterwards."""
    monkeypatch.setattr(MODELS, "_entries", dict(MODELS._entries))
    source = tmp_path / "poolnet.py"
    source.write_text(example("fau/models/poolnet.py"))
    spec = importlib.util.spec_from_file_location("docs_example_poolnet", source)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    config = tmp_path / "poolnet_tiny.yaml"
    config.write_text(example("fau/configs/poolnet_tiny.yaml"))
    return module, config


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("bp4d")
    fx.make_bp4d(root / "raw")
    prepare("bp4d", root / "raw", root / "prep", progress=False)     # BP4D's 12 AUs
    return root / "prep"


def test_the_docs_example_registers_builds_and_trains_one_step(poolnet, prepared, tmp_path, capsys):
    module, config = poolnet
    assert MODELS.get("poolnet").cls is module.PoolNet and "poolnet" in MODELS.names()
    # built from the YAML, and from plain arguments
    section = MODELS.load_config("poolnet", config)["model"]
    model = build_model("poolnet", section, num_aus=12)
    assert model(torch.zeros(2, 3, 32, 32))["au_logits"].shape == (2, 12)
    assert sum(p.numel() for p in module.PoolNet(module.PoolNetConfig(pool=2), num_aus=12).parameters()) == 12 * 12 + 12
    # one training step through the real `fau train` path
    run = tmp_path / "run"
    assert main(["train", "--model", "poolnet", "--data", str(prepared), "--config", str(config),
                 "--fold", "part1", "--out", str(run), "--no-progress"]) == 0
    (record,) = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert record["loss_total"] == record["loss_au"] > 0 and 0.0 <= record["val_f1"] <= 1.0
    trained, meta = load_model(run / "best.safetensors")
    assert meta["model"] == "poolnet" and isinstance(trained, module.PoolNet)
    assert not torch.equal(trained.classifier.weight, model.classifier.weight)   # the step moved it
    capsys.readouterr()
    assert main(["info", "--list"]) == 0
    assert "poolnet    linear AU classifier (example)" in capsys.readouterr().out
    assert main(["info", "--model", "poolnet", "--config", str(config)]) == 0
    assert "total" in capsys.readouterr().out


def test_the_example_without_explain_is_refused_by_predict_overlay(poolnet, prepared, tmp_path):
    _, config = poolnet
    run = tmp_path / "run"
    assert main(["train", "--model", "poolnet", "--data", str(prepared), "--config", str(config),
                 "--fold", "part1", "--out", str(run), "--no-progress"]) == 0
    from fau.predict import load

    assert load(run / "best.safetensors", device="cpu").explain is False        # predicting needs no maps
    with pytest.raises(UserError, match="model 'poolnet' does not explain its outputs"):
        load(run / "best.safetensors", device="cpu", explain=True)
