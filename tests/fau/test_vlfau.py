"""VL-FAU on its tiny config: output shapes, label masks, the four losses and their gradients,
overfitting 16 images, ablation switches, descriptions and explanations, local backbone weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from fau.aus import BP4D_AUS
from fau.language.targets import build_targets, global_sentence, load_template, local_sentences
from fau.losses import sequence_nll
from fau.models import build_model
from shared.config import apply_overrides, load_config
from shared.errors import UserError

CONFIGS = Path(__file__).resolve().parents[2] / "fau" / "configs"
LABELS = [f"AU{a}" for a in BP4D_AUS]
A = len(BP4D_AUS)
PATCH = "model.backbone.stem=patch"  # the published Swin's stem, which pre-trained weight files fit


def tiny(*overrides: str) -> dict:
    return apply_overrides(load_config(CONFIGS / "vlfau_tiny.yaml"), overrides)["model"]


def build(*overrides: str, seed: int = 0):
    torch.manual_seed(seed)
    return build_model("vlfau", tiny(*overrides), A)


def make_batch(model, size: int, seed: int = 1) -> dict[str, torch.Tensor]:
    """Random-but-fixed images and labels (10% unknown) with their template language targets."""
    rng = np.random.default_rng(seed)
    labels = rng.choice([-1, 0, 1], p=[0.1, 0.6, 0.3], size=(size, A))
    genders = [("female", "male")[i % 2] for i in range(size)]
    entries = build_targets(labels, BP4D_AUS, genders, load_template())
    gen = torch.Generator().manual_seed(seed)
    return {"image": torch.rand(size, 3, 64, 64, generator=gen) * 2 - 1, "labels": torch.as_tensor(labels),
            "au_weights": torch.rand(A, generator=gen) + 0.5, **model.encode_language(entries, LABELS)}


def test_output_shapes_and_dair_maps() -> None:
    model = build()
    out = model(make_batch(model, 2)["image"])
    assert out["au_logits"].shape == (2, A)
    assert out["dair_maps"].shape == (2, A, 8, 8)
    assert ((out["dair_maps"] >= 0) & (out["dair_maps"] <= 1)).all()
    assert out["features"].shape == (2, 64, 32) and out["au_features"].shape == (2, A, 64, 32)
    with pytest.raises(UserError, match="expected images"):
        model(torch.zeros(1, 3, 80, 80))


def test_unknown_labels_are_masked_out_of_every_loss() -> None:
    model = build("model.language.dropout=0.0")
    batch = make_batch(model, 4)
    unknown = batch["labels"] < 0
    assert unknown.any() and (batch["local_tokens"][unknown] == model.vocab.pad).all()
    out = model(batch["image"])
    features = out["au_features"].detach().requires_grad_(True)
    losses = model.training_losses({**out, "au_features": features}, batch)
    (grad,) = torch.autograd.grad(losses["lgen"], features)
    assert (grad[unknown] == 0).all() and (grad[~unknown] != 0).any()
    # L_Lgen is the mean over known (image, AU) pairs of their per-token NLL (eq. 5.10)
    flat = batch["local_tokens"].flatten(0, 1)[~unknown.flatten()]
    logits, _, _ = model.local_decoder(features.flatten(0, 1)[~unknown.flatten()], flat[:, :-1], model.words)
    torch.testing.assert_close(losses["lgen"], sequence_nll(logits, flat[:, 1:], model.vocab.pad))


@pytest.mark.parametrize("loss, modules", [
    ("fau", ["backbone", "combine", "dair", "classifier"]),
    ("lgen", ["backbone", "combine", "dair", "local_decoder", "words"]),
    ("ggen", ["backbone", "combine", "global_decoder", "words"]),
    ("gau", ["combine", "global_decoder.att_v", "global_decoder.cell", "gau_head"]),
])
def test_gradients_reach_each_loss_parameters(loss: str, modules: list[str]) -> None:
    model = build()
    batch = make_batch(model, 4)
    losses = model.training_losses(model(batch["image"]), batch)
    assert set(losses) == {"fau", "lgen", "ggen", "gau", "total"}
    torch.testing.assert_close(losses["total"], losses["fau"] + losses["lgen"] + losses["ggen"] + losses["gau"])
    losses[loss].backward()
    for prefix in modules:
        grads = [p.grad for n, p in model.named_parameters() if n.startswith(prefix)]
        assert grads and any(g is not None and g.abs().sum() > 0 for g in grads), (loss, prefix)


def test_total_loss_reaches_every_parameter() -> None:
    model = build()
    batch = make_batch(model, 4)
    model.training_losses(model(batch["image"]), batch)["total"].backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert not missing


def test_overfits_16_images() -> None:
    """The joint loss falls by >= 90% on 16 fixed images (sentences cut to 8 tokens to keep it fast).
    At lr 3e-3 the loss falls smoothly (~80 steps); at 1e-2 it oscillates and whether it crosses the mark
    within a fixed step count hangs on float rounding."""
    model = build("model.language.dropout=0.0", "model.language.local_max_len=8", "model.language.global_max_len=8")
    batch = make_batch(model, 16)
    optimiser = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    first = last = None
    for _ in range(150):
        losses = model.training_losses(model(batch["image"]), batch)
        first = first or {k: v.item() for k, v in losses.items()}
        last = {k: v.item() for k, v in losses.items()}
        if last["total"] <= 0.1 * first["total"]:
            break
        optimiser.zero_grad()
        losses["total"].backward()
        optimiser.step()
    assert last["total"] <= 0.1 * first["total"], (first, last)


@pytest.mark.parametrize("switch, gone, kept", [
    ("model.marl=false", {"dair"}, {"fau", "lgen", "ggen", "gau"}),
    ("model.llga=false", {"local_decoder"}, {"fau", "ggen", "gau"}),
    ("model.glga=false", {"global_decoder", "gau_head"}, {"fau", "lgen"}),
])
def test_ablation_switches(switch: str, gone: set[str], kept: set[str]) -> None:
    """Tab 5.4 variants as config overrides: the switched-off modules and losses are absent."""
    model = build(switch)
    batch = make_batch(model, 2)
    out = model(batch["image"])
    losses = model.training_losses(out, batch)
    assert set(losses) == kept | {"total"}
    assert all(getattr(model, name) is None for name in gone)
    losses["total"].backward()
    description = model.describe(out, LABELS)[0]
    assert (description["global"] is None) == (switch == "model.glga=false")
    assert (description["local"] == {}) == (switch == "model.llga=false")


def test_describe_and_explanation_modes() -> None:
    model = build().eval()
    template = load_template()
    with torch.no_grad():
        out = model(make_batch(model, 2)["image"])
        for decoding in ("greedy", "beam"):
            described = model.describe(out, LABELS, decoding)
            assert len(described) == 2 and set(described[0]["local"]) == set(LABELS)
            assert all(isinstance(t, str) for d in described for t in [d["global"], *d["local"].values()])
        both = model.explain_text(out, LABELS)
        assert set(both[0]) == {"generated", "template"}
        assert both[0]["generated"] == model.describe(out, LABELS)[0]
        states = (torch.sigmoid(out["au_logits"][0]) >= 0.5).long().tolist()
        assert both[0]["template"]["local"] == local_sentences(states, BP4D_AUS, template)
        assert both[0]["template"]["global"] == global_sentence(states, BP4D_AUS, "unknown", template)
        assert set(model.explain_text(out, LABELS, mode="template")[0]) == {"template"}
        assert set(model.explain_text(out, LABELS, mode="generated")[0]) == {"generated"}
        with pytest.raises(UserError, match="decoding"):
            model.describe(out, LABELS, "sample")


def test_weight_norm_option_scales_the_au_loss() -> None:
    paper = apply_overrides(load_config(CONFIGS / "vlfau_bp4d.yaml"), [])["model"]
    assert paper["loss"]["au_weight_norm"] == "sum_to_one"      # thesis eq. 5.9: γ sums to 1
    assert tiny()["loss"]["au_weight_norm"] == "sum_to_n"       # ours for the tiny config (its YAML comment)
    batch = make_batch(build(), 2)
    n, one = build(), build("model.loss.au_weight_norm=sum_to_one")
    fau_n = n.training_losses(n(batch["image"]), batch)["fau"]
    fau_one = one.training_losses(one(batch["image"]), batch)["fau"]
    torch.testing.assert_close(fau_one * batch["au_weights"].sum(), fau_n)


def test_au_readout_flatten_sees_positions_and_learns_a_position_only_task() -> None:
    """``au_readout: flatten`` feeds the whole V̂_i map to the per-AU classifier: moving features
    between positions changes its input (the position average does not), and the model learns a
    label that only the position of a patch carries (top vs bottom half)."""
    mean, flat = build("model.au_readout=mean"), build("model.au_readout=flatten")
    assert flat.classifier.weight.shape[1] == 8 * 8 * 32 and mean.classifier.weight.shape[1] == 32
    refined = torch.randn(2, A, 32, 8, 8)
    moved = refined.flip(-2)
    torch.testing.assert_close(mean._read_out(refined), mean._read_out(moved))
    assert not torch.allclose(flat._read_out(refined), flat._read_out(moved))
    with pytest.raises(UserError, match="gau_classifier"):
        build("model.au_readout=flatten", "model.loss.gau_classifier=main")

    model = build("model.au_readout=flatten", "model.llga=false", "model.glga=false")
    gen = torch.Generator().manual_seed(3)
    top = torch.arange(32) % 2 == 0
    images = torch.full((32, 3, 64, 64), -1.0)
    for i in range(32):
        x = int(torch.randint(0, 48, (1,), generator=gen))
        y = int(torch.randint(0, 16, (1,), generator=gen)) + (0 if top[i] else 32)
        images[i, :, y:y + 16, x:x + 16] = 1.0
    labels = top.long().unsqueeze(1).expand(-1, A).contiguous()
    batch = {"image": images, "labels": labels, "au_weights": torch.ones(A)}
    optimiser = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    for _ in range(40):
        loss = model.training_losses(model(images), batch)["total"]
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        predicted = model(images)["au_logits"].mean(dim=1) > 0
    assert (predicted == top).float().mean() >= 0.9


def _save_backbone(model, path: Path) -> Path:
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in model.backbone.swin.state_dict().items()}, str(path))
    return path


def _same_backbone(a, b) -> None:
    for name, value in a.backbone.swin.state_dict().items():
        assert torch.equal(value, b.backbone.swin.state_dict()[name]), name


def test_backbone_loads_a_local_safetensors_file(tmp_path: Path) -> None:
    source = build(PATCH, seed=1)  # pre-trained files are in the published Swin's layout: the patch stem
    path = _save_backbone(source, tmp_path / "swin.safetensors")
    loaded = build(PATCH, f"model.backbone.weights={path}", seed=2)
    assert loaded.backbone_status.startswith(f"pretrained weights from {path}")
    _same_backbone(source, loaded)
    assert build().backbone_status == "random init (model.backbone.weights=none)"
    with pytest.raises(UserError, match="not a local .safetensors file"):
        build(PATCH, f"model.backbone.weights={tmp_path / 'missing.safetensors'}")


def test_backbone_hub_name_reaches_the_hub_client_and_loads_its_file(tmp_path: Path, monkeypatch) -> None:
    import huggingface_hub

    source = build(PATCH, seed=1)
    path = _save_backbone(source, tmp_path / "model.safetensors")
    asked = []

    def fake_download(repo_id: str, filename: str, **kwargs) -> str:
        asked.append((repo_id, filename, kwargs))
        return str(path)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    for name in ("timm/swin_tiny_patch4_window7_224.ms_in1k", "hf-hub:timm/swin_tiny_patch4_window7_224.ms_in1k"):
        loaded = build(PATCH, f"model.backbone.weights={name}", seed=2)
        _same_backbone(source, loaded)
        assert loaded.backbone_status.startswith(f"pretrained weights from {name}")
    assert asked == [("timm/swin_tiny_patch4_window7_224.ms_in1k", "model.safetensors", {})] * 2


def test_backbone_hub_name_offline_without_cache_is_one_line_naming_the_fix(tmp_path: Path, monkeypatch) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)          # never touches the network
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(UserError) as err:
        build(PATCH, "model.backbone.weights=timm/swin_tiny_patch4_window7_224.not_cached_anywhere")
    message = str(err.value)
    assert "\n" not in message and "model.backbone.weights=PATH.safetensors" in message
    assert "model.backbone.weights=none" in message


def test_paper_config_names_imagenet_weights_and_loading_a_checkpoint_never_fetches_them() -> None:
    from fau.models import MODELS

    section = MODELS.load_config("vlfau", "bp4d")["model"]
    assert section["backbone"]["weights"] == "timm/swin_base_patch4_window7_224.ms_in1k"
    assert MODELS.get("vlfau").cls.without_pretrained(section)["backbone"]["weights"] == "none"
    assert section["backbone"]["weights"] == "timm/swin_base_patch4_window7_224.ms_in1k"   # not mutated


@pytest.mark.parametrize("option", ["model.language.shared_output=false",
                                    "model.loss.gau_classifier=main model.au_readout=mean",
                                    "model.language.au_token=false"])
def test_language_options_train_and_save(option: str, tmp_path: Path) -> None:
    """Separate W^s per decoder, L_Gau through the main classifier, <bos> instead of the AU token
    (docs/fau.md, decisions 'shared output projection', 'L_Gau classifier', 'AU start token'): all
    train and save as safetensors checkpoints."""
    from shared.checkpoint import save_checkpoint

    model = build(*option.split())
    batch = make_batch(model, 2)
    assert (model.global_words is not None) == (option == "model.language.shared_output=false")
    assert (model.gau_head is None) == option.startswith("model.loss.gau_classifier=main")
    starts = batch["local_tokens"][:, :, 0][batch["labels"] >= 0]
    assert bool((starts == model.vocab.bos).all()) == (option == "model.language.au_token=false")
    model.training_losses(model(batch["image"]), batch)["total"].backward()
    assert all(p.grad is not None for p in model.parameters())
    save_checkpoint(tmp_path / "m", model.state_dict(), {"model": "vlfau", "config": {}})


def test_conv_stem_keeps_the_token_grid_and_needs_random_init(tmp_path: Path) -> None:
    """``model.backbone.stem: conv`` swaps the 4×4 patch projection for 3×3 stride-2 convs: same token
    grid and width, so every later stage and the MSC see the same shapes; pre-trained weights (made for
    the patch stem) are refused in one line."""
    from fau.layers.marl import ConvPatchStem

    conv, patch = build("model.backbone.stem=conv"), build("model.backbone.stem=patch")
    assert isinstance(conv.backbone.swin.patch_embed.proj, ConvPatchStem)
    assert isinstance(patch.backbone.swin.patch_embed.proj, torch.nn.Conv2d)
    images = make_batch(conv, 2)["image"]
    for a, b in zip(conv.backbone(images), patch.backbone(images)):
        assert a.shape == b.shape
    strides = [m.stride[0] for m in conv.backbone.swin.patch_embed.proj if isinstance(m, torch.nn.Conv2d)]
    assert strides == [2, 2, 1]  # 4 = 2 × 2, then the 1×1 projection to the embedding width
    path = _save_backbone(patch, tmp_path / "swin.safetensors")
    with pytest.raises(UserError, match="stem: 'conv' replaces the patch embedding"):
        build("model.backbone.stem=conv", f"model.backbone.weights={path}")
    with pytest.raises(UserError, match="stem"):
        build("model.backbone.stem=pixels")
