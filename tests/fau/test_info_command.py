"""`fau info`: parameter counts per top-level module and the total."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from fau.cli import main
from fau.models import build_model
from shared.config import load_config

CONFIGS = Path(__file__).resolve().parents[2] / "fau" / "configs"


def counts(text: str) -> dict[str, int]:
    """module name → parameter count, parsed from the printed table."""
    rows = {}
    for line in text.splitlines():
        match = re.match(r"^(\S+)\s+([\d,]+)\s+([\d,]+)$", line)
        if match:
            rows[match.group(1)] = int(match.group(2).replace(",", ""))
    return rows


@pytest.mark.parametrize("name", ["algrnet", "mgrrnet"])
def test_info_prints_each_module_and_the_total(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", "--model", name]) == 0
    rows = counts(capsys.readouterr().out)
    torch.manual_seed(0)
    model = build_model(name, load_config(CONFIGS / f"{name}_tiny.yaml")["model"], 12, prior=np.zeros((12, 12)))
    expected = {child: sum(p.numel() for p in module.parameters()) for child, module in model.named_children()}
    assert rows.pop("total") == sum(p.numel() for p in model.parameters())
    assert rows == expected
    assert {"stem", "alignment", "region", "local_head", "integrated_head"} <= set(rows)


def test_info_with_config_and_overrides(capsys: pytest.CaptureFixture[str]) -> None:
    config = str(CONFIGS / "mgrrnet_tiny.yaml")
    assert main(["info", "--model", "mgrrnet", "--config", config]) == 0
    two = counts(capsys.readouterr().out)
    assert main(["info", "--model", "mgrrnet", "--config", config, "model.relational.layers=1"]) == 0
    one = counts(capsys.readouterr().out)
    assert one["layers"] * 2 == two["layers"] and one["total"] < two["total"]
    assert main(["info", "--model", "algrnet", "--config", str(CONFIGS / "algrnet_tiny.yaml"),
                 "model.task=paralysis", "model.dataset=fpara"]) == 0
    assert "6 outputs" in capsys.readouterr().out


def test_info_lists_models_with_their_configs_and_takes_a_dataset_key(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", "--list"]) == 0
    out = capsys.readouterr().out
    for name in ("algrnet", "mgrrnet", "vlfau"):
        assert f"tiny: {name}_tiny, bp4d: {name}_bp4d, disfa: {name}_disfa" in out
    assert main(["info", "--model", "mgrrnet", "--config", "disfa"]) == 0
    disfa = capsys.readouterr().out
    assert "mgrrnet_disfa.yaml, 8 outputs, input 176px" in disfa


def test_info_errors_are_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["info", "--model", "nosuchnet"]) == 2
    assert "--model 'nosuchnet': unknown fau model (known: algrnet, mgrrnet, vlfau)" in capsys.readouterr().err
    assert main(["info"]) == 2
    assert "info needs --model NAME (or --list)" in capsys.readouterr().err
    assert main(["info", "--model", "mgrrnet", "--config", "fpara"]) == 2
    assert "neither a file, a dataset of 'mgrrnet' (tiny, bp4d, disfa)" in capsys.readouterr().err
    assert main(["info", "--model", "algrnet", "model.region.adaptiv=false"]) == 2
    assert "unknown config key" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  lr: 0.1\n")
    assert main(["info", "--model", "algrnet", "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "no 'model' section" in err and len(err.strip().splitlines()) == 1
