"""HiRE's extra cross-modal negatives (the thesis §7.5.1, ``loss.extra_negatives``): drawn outside the
batch, deterministically, they enter Eq. 7.13 and L_add as negatives, and a tiny training run with them
learns above chance."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from shared.config import load_run_config
from shared.errors import UserError

from retrieval.data.inputs import ImageInputs
from retrieval.data.negatives import ExtraNegatives, draw_outside
from retrieval.data.pairs import PairDataset, TextEncoding
from retrieval.data.precomp import load_split
from retrieval.data.vocab import Vocabulary
from retrieval.default_run import chance_rsum
from retrieval.evaluation.checkpoint import evaluate_checkpoint
from retrieval.losses import ExtraScores, RankingLoss
from retrieval.models import CONFIG_DIR
from retrieval.synth.generate import generate
from retrieval.train import train

from .fixtures import write_precomp
from .model_batches import single_thread  # noqa: F401 (autouse fixture)
from .test_hire import hire, hire_images, hire_texts


# ---------------------------------------------------------------- the loss
SCORES = torch.tensor([[0.9, 0.5], [0.3, 0.8]])        # image i × caption j, pair i ↔ i
EXTRA_I2T = torch.tensor([[0.95], [0.1]])             # image i × extra caption
EXTRA_T2I = torch.tensor([[0.2, 0.85], [0.7, 0.0]])   # caption j × extra images 0, 1


def hinge(x: float) -> float:
    return max(0.0, 0.2 + x)


def test_extra_negatives_enter_the_sum_and_the_hardest_as_written():
    """Eq. 7.13 with B − 1 + K negatives per query, against a hand computation (margin 0.2)."""
    extra = ExtraScores(EXTRA_I2T, EXTRA_T2I, text_image_ids=torch.tensor([7]), image_ids=torch.tensor([5, 6]))
    ids = torch.tensor([0, 1])
    i2t = [[hinge(0.5 - 0.9), hinge(0.95 - 0.9)], [hinge(0.3 - 0.8), hinge(0.1 - 0.8)]]
    t2i = [[hinge(0.3 - 0.9), hinge(0.2 - 0.9), hinge(0.85 - 0.9)], [hinge(0.5 - 0.8), hinge(0.7 - 0.8), hinge(0.0 - 0.8)]]
    summed = RankingLoss(0.2, hardest=False).from_scores(SCORES, ids, extra=extra)
    assert summed["rank_i2t"].item() == pytest.approx(sum(map(sum, i2t)))
    assert summed["rank_t2i"].item() == pytest.approx(sum(map(sum, t2i)))
    hardest = RankingLoss(0.2, hardest=True).from_scores(SCORES, ids, extra=extra)
    assert hardest["rank"].item() == pytest.approx(sum(map(max, i2t)) + sum(map(max, t2i)))
    plain = RankingLoss(0.2, hardest=False).from_scores(SCORES, ids)
    assert plain["rank"].item() == pytest.approx(hinge(0.5 - 0.9) + hinge(0.3 - 0.8) + hinge(0.3 - 0.9) + hinge(0.5 - 0.8))
    assert summed["rank"].item() > plain["rank"].item()


def test_an_extra_of_the_query_image_is_never_a_negative():
    """An extra caption / image of the anchor's own image id is a positive: masked, whatever its score."""
    extra = ExtraScores(EXTRA_I2T, EXTRA_T2I, text_image_ids=torch.tensor([0]), image_ids=torch.tensor([1, 6]))
    loss = RankingLoss(0.2, hardest=False).from_scores(SCORES, torch.tensor([0, 1]), extra=extra)
    i2t = hinge(0.5 - 0.9) + hinge(0.3 - 0.8) + hinge(0.1 - 0.8)                       # image 0 skips caption of image 0
    t2i = hinge(0.3 - 0.9) + hinge(0.85 - 0.9) + hinge(0.5 - 0.8) + hinge(0.0 - 0.8)   # caption 1 skips image 1
    assert loss["rank_i2t"].item() == pytest.approx(i2t) and loss["rank_t2i"].item() == pytest.approx(t2i)


