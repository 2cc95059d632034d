"""Checks every pairwise (cross-interaction) model must pass, shared by the VSR++ and HSLM tests.

Each takes a freshly built tiny model (GRU text side, `model_batches` random batches) and asserts:
shapes, padding invariance, gradients to every parameter, tile scores equal one-pair-at-a-time scores,
and memorising a 32-pair batch.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from retrieval.evaluation.checkpoint import evaluate_checkpoint
from retrieval.evaluation.similarity import pairwise_similarity
from retrieval.synth.generate import generate
from retrieval.models import CONFIG_DIR
from retrieval.train import train
from shared.checkpoint import load_checkpoint
from shared.config import load_run_config

from .model_batches import image_batch, pair_batch, text_batch


def check_shapes(model: torch.nn.Module) -> None:
    model.eval()
    with torch.no_grad():
        images = model.encode_images(image_batch(3, regions=8, valid=torch.tensor([8, 5, 2])))
        texts = model.encode_texts(text_batch(5, max_len=7))
        scores = model.forward_sim(images, texts)
    assert scores.shape == (3, 5) and torch.isfinite(scores).all()
    assert texts["mask"].shape == (5, 7) and texts["mask"].dtype == torch.bool


def _padded(images: dict, texts: dict, extra_regions: int, extra_words: int, seed: int = 7) -> tuple[dict, dict]:
    """The same items with `extra_regions` random (masked-out) regions and `extra_words` padding columns."""
    g = torch.Generator().manual_seed(seed)
    batch = images["regions"].shape[0]
    noise = torch.randn(batch, extra_regions, images["regions"].shape[-1], generator=g) * 5
    no_regions = torch.zeros(batch, extra_regions, dtype=torch.bool)
    padded_images = {"regions": torch.cat([images["regions"], noise], dim=1),
                     "region_mask": torch.cat([images["region_mask"], no_regions], dim=1)}
    no_words = torch.zeros(texts["tokens"].shape[0], extra_words, dtype=torch.long)
    padded_texts = {**texts, "tokens": torch.cat([texts["tokens"], no_words], dim=1)}
    return padded_images, padded_texts


def check_padding_never_changes_a_score(model: torch.nn.Module) -> None:
    images = image_batch(4, regions=6, valid=torch.tensor([6, 4, 3, 1]))
    texts = text_batch(5, max_len=6)
    images = {"regions": images["regions"], "region_mask": images["region_mask"]}
    padded_images, padded_texts = _padded(images, texts, extra_regions=3, extra_words=4)
    for mode in (False, True):  # eval, then training mode (BatchNorm batch statistics over valid items only)
        model.train(mode)
        for module in model.modules():  # dropout masks depend on tensor shapes, not on what padding holds
            if isinstance(module, torch.nn.Dropout):
                module.eval()
        with torch.no_grad():
            torch.manual_seed(0)
            plain = model.forward_sim(model.encode_images(images), model.encode_texts(texts))
            torch.manual_seed(0)
            padded = model.forward_sim(model.encode_images(padded_images), model.encode_texts(padded_texts))
        assert torch.allclose(plain, padded, atol=1e-5), (mode, (plain - padded).abs().max())
    model.eval()


def check_gradients_reach_every_parameter(model: torch.nn.Module) -> None:
    """After one optimiser step (VSRN's zero-initialised GCN BatchNorm blocks the GCN weights' gradients
    at step 0 only), every parameter gets a non-zero gradient."""
    model.train()
    batch = pair_batch(6)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(2):
        optimizer.zero_grad()
        model.training_losses(model(batch), batch)["total"].backward()
        optimizer.step()
    optimizer.zero_grad()
    model.training_losses(model(batch), batch)["total"].backward()
    missing = [name for name, p in model.named_parameters()
               if p.requires_grad and (p.grad is None or not torch.any(p.grad != 0))]
    assert not missing, missing


def check_tile_equals_one_pair_at_a_time(model: torch.nn.Module) -> None:
    """The batched tile and the evaluator's tiling equal scoring each pair alone, each caption unpadded."""
    model.eval()
    images = image_batch(5, regions=7, valid=torch.tensor([7, 6, 3, 7, 2]))
    images = {"regions": images["regions"], "region_mask": images["region_mask"]}
    texts = text_batch(6, max_len=9)
    with torch.no_grad():
        tile = model.forward_sim(model.encode_images(images), model.encode_texts(texts))
        single = torch.empty_like(tile)
        for i in range(5):
            image = model.encode_images({k: v[i:i + 1] for k, v in images.items()})
            for t in range(6):
                n = int(texts["lengths"][t])
                caption = model.encode_texts({"tokens": texts["tokens"][t:t + 1, :n], "lengths": texts["lengths"][t:t + 1]})
                single[i, t] = model.forward_sim(image, caption)[0, 0]
        image_batches = [{k: v[a:a + 2] for k, v in images.items()} for a in range(0, 5, 2)]
        text_batches = [{"tokens": texts["tokens"][a:a + 4, :int(texts["lengths"][a:a + 4].max())],
                         "lengths": texts["lengths"][a:a + 4]} for a in range(0, 6, 4)]
        tiled = pairwise_similarity(model, image_batches, text_batches, tile=(2, 3), progress=False)
    assert torch.allclose(tile, single, atol=1e-5), (tile - single).abs().max()
    assert np.allclose(tiled, tile.numpy(), atol=1e-5)


