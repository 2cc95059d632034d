"""Per-AU decision thresholds chosen on validation subjects (`fau.evaluation.thresholds`; docs/fau.md,
decision 'decision threshold'): the cut, its use in `fau eval`, `fau predict` and the baselines."""

import json

import numpy as np
import pytest

from fau.data.table import load_prepared
from fau.evaluation.baselines import run_baselines
from fau.evaluation.checkpoint import evaluate_checkpoint
from fau.evaluation.thresholds import best_f1_thresholds, checkpoint_thresholds
from fau.models import MODELS
from fau.predict import load
from fau.train import read_settings, train
from shared.checkpoint import load_checkpoint
from shared.errors import UserError
from shared.metrics.multilabel import MultilabelCounts


def _f1(prob, labels, cut):
    pred, pos = prob >= cut, labels == 1
    tp, fp, fn = (pred & pos).sum(), (pred & ~pos).sum(), (~pred & pos).sum()
    return 2 * tp / (2 * tp + fp + fn)


def test_the_cut_is_the_best_f1_by_hand() -> None:
    prob = np.array([[0.9], [0.8], [0.7], [0.6], [0.3], [0.2]])
    labels = np.array([[1], [0], [1], [1], [0], [1]])
    # cuts after 0.9 / 0.8 / 0.7 / 0.6 / 0.3 / 0.2: F1 = 2/5, 2/6, 4/7, 6/8, 6/9, 8/10 -> all six (0.8)
    assert best_f1_thresholds(prob, labels)[0] == pytest.approx(0.2)
    labels[5, 0] = 0                                   # now the best cut is after 0.6: F1 6/7
    cut = best_f1_thresholds(prob, labels)[0]
    assert cut == pytest.approx(0.45) and _f1(prob[:, 0], labels[:, 0], cut) == pytest.approx(6 / 7)
    # the chosen cut is the best of every possible one
    rng = np.random.default_rng(0)
    prob, labels = rng.random((200, 3)), (rng.random((200, 3)) < 0.2).astype(int)
    for c, cut in enumerate(best_f1_thresholds(prob, labels)):
        every = max(_f1(prob[:, c], labels[:, c], t) for t in np.unique(prob[:, c]))
        assert _f1(prob[:, c], labels[:, c], cut) == pytest.approx(every)


def test_ties_and_constant_scores_never_beat_chance() -> None:
    labels = np.array([[1], [0], [0], [0], [1], [0], [0], [0], [0], [0]])
    constant = np.full((10, 1), 0.3)
    cut = best_f1_thresholds(constant, labels)
    p = labels.mean()
    assert cut[0] == pytest.approx(0.3)                # everything active: the chance F1 2p / (1 + p)
    assert _f1(constant[:, 0], labels[:, 0], cut[0]) == pytest.approx(2 * p / (1 + p))
    # a tie is never split: two equal scores, one positive and one negative, are cut together
    prob = np.array([[0.9], [0.5], [0.5], [0.1]])
    cut = best_f1_thresholds(prob, np.array([[1], [1], [0], [0]]))[0]
    assert cut == pytest.approx(0.3)                   # both 0.5s active (F1 4/5), never one of them
    # unknown labels are skipped; a column without positives keeps 0.5; NaN is refused
    assert best_f1_thresholds(np.array([[0.2], [0.4]]), np.array([[0], [-1]]))[0] == 0.5
    with pytest.raises(ValueError, match="finite"):
        best_f1_thresholds(np.array([[np.nan], [0.4]]), np.array([[0], [1]]))


def test_per_class_thresholds_in_the_counts() -> None:
    counts = MultilabelCounts(2, np.array([0.3, 0.7]))
    counts.update(np.array([[0.4, 0.4], [0.8, 0.8]]), np.array([[1, 1], [0, 1]]))
    assert counts.tp.tolist() == [1, 1] and counts.fp.tolist() == [1, 0] and counts.fn.tolist() == [0, 1]
    with pytest.raises(ValueError, match="2 values"):
        MultilabelCounts(2, np.array([0.3, 0.7, 0.5]))


def test_validated_thresholds_need_the_validated_protocol() -> None:
    config = MODELS.load_config("algrnet", "tiny", ["train.protocol=paper"])
    with pytest.raises(UserError, match="train.threshold: validated .* train.threshold=fixed"):
        read_settings(config)
    read_settings(MODELS.load_config("algrnet", "tiny", ["train.protocol=paper", "train.threshold=fixed"]))
    for model in ("algrnet", "mgrrnet", "vlfau"):        # the paper configs cut at 0.5
        assert read_settings(MODELS.load_config(model, "bp4d", []))[0].threshold == "fixed"


def test_a_run_keeps_its_validation_thresholds_and_eval_and_predict_use_them(prepared, tmp_path) -> None:
    config = MODELS.load_config("algrnet", "tiny", ["train.epochs=1", "train.batch_size=8", "train.eval_batch_size=16"])
    assert config["train"]["threshold"] == "validated"
    best = train("algrnet", prepared, "part3", config, tmp_path / "run", device="cpu", show_progress=False)
    _, meta = load_checkpoint(best)
    labels = meta["labels"]
    chosen = checkpoint_thresholds(meta, labels)
    assert chosen is not None and set(meta["val"]["thresholds"]) == set(labels)
    assert not np.allclose(chosen, 0.5)                       # really chosen, not the default
    report = evaluate_checkpoint(best, prepared, "part3", "test", device="cpu")
    assert report["thresholds"]["rule"].startswith("best F1 per AU on the validation subjects")
    assert [report["thresholds"][n] for n in labels] == pytest.approx(chosen.tolist())
    # the report's F1 is the test F1 at those cuts, recomputed here from the model's probabilities
    from fau.data.loader import AlignedFaceDataset
    from fau.evaluation.checkpoint import load_checked
    from fau.evaluation.scores import predict_dataset
    from shared.distributed import DistInfo

    model, _ = load_checked(best, "cpu")
    data = load_prepared(prepared)
    test = AlignedFaceDataset(data, data.indices("part3", "test"), config["data"]["image_size"], config["data"]["crop"],
                              train=False)
    predictions = predict_dataset(model, test, 16, DistInfo())
    counts = MultilabelCounts(len(labels), chosen)
    counts.update(predictions["prob"], predictions["labels"])
    assert report["scores"]["macro"]["f1"] == pytest.approx(float(counts.f1().mean()))
    # fau predict: the checkpoint's cuts unless the caller gives its own
    assert load(best, device="cpu").thresholds.tolist() == pytest.approx(chosen.tolist())
    own = load(best, device="cpu", thresholds={labels[0]: 0.9}).thresholds
    assert own[0] == 0.9 and np.allclose(own[1:], 0.5)
    json.dumps(report)


def test_baselines_follow_the_same_rule(prepared) -> None:
    data = load_prepared(prepared)
    fixed, validated = run_baselines(data, "part3"), run_baselines(data, "part3", threshold="validated")
    assert "thresholds" not in fixed["majority"] and set(validated["landmarks"]["thresholds"]) == set(data.columns)
    # the majority predictor with chosen cuts: every test frame active or none, per AU
    labels = data.labels()[data.indices("part3", "test")]
    for c, name in enumerate(data.columns):
        known = labels[:, c] >= 0
        p = (labels[known, c] == 1).mean()
        chance = 2 * p / (1 + p) if p > 0 else 0.0
        assert validated["majority"]["scores"][name]["f1"] in (pytest.approx(0.0), pytest.approx(chance))
    assert validated["majority"]["scores"]["macro"]["auc"] == pytest.approx(0.5)