def test_config_reads_extra_negatives():
    assert RankingLoss.from_config({"extra_negatives": "batch"}).extra_negative_count(80) == 80
    assert RankingLoss.from_config({"extra_negatives": 12}).extra_negative_count(80) == 12
    assert RankingLoss.from_config({}).extra_negative_count(80) == 0
    with pytest.raises(UserError, match="loss.extra_negatives"):
        RankingLoss.from_config({"extra_negatives": "all"})
    with pytest.raises(UserError, match="loss.extra_negatives"):
        RankingLoss.from_config({"extra_negatives": -1})


@pytest.mark.parametrize("name", ["hire_i2t", "hire_t2i"])
def test_hire_scores_the_extras_as_the_pairs_they_are(name):
    """``forward`` with ``batch["extra"]``: the extra columns are the pairwise scores (Eq. 7.8–7.12) of the
    batch queries against the extra items, and the loss with them exceeds the in-batch loss."""
    model = hire(name, word_mask_rate=0.0, dropout=0.0).eval()
    images, texts = hire_images(7, seed=2), hire_texts(7, seed=3)
    take = lambda d, s: {k: v[s] for k, v in d.items()}  # noqa: E731
    batch = {"images": take(images, slice(0, 4)), "texts": take(texts, slice(0, 4)), "image_ids": torch.arange(4),
             "extra": {"images": take(images, slice(4, 7)), "texts": take(texts, slice(4, 7)),
                       "image_ids": torch.tensor([4, 5, 6]), "text_image_ids": torch.tensor([4, 5, 6])}}
    with torch.no_grad():
        full = model.forward_sim(model.encode_images(images), model.encode_texts(texts))
        out = model(batch)
        with_extra = model.training_losses(out, batch)
        without = model.training_losses(out | {"extra": None}, batch)
    rank = out["extra"]["rank"]
    torch.testing.assert_close(rank.i2t, full[:4, 4:], atol=1e-5, rtol=0)
    torch.testing.assert_close(rank.t2i, full[4:, :4].T, atol=1e-5, rtol=0)
    expected = model.loss.from_scores(full[:4, :4], torch.arange(4), extra=rank)["rank"]
    torch.testing.assert_close(with_extra["rank"], expected)
    assert with_extra["rank"] > without["rank"] and with_extra["add"] > without["add"]
    torch.testing.assert_close(with_extra["total"], with_extra["rank"] + with_extra["add"])
    torch.testing.assert_close(without["total"], model.training_losses(model({k: batch[k] for k in ("images", "texts", "image_ids")}), batch)["total"])


# ---------------------------------------------------------------- the sampler
@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    folder = write_precomp(tmp_path_factory.mktemp("negatives"), splits={"train": 40}, regions=6)
    split = load_split(folder, "train", feature_dim=None, num_regions=None)
    keys = ImageInputs(("regions", "region_mask", "region_graph"), 0.4)
    return PairDataset(split, TextEncoding("tokens", Vocabulary.build(split.captions, min_count=1)), keys)


