import pytest

from shared.config import apply_overrides, dump_config, load_config, load_yaml
from shared.errors import UserError
from shared.registry import Registry


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


def test_registry_resolves_names_case_insensitively():
    models = Registry("toy model")

    @models.register("ALGRNet")
    class Toy:
        def __init__(self, width=1):
            self.width = width

    assert models.create("algrnet", width=3).width == 3
    assert "ALGRNET" in models and models.names() == ["algrnet"]
    with pytest.raises(UserError, match="unknown toy model 'nope' \\(known: algrnet\\)"):
        models.get("nope")
    with pytest.raises(ValueError, match="registered twice"):
        models.register("algrnet")(type("Other", (), {}))
