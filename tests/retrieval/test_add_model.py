"""docs/retrieval.md "Adding a model", followed literally: the model file and the YAML are read from the
page, the model registers itself, is built from the YAML and from plain arguments, and trains for one
epoch through `retrieval train`; `info --list` shows it and `explain` refuses it by name."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest
import torch

from retrieval.cli import main
from retrieval.losses import RankingLoss
from retrieval.models import MODELS, build_model, load_model
from retrieval.synth.generate import generate

DOCS = Path(__file__).resolve().parents[2] / "docs" / "retrieval.md"


def example(name: str) -> str:
    """The fenced block that follows ``<!-- example: NAME -->`` in docs/retrieval.md."""
    match = re.search(rf"<!-- example: {re.escape(name)} -->\n```\w*\n(.*?)\n```", DOCS.read_text(encoding="utf-8"), re.S)
    assert match, f"docs/retrieval.md has no example {name}"
    return match.group(1) + "\n"


@pytest.fixture
def meanpool(tmp_path, monkeypatch):
    """The example model module, imported from the docs' text into a registry copy restored afterwards."""
    monkeypatch.setattr(MODELS, "_entries", dict(MODELS._entries))
    source = tmp_path / "meanpool.py"
    source.write_text(example("retrieval/models/meanpool.py"))
    spec = importlib.util.spec_from_file_location("docs_example_meanpool", source)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    config = tmp_path / "meanpool_tiny.yaml"
    config.write_text(example("retrieval/configs/meanpool_tiny.yaml"))
    return module, config


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    root = tmp_path_factory.mktemp("synscenes")
    generate(root, n_train=48, n_dev=16, n_test=24, seed=5, progress=False)
    return root


def test_the_docs_example_registers_builds_and_trains(meanpool, scenes, tmp_path, capsys):
    module, config = meanpool
    assert MODELS.get("meanpool").cls is module.MeanPool and "meanpool" in MODELS.names()
    # built from the YAML, and from plain arguments
    model = build_model("meanpool", MODELS.load_config("meanpool", config), vocab_size=30)
    assert model.image_fc.out_features == 32 and model.embed.num_embeddings == 30
    plain = module.MeanPool(module.MeanPoolConfig(embed_dim=8), loss=RankingLoss(), vocab_size=30)
    batch = {"images": {"regions": torch.randn(3, 5, 2048), "region_mask": torch.ones(3, 5, dtype=torch.bool)},
             "texts": {"tokens": torch.randint(1, 30, (3, 6)), "lengths": torch.tensor([6, 4, 2])}}
    losses = plain.training_losses(plain(batch), batch)
    assert set(losses) == {"rank_i2t", "rank_t2i", "rank", "total"} and losses["total"] > 0
    # one epoch (three steps) through the real `retrieval train` path
    run = tmp_path / "run"
    assert main(["train", "--model", "meanpool", "--data", str(scenes), "--config", str(config),
                 "--out", str(run), "--no-progress"]) == 0
    (record,) = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert record["loss_total"] == record["loss_rank"] > 0 and 0.0 <= record["dev_rsum"] <= 600.0
    trained, meta, _ = load_model(run / "best.safetensors")
    assert meta["model"] == "meanpool" and isinstance(trained, module.MeanPool)
    fresh = build_model("meanpool", meta["config"], vocab_size=len(meta["vocab"]))
    assert not torch.equal(trained.text_fc.weight, fresh.text_fc.weight)      # the steps moved it
    capsys.readouterr()
    assert main(["info", "--list"]) == 0
    assert "meanpool   mean-pooling two-tower (example)" in capsys.readouterr().out
    assert main(["info", "--model", "meanpool", "--config", str(config)]) == 0
    assert "total" in capsys.readouterr().out
    # a model without `explain` is refused by name, in one line, exit status 2
    assert main(["explain", "--checkpoint", str(run / "best.safetensors"), "--data", str(scenes),
                 "--out", str(tmp_path / "x.json")]) == 2
    assert not (tmp_path / "x.json").exists()
    assert "model 'meanpool' does not explain its outputs" in capsys.readouterr().err
