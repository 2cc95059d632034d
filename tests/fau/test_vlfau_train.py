"""VL-FAU end to end on a tiny prepared SynFACS: `fau train` / `fau eval` / `fau info`, the language
targets the loader adds only when the model asks for them, Cutout, and template-version checks."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from fau.cli import main
from fau.data.loader import AlignedFaceDataset
from fau.data.prepare import prepare
from fau.data.table import load_prepared
from fau.language.vocab import language_tensors
from fau.models import MODELS, build_model, load_model
from fau.synth.generate import generate
from shared.checkpoint import load_checkpoint
from shared.errors import UserError

from .test_info_command import counts


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("synfacs_vl")
    generate(root / "raw", n_subjects=6, n_sequences=1, n_frames=12, seed=3, progress=False)
    prepare("bp4d", root / "raw", root / "prep", aus=None, progress=False)
    return root / "prep"


def vlfau(data, *overrides: str):
    torch.manual_seed(0)
    config = MODELS.load_config("vlfau", "tiny", ["model.dataset=synfacs", *overrides])
    return build_model("vlfau", config["model"], len(data.columns))


def test_train_and_eval_report_description_quality(prepared, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--model", "vlfau", "--data", str(prepared), "--config", "vlfau_tiny", "--out", str(run),
                 "--no-progress", "train.epochs=1", "train.batch_size=8"]) == 0
    assert "vlfau backbone: random init" in capsys.readouterr().err
    _, meta = load_checkpoint(run / "best")
    assert meta["model"] == "vlfau" and meta["template_version"] == "facs_v1"
    assert "loss_lgen" in json.loads((run / "metrics.jsonl").read_text().splitlines()[0])
    assert main(["eval", "--checkpoint", str(run / "best.safetensors"), "--data", str(prepared),
                 "--json", str(tmp_path / "eval.json")]) == 0
    printed = capsys.readouterr().out
    assert "word top-5 accuracy, local" in printed and "word top-5 accuracy, global" in printed
    assert "local descriptions with the labelled state" in printed and "sample global:" in printed
    language = json.loads((tmp_path / "eval.json").read_text())["language"]
    for key in ("word_top5_local", "word_top5_global", "description_state"):
        assert 0.0 <= language[key] <= 1.0
    assert set(language["sample"]["local"]) == set(meta["labels"])
    model, _ = load_model(run / "best.safetensors")
    assert model.explanation_mode == "both"


def test_ablation_flags_and_bad_flags(prepared, tmp_path, capsys):
    run = tmp_path / "ablated"
    assert main(["train", "--model", "vlfau", "--data", str(prepared), "--config", "vlfau_tiny", "--out", str(run),
                 "--no-progress", "--no-llga", "--no-glga", "train.epochs=1", "train.batch_size=8"]) == 0
    _, meta = load_checkpoint(run / "best")
    assert meta["config"]["model"]["llga"] is False and meta["config"]["model"]["glga"] is False
    assert meta["config"]["model"]["marl"] is True
    assert main(["eval", "--checkpoint", str(run / "best.safetensors"), "--data", str(prepared),
                 "--json", str(tmp_path / "eval.json")]) == 0
    assert "word top-5" not in capsys.readouterr().out
    assert "language" not in json.loads((tmp_path / "eval.json").read_text())
    assert main(["train", "--model", "algrnet", "--data", str(prepared), "--config", "algrnet_tiny",
                 "--out", str(tmp_path / "x"), "--no-glga"]) == 2
    assert "model.glga" in capsys.readouterr().err


def test_loader_adds_language_targets_only_when_asked_and_cutout(prepared):
    data = load_prepared(prepared)
    rows = data.indices("part3", "train")[:4]
    plain = AlignedFaceDataset(data, rows, 73, 64, train=True, seed=0)
    assert set(plain[0]) == {"image", "labels", "landmarks", "landmark_mask", "index"}
    model = vlfau(data)
    extras = language_tensors(model, data)
    frames = len(data.table)
    assert extras["local_tokens"].shape == (frames, 15, 41) and extras["global_tokens"].shape == (frames, 61)
    with_text = AlignedFaceDataset(data, rows, 73, 64, train=True, seed=0, extras=extras, cutout=(16, 1.0))
    item, base = with_text[1], plain[1]
    assert torch.equal(item["local_tokens"], extras["local_tokens"][rows[1]])
    holes = (item["image"] != base["image"]).any(dim=0)
    assert holes.any() and (item["image"][:, holes] == 0).all() and int(holes.sum()) <= 16 * 16
    algrnet = MODELS.load_config("algrnet", "tiny", ["model.dataset=synfacs"])["model"]
    assert language_tensors(build_model("algrnet", algrnet, 15), data) is None


def test_template_version_mismatch_is_a_one_line_error(prepared):
    data = load_prepared(prepared)
    data.meta["template_version"] = "facs_v0"
    with pytest.raises(UserError, match="template 'facs_v0'"):
        language_tensors(vlfau(data), data)


def test_info_counts_vlfau_modules(capsys):
    assert main(["info", "--model", "vlfau"]) == 0
    rows = counts(capsys.readouterr().out)
    torch.manual_seed(0)
    model = build_model("vlfau", MODELS.load_config("vlfau")["model"], 12, prior=np.zeros((12, 12)))
    assert rows.pop("total") == sum(p.numel() for p in model.parameters())
    assert rows == {name: sum(p.numel() for p in m.parameters()) for name, m in model.named_children()}
    assert {"backbone", "combine", "dair", "local_decoder", "global_decoder", "words", "gau_head"} <= set(rows)


def test_default_run_table_has_the_language_columns():
    from fau.default_run import format_table

    scores = {"AU1": {"f1": 0.5, "accuracy": 0.5, "auc": 0.5}, "macro": {"f1": 0.5, "accuracy": 0.5, "auc": 0.5}}
    language = {"word_top5_local": 0.927, "word_top5_global": 0.954, "description_state": 0.85}
    table = format_table({"vlfau": {"scores": scores, "seconds": 1.0, "language": language},
                          "algrnet": {"scores": scores, "seconds": 1.0}}, ["AU1"])
    header, _, vlfau_row, algrnet_row = table.splitlines()
    assert "word@5 L/G" in header and "desc" in header
    assert vlfau_row.endswith("92.7/95.4   85.0") and algrnet_row.endswith("-/-      -")


def test_paper_config_offline_without_weights_is_one_line_naming_the_fix(prepared, tmp_path, capsys, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    run = tmp_path / "paper"
    assert main(["train", "--model", "vlfau", "--data", str(prepared), "--config", "vlfau_bp4d", "--out", str(run),
                 "--no-progress"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if "error" in line or "Traceback" in line]
    assert len(err) == 1 and err[0].startswith("fau: error: config model.backbone.weights:")
    assert "timm/swin_base_patch4_window7_224.ms_in1k" in err[0]
    assert "model.backbone.weights=PATH.safetensors" in err[0] and "model.backbone.weights=none" in err[0]
    assert not run.exists()


def test_train_with_a_local_weights_file_starts_from_it(prepared, tmp_path, capsys):
    from safetensors.torch import load_file, save_file

    source = vlfau(load_prepared(prepared), "model.backbone.stem=patch")  # pre-trained files fit the patch stem
    weights = tmp_path / "swin.safetensors"
    save_file({k: v.contiguous() + 0.01 for k, v in source.backbone.swin.state_dict().items()
               if v.is_floating_point()}, str(weights))
    run = tmp_path / "run"
    assert main(["train", "--model", "vlfau", "--data", str(prepared), "--config", "vlfau_tiny", "--out", str(run),
                 "--no-progress", f"model.backbone.weights={weights}", "model.backbone.stem=patch", "train.epochs=1",
                 "train.batch_size=8",
                 "train.lr=0.0"]) == 0
    assert f"vlfau backbone: pretrained weights from {weights}" in capsys.readouterr().err
    trained, meta = load_checkpoint(run / "best")
    stored = load_file(str(weights))
    name = "patch_embed.proj.weight"
    assert torch.equal(trained[f"backbone.swin.{name}"], stored[name])      # lr 0: the file's tensor, unchanged
    assert meta["config"]["model"]["backbone"]["weights"] == str(weights)
    moved = tmp_path / "elsewhere.safetensors"
    weights.rename(moved)                       # a trained checkpoint loads without the pretrained file
    model, _ = load_model(run / "best.safetensors")
    assert torch.equal(model.backbone.swin.state_dict()[name], stored[name])