def _recall_at_1(model: torch.nn.Module, batch: dict) -> tuple[float, float]:
    model.eval()
    with torch.no_grad():
        sims = model.forward_sim(model.encode_images(batch["images"]), model.encode_texts(batch["texts"]))
    model.train()
    target = torch.arange(sims.shape[0])
    return (sims.argmax(1) == target).float().mean().item(), (sims.argmax(0) == target).float().mean().item()


def check_overfits_32_pairs(model: torch.nn.Module, steps: int = 150, lr: float = 2e-3) -> None:
    model.train()
    model.set_epoch(1)
    batch = pair_batch(32, regions=8, max_len=8)
    batch["images"] = {"regions": batch["images"]["regions"], "region_mask": batch["images"]["region_mask"]}
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    recalls, step = (0.0, 0.0), 0
    for step in range(1, steps + 1):
        loss = model.training_losses(model(batch), batch)["total"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 5 == 0:
            recalls = _recall_at_1(model, batch)
            if recalls == (1.0, 1.0):
                break
    assert recalls == (1.0, 1.0), f"R@1 i2t/t2i {recalls} after {step} steps"


def synscenes(root: Path) -> Path:
    """A tiny parsed-free SynScenes set (the GRU pairwise models need no parse cache)."""
    generate(root, n_train=48, n_dev=16, n_test=24, seed=5, progress=False)
    return root


def check_train_then_evaluate(model_name: str, config: str, data: Path, out: Path) -> dict:
    """`retrieval train` (2 epochs) then `evaluate` on the test split; returns the evaluation report."""
    run_config = load_run_config(config, CONFIG_DIR, ["train.epochs=2", "train.batch_size=16"])
    best = train(model_name, data, run_config, out / "run", device="cpu", show_progress=False)
    _, meta = load_checkpoint(best)
    assert meta["model"] == model_name and meta["dataset"] == "synscenes"
    rows = [json.loads(line) for line in (out / "run" / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and "dev_rsum" in rows[0] and "loss_total" in rows[0]
    report = evaluate_checkpoint(best, data, "test", "full", "cpu", save=out / "sims.npy", progress=False)
    assert report["images"] == 24 and 0.0 <= report["metrics"]["rsum"] <= 600.0
    sims = np.load(out / "sims.npy")
    assert sims.shape == (24, 120) and np.isfinite(sims).all()
    return {"report": report, "rows": rows, "best": best}


def check_imc_term(model: torch.nn.Module) -> None:
    """With ``loss.imc`` set, the model's pooled vectors add the IMC term (Eq. 5.4) to the total."""
    model.train()
    batch = pair_batch(6)
    terms = model.training_losses(model(batch), batch)
    assert {"imc", "imc_image", "imc_text"} <= set(terms) and torch.isfinite(terms["total"])