def test_extras_lie_outside_the_batch_and_are_collated(pairs):
    sampler = ExtraNegatives(pairs, count=8, seed=0)
    rng = np.random.default_rng(1)
    for _ in range(25):
        indices = rng.choice(len(pairs), size=12, replace=False)
        batch = sampler.collate([pairs[int(j)] for j in indices])
        extra, in_batch = batch["extra"], set(batch["image_ids"].tolist())
        assert not in_batch & set(extra["image_ids"].tolist()) and not in_batch & set(extra["text_image_ids"].tolist())
        assert len(set(extra["image_ids"].tolist())) == 8 and extra["texts"]["tokens"].shape[0] == 8
        assert extra["images"]["regions"].shape == (8, 6, 16) and extra["images"]["region_graph"].shape == (8, 6, 6)
        first = int(extra["image_ids"][0])
        np.testing.assert_array_equal(extra["images"]["regions"][0].numpy(), pairs.split.images[first])
        images, captions = sampler.sample(indices.tolist(), batch["image_ids"].tolist())
        np.testing.assert_array_equal(extra["text_image_ids"].numpy(), captions // 5)
        assert [pairs.encoded[j] for j in captions][0] == extra["texts"]["tokens"][0, :extra["texts"]["lengths"][0]].tolist()


def test_the_draw_is_a_function_of_seed_epoch_rank_and_batch(pairs):
    batch, ids = [3, 17, 40, 41], [0, 3, 8, 8]
    draw = lambda **kw: ExtraNegatives(pairs, 6, **{"seed": 0, **kw}).sample(batch, ids)  # noqa: E731
    same = draw(), draw()
    np.testing.assert_array_equal(same[0][0], same[1][0])
    np.testing.assert_array_equal(same[0][1], same[1][1])
    later = ExtraNegatives(pairs, 6, seed=0)
    later.set_epoch(1)
    for other in (draw(seed=1), draw(rank=1), later.sample(batch, ids)):
        assert not (np.array_equal(other[0], same[0][0]) and np.array_equal(other[1], same[0][1]))


def test_the_draw_is_uniform_over_the_allowed_items():
    rng = np.random.default_rng(0)
    counts = np.zeros(10)
    for _ in range(4000):
        counts[draw_outside(rng, 10, 3, np.array([2, 5]))] += 1
    assert counts[2] == counts[5] == 0
    allowed = np.delete(counts, [2, 5])
    assert np.all(np.abs(allowed / 4000 - 3 / 8) < 0.03)
    with pytest.raises(ValueError, match="outside the batch"):
        draw_outside(rng, 4, 3, np.array([0, 1]))


# ---------------------------------------------------------------- training
def test_training_refuses_extras_it_cannot_draw_or_use(tmp_path):
    generate(tmp_path / "data", n_train=20, n_dev=4, n_test=4, seed=1, progress=False)
    config = load_run_config("hire_i2t_tiny", CONFIG_DIR, ["loss.extra_negatives=16", "train.batch_size=8"])
    with pytest.raises(UserError, match=r"20 training images cannot give 16 extra negatives outside a batch of 8"):
        train("hire_i2t", tmp_path / "data", config, tmp_path / "run", device="cpu", show_progress=False)
    config = load_run_config("vsepp_tiny", CONFIG_DIR)
    config["loss"]["extra_negatives"] = "batch"  # a key only HiRE's configs carry
    with pytest.raises(UserError, match=r"loss.extra_negatives: 'batch' is HiRE's option .* vsepp takes in-batch"):
        train("vsepp", tmp_path / "data", config, tmp_path / "run2", device="cpu", show_progress=False)


@pytest.mark.slow
def test_a_tiny_run_with_extra_negatives_learns_above_chance(tmp_path):
    """hire_i2t tiny with ``loss.extra_negatives=batch`` (32 extras per query) on SynScenes."""
    generate(tmp_path / "data", n_train=200, n_dev=20, n_test=50, seed=3, progress=False)
    config = load_run_config("hire_i2t_tiny", CONFIG_DIR, ["loss.extra_negatives=batch", "train.epochs=3",
                                                           "data.dev_max_images=20"])
    best = train("hire_i2t", tmp_path / "data", config, tmp_path / "run", device="cpu", show_progress=False)
    report = evaluate_checkpoint(best, tmp_path / "data", "test", "full", "cpu", progress=False)
    assert report["metrics"]["rsum"] > chance_rsum(50) + 30, report["metrics"]["rsum"]  # 109.6 vs chance 62.3 when written


@pytest.mark.slow
def test_torchrun_two_processes_with_extra_negatives(tmp_path):
    """Under DDP each rank draws its own extras (seeded by its rank) and scores them inside the DDP forward."""
    generate(tmp_path / "data", n_train=40, n_dev=8, n_test=8, seed=2, progress=False)
    torchrun = Path(sys.executable).parent / "torchrun"
    result = subprocess.run(
        [str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "retrieval", "train", "--model", "hire_i2t",
         "--data", str(tmp_path / "data"), "--config", "hire_i2t_tiny", "--out", str(tmp_path / "ddp"), "--device", "cpu",
         "--no-progress", "train.epochs=1", "train.batch_size=16", "loss.extra_negatives=batch", "data.dev_max_images=8"],
        capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    row = json.loads((tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()[0])
    # 8 pairs per rank, 16 extras per query: near the untrained start (every hinge ≈ the margin) the extras alone
    # give 2 · 8 · 16 · 0.2 = 51.2 and the in-batch negatives 2 · 8 · 7 · 0.2 = 22.4 (the loss without extras)
    assert row["loss_rank"] > 51.2, row["loss_rank"]
    assert (tmp_path / "ddp" / "best.safetensors").is_file()
