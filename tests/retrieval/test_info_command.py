"""`retrieval info`: per-module parameter table and total, matching the built model."""

import pytest

from shared.config import load_config

from retrieval.cli import main
from retrieval.models import build_model

from .model_batches import CONFIGS


def _table(text: str) -> dict[str, int]:
    rows = {}
    for line in text.strip().splitlines()[2:]:
        name, params, _ = line.split()
        rows[name] = int(params.replace(",", ""))
    return rows


@pytest.mark.parametrize("name,config", [("smfea", "smfea_tiny.yaml"), ("3shnet", "shnet_tiny.yaml"),
                                         ("hire_i2t", "hire_i2t_tiny.yaml"), ("vsrpp", "vsrpp_tiny.yaml"),
                                         ("hslm", "hslm_tiny.yaml")])
def test_info_prints_modules_and_total(capsys, name, config):
    assert main(["info", "--model", name, "--vocab-size", "100"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[1].split() == ["module", "parameters", "trainable"]
    rows = _table(out)
    model = build_model(name, load_config(CONFIGS / config), vocab_size=100, pretrained=False)
    assert rows["total"] == sum(p.numel() for p in model.parameters())
    assert sum(v for k, v in rows.items() if k != "total") == rows["total"]


def test_info_with_config_and_override(capsys):
    assert main(["info", "--model", "vsepp", "--config", str(CONFIGS / "vsepp_f30k.yaml"), "--vocab-size", "50",
                 "model.embed_dim=16"]) == 0
    rows = _table(capsys.readouterr().out)
    # FC 2048→16 + embedding 50×300 + Bi-GRU(300→16): 3·(16·300 + 16·16 + 2·16) per direction
    assert rows["region_encoder"] == 2048 * 16 + 16
    assert rows["text_encoder"] == 50 * 300 + 2 * 3 * (16 * 300 + 16 * 16 + 2 * 16)


def test_info_rejects_unknown_model(capsys):
    assert main(["info", "--model", "nope"]) == 2
    assert "unknown retrieval model" in capsys.readouterr().err


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_every_config_value_names_its_source(path):
    """Each leaf value line of a config carries a comment saying paper / ext (public code) / ours."""
    config = load_config(path)
    if not path.name.startswith("features_"):  # the feature extractor's config has its own sections
        assert {"model", "loss", "train"} <= set(config)
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        body = line.split("#")[0].rstrip()
        if not body.strip() or body.strip().startswith("_base") or body.endswith(":"):
            continue
        comment = line.partition("#")[2]
        assert any(tag in comment for tag in ("paper", "ext", "ours")), f"{path.name}:{number} {line!r}"
