"""The model-throughput benchmarks run end to end at their smallest settings and write complete JSON.

Timings are never asserted (house rule): only that every measurement exists and is positive.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

TOOLS = Path(__file__).resolve().parents[1] / "tools"


def load_tool(name: str) -> ModuleType:
    """Import ``tools/<name>.py`` as a module (tools/ is not a package)."""
    spec = importlib.util.spec_from_file_location(name, TOOLS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the file executes
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def restore_threads():
    """The scripts call torch.set_num_threads; give the other tests their setting back."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def positive(values) -> bool:
    return all(isinstance(v, float) and v > 0 for v in values)


def test_fau_bench_writes_every_measurement(tmp_path, capsys):
    out = tmp_path / "fau.json"
    code = load_tool("bench_fau_models").main(
        ["--quick", "--repeats", "1", "--warmup", "0", "--models", "algrnet", "--train-batch", "2", "--infer-batch", "2",
         "--baseline-samples", "100", "--json", str(out)])
    assert code == 0
    report = json.loads(out.read_text())
    assert {"settings", "torch", "baseline", "models"} <= set(report)
    assert report["settings"]["threads"] == 1
    baseline = report["baseline"]
    assert baseline["name"] == "landmarks" and baseline["num_aus"] == 12
    assert positive([baseline["fit_images_per_s"], baseline["predict_images_per_s"]])
    (row,) = report["models"]
    assert (row["model"], row["config"], row["num_aus"], row["crop"]) == ("algrnet", "algrnet_tiny.yaml", 15, 80)
    assert (row["train_batch"], row["infer_batch"]) == (2, 2)
    assert len(row["train_seconds"]) == len(row["infer_seconds"]) == 1
    assert positive([row[k] for k in ("train_images_per_s", "infer_images_per_s", "train_ratio", "infer_ratio")])
    assert "algrnet_tiny.yaml" in capsys.readouterr().out


def test_retrieval_bench_writes_every_measurement(tmp_path, capsys):
    out = tmp_path / "retrieval.json"
    code = load_tool("bench_retrieval_models").main(
        ["--quick", "--repeats", "1", "--warmup", "0", "--models", "smfea", "--encode-batch", "4",
         "--regions", "6", "--caption-length", "6", "--json", str(out)])
    assert code == 0
    report = json.loads(out.read_text())
    assert {"settings", "torch", "baseline", "models"} <= set(report)
    assert report["baseline"] == "vsepp_tiny.yaml"
    base, smfea = report["models"]  # the baseline is always measured first
    assert (base["model"], smfea["model"], smfea["config"]) == ("vsepp", "smfea", "smfea_tiny.yaml")
    assert base["train_ratio"] == base["image_ratio"] == base["caption_ratio"] == 1.0
    for row in (base, smfea):
        assert (row["train_batch"], row["encode_batch"]) == (32, 4)
        assert positive([row[k] for k in ("train_pairs_per_s", "images_per_s", "captions_per_s",
                                          "train_ratio", "image_ratio", "caption_ratio")])
    assert "smfea_tiny.yaml" in capsys.readouterr().out


def test_fau_predict_bench_writes_every_stage_and_ratio(tmp_path, capsys):
    out = tmp_path / "predict.json"
    code = load_tool("bench_fau_predict").main(
        ["--faces", "2", "--photo-size", "300", "--repeats", "1", "--warmup", "0", "--threads", "1",
         "--batch", "2", "--json", str(out)])
    assert code == 0
    report = json.loads(out.read_text())
    assert report["model"] == "algrnet" and report["faces_found"] == 2 and report["crop"] == 80
    for key in ("photo_seconds", "folder_seconds_per_image"):
        for clock in ("wall", "cpu"):
            assert set(report[key][clock]) == {"read", "detect", "align", "landmarks", "model", "text"}
        assert positive([report[key]["wall"][s] for s in ("detect", "landmarks", "align", "model", "text")])
    assert positive(list(report["aligned"].values())) and positive(list(report["ratios"].values()))
    assert "(model + text) / (detect + landmarks)" in capsys.readouterr().out


def test_pairwise_eval_bench_asserts_equal_scores_and_projects(tmp_path, capsys):
    out = tmp_path / "pairwise.json"
    code = load_tool("bench_pairwise_eval").main(
        ["--images", "4", "--regions", "6", "--caption-length", "8", "--shard", "3", "--json", str(out)])
    assert code == 0
    report = json.loads(out.read_text())
    assert (report["model"], report["config"], report["images"], report["captions"], report["pairs"]) == \
        ("hire_i2t", "hire_i2t_tiny", 4, 20, 80)
    assert report["max_abs_diff"] <= 1e-5 and report["threads"] == 1
    assert positive([report[k] for k in ("ours_seconds", "loop_seconds", "speedup", "ours_pairs_per_s",
                                         "coco5k_cpu_hours_ours", "flops_per_pair", "paper_flops_per_pair",
                                         "coco5k_gpu_seconds_paper")])
    assert report["paper_flops_per_pair"] > 100 * report["flops_per_pair"]  # D = 1024 vs the tiny 32
    assert "speed-up" in capsys.readouterr().out
