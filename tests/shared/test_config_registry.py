import re

import pytest

from shared.config import apply_overrides, dump_config, load_config, load_yaml
from shared.errors import UserError


@pytest.fixture
def config_file(tmp_path):
    (tmp_path / "base.yaml").write_text("train:\n  lr: 1e-2  # paper\n  epochs: 20\nmodel:\n  K: 2\n  heads: 8\n")
    (tmp_path / "tiny.yaml").write_text("_base: base.yaml\ntrain:\n  epochs: 2\n")
    return tmp_path / "tiny.yaml"


def test_base_chain_and_typed_overrides(config_file):
    config = load_config(config_file, ["train.lr=2e-3", "model.K=3", "model.heads=[4, 4]"])
    assert config == {"train": {"lr": 0.002, "epochs": 2}, "model": {"K": 3, "heads": [4, 4]}}
    assert load_yaml(config_file)["train"]["lr"] == 0.01


def test_round_trip_through_yaml(config_file, tmp_path):
    config = load_config(config_file)
    (tmp_path / "again.yaml").write_text(dump_config(config))
    assert load_config(tmp_path / "again.yaml") == config


@pytest.mark.parametrize("override,message", [
    ("train.lrr=1", "unknown config key 'train.lrr'"),
    ("optim.lr=1", "unknown config key 'optim'"),
    ("train.lr", "expected key=value"),
    ("train..lr=1", "empty key"),
])
def test_bad_overrides_are_one_line_errors(config_file, override, message):
    with pytest.raises(UserError, match=message.replace(".", r"\.")):
        load_config(config_file, [override])


def test_bad_files(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        load_yaml(tmp_path / "nope.yaml")
    (tmp_path / "bad.yaml").write_text("a: [1, 2\n")
    with pytest.raises(UserError, match=r"bad.yaml line \d+: not valid YAML"):
        load_yaml(tmp_path / "bad.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n")
    with pytest.raises(UserError, match="must be a mapping"):
        load_yaml(tmp_path / "list.yaml")


def test_overrides_do_not_mutate_input():
    config = {"a": {"b": 1}}
    apply_overrides(config, ["a.b=2"])
    assert config == {"a": {"b": 1}}


def test_model_registry_knows_each_models_configs(tmp_path):
    from shared.registry import ModelRegistry

    (tmp_path / "toy_tiny.yaml").write_text("model: {width: 2}\n")
    (tmp_path / "toy_big.yaml").write_text("model: {width: 64}\n")
    (tmp_path / "other.yaml").write_text("model: {width: 9}\n")
    models = ModelRegistry("toy model", config_dir=tmp_path)

    @models.register("Toy", configs={"tiny": "toy_tiny", "big": "toy_big"})
    class Toy:
        pass

    assert models.get("TOY").cls is Toy and models.names() == ["toy"]
    assert models.load_config("toy") == {"model": {"width": 2}}                      # default: tiny
    assert models.load_config("toy", "big", ["model.width=8"]) == {"model": {"width": 8}}  # a dataset key
    assert models.load_config("toy", "other") == {"model": {"width": 9}}              # a packaged name
    assert models.config_path("toy", tmp_path / "other.yaml") == tmp_path / "other.yaml"
    with pytest.raises(UserError, match="--model 'nope': unknown toy model \\(known: toy\\)"):
        models.load_config("nope")
    with pytest.raises(UserError, match="has no config for 'coco' \\(it has: tiny, big\\)"):
        models.get("toy").config_name("coco")
    with pytest.raises(UserError, match="neither a file"):
        models.config_path("toy", "missing")
    with pytest.raises(ValueError, match="register a 'tiny' config"):
        models.register("bad", configs={"big": "toy_big"})


def test_typed_config_sections_are_strict():
    import dataclasses
    from typing import Literal

    from shared.config import bounded, from_dict, to_dict

    @dataclasses.dataclass(frozen=True)
    class Head:
        hidden: int = bounded(minimum=1)
        mode: Literal["gated", "simple"] = "gated"

    @dataclasses.dataclass(frozen=True)
    class Net:
        lr: float = bounded(minimum=0.0)
        grids: tuple[int, ...] = (8, 4, 2)
        head: Head = dataclasses.field(default_factory=lambda: Head(4))
        weights: str | None = None

    net = from_dict(Net, {"lr": 1, "grids": [4, 2], "head": {"hidden": 3, "mode": "simple"}, "weights": None})
    assert net == Net(1.0, (4, 2), Head(3, "simple"), None) and isinstance(net.lr, float)
    assert from_dict(Net, to_dict(net)) == net
    assert from_dict(Net, {"lr": 0.5}, partial=True) == Net(0.5)
    cases = [({"lr": 1, "typo": 1}, "unknown key(s) 'typo'"),
             ({"lr": 1}, "missing key 'grids'"),
             ({"lr": -1, "grids": [1], "head": {"hidden": 1, "mode": "gated"}, "weights": None}, "net.lr: -1.0 outside"),
             ({"lr": 1, "grids": [1], "head": {"hidden": 1, "mode": "x"}, "weights": None}, "net.head.mode: 'x' is not one of"),
             ({"lr": float("nan"), "grids": [1], "head": {"hidden": 1, "mode": "gated"}, "weights": None}, "finite"),
             ({"lr": 1, "grids": ["a"], "head": {"hidden": 1, "mode": "gated"}, "weights": None}, "net.grids[0]: expected an integer")]
    for data, message in cases:
        with pytest.raises(UserError, match=re.escape(message)):
            from_dict(Net, data, "net")
