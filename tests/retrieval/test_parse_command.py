"""`retrieval parse`: caches cover every caption, both layouts, resume, failure report, one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from retrieval.cli import main
from retrieval.data.precomp import resolve_precomp_dir
from retrieval.parsing.base import Parse, Token
from retrieval.parsing.cache import ParseCache, build_caches, parse_split
from shared.errors import UserError

from .fixtures import write_precomp


class WordBackend:
    """A stand-in parser: every word a noun hanging off the first; 'FAIL' captions fail."""

    name = "words"
    version = "words-1"

    def __init__(self, fail_after_batches: int | None = None) -> None:
        self.calls = 0
        self.fail_after_batches = fail_after_batches

    def parse(self, texts):
        if self.fail_after_batches is not None and self.calls >= self.fail_after_batches:
            raise KeyboardInterrupt
        self.calls += 1
        out = []
        for text in texts:
            if "FAIL" in text:
                out.append(Parse((), error="RuntimeError: cannot parse"))
                continue
            words = text.split()
            out.append(Parse(tuple(Token(w, w, "NOUN", "NN", -1 if i == 0 else 0, "root" if i == 0 else "dep") for i, w in enumerate(words))))
        return out


def _lines(path):
    return path.read_text(encoding="utf-8").splitlines()


def test_parse_command_end_to_end(tmp_path, capsys):
    folder = write_precomp(tmp_path)
    assert main(["parse", "--data", str(tmp_path), "--quiet", "--fragments", "20", "--relations", "5"]) == 0
    out = capsys.readouterr().out
    assert "dataset 'tiny' (scan layout)" in out and "train: 20 captions (20 parsed now), 0 parse failures" in out
    cache = ParseCache(resolve_precomp_dir(tmp_path))
    for split, n_images in {"train": 4, "dev": 3, "test": 2}.items():
        captions = _lines(folder / f"{split}_caps.txt")
        for kind in ("parses.jsonl", "text_graphs.jsonl", "trees.jsonl"):
            assert len(_lines(cache.path(split, kind))) == len(captions) == 5 * n_images
        assert cache.load_tree_labels(split).shape == (5 * n_images, 7)
        graphs = cache.load_region_graphs(split)
        assert graphs.shape == (n_images, 36, 36) and graphs[:, 0, 1].all() and graphs[:, 3, 2].all()
    trees = cache.load_trees("train")
    assert all(t.nodes[1] is not None for t in trees)  # every fixture caption has a spatial relation
    dictionaries = cache.load_dictionaries()
    assert len(dictionaries.relations) <= 6 and dictionaries.relations.labels[0] == "null"
    assert cache.load_scene_graphs("dev")[0].relations
    report = json.loads((cache.text_dir / "report.json").read_text())
    assert report["splits"]["test"]["parse_failures"] == 0 and report["relation_classes"] == len(dictionaries.relations)

    assert main(["parse", "--data", str(tmp_path), "--quiet", "--fragments", "20", "--relations", "5"]) == 0
    again = capsys.readouterr().out
    assert "caches are up to date" in again and "train: 20 captions (0 parsed now)" in again


def test_vse_infty_precomp_dir_and_train_always_included(tmp_path, capsys):
    folder = write_precomp(tmp_path, name="f30k", layout="vse_infty", side=False)
    assert main(["parse", "--data", str(folder), "--splits", "test", "--quiet"]) == 0
    assert "dataset 'f30k' (vse_infty layout)" in capsys.readouterr().out
    cache = ParseCache(resolve_precomp_dir(folder))
    assert cache.path("train", "trees.jsonl").is_file() and cache.path("test", "trees.jsonl").is_file()
    assert not cache.path("dev", "trees.jsonl").exists() and not cache.region_graph_path("test").exists()


def test_interrupted_parse_resumes_from_the_last_complete_line(tmp_path):
    write_precomp(tmp_path, side=False)
    cache = ParseCache(resolve_precomp_dir(tmp_path), "words")
    captions = _lines(cache.precomp.file("train", "caps.txt"))
    first = WordBackend(fail_after_batches=2)
    with pytest.raises(KeyboardInterrupt):
        parse_split(cache, "train", captions, lambda: first, batch_size=3, progress=False)
    partial = cache.path("train", "parses.jsonl.partial")
    assert len(_lines(partial)) == 6 and not cache.path("train", "parses.jsonl").exists()
    with partial.open("a") as handle:
        handle.write('{"tokens": [["torn"')  # a write cut off mid-line
    second = WordBackend()
    assert parse_split(cache, "train", captions, lambda: second, batch_size=3, progress=False) == 14
    assert second.calls == 5 and not partial.exists()
    parses = cache.load_parses("train")
    assert [t.text for t in parses[7].tokens] == captions[7].split()
    assert parse_split(cache, "train", captions, lambda: pytest.fail("no parser needed"), progress=False) == 0


def test_parse_failures_are_reported_and_cached(tmp_path):
    folder = write_precomp(tmp_path, side=False)
    lines = _lines(folder / "dev_caps.txt")
    lines[4] = "FAIL this caption"
    (folder / "dev_caps.txt").write_text("\n".join(lines) + "\n")
    cache = ParseCache(resolve_precomp_dir(tmp_path), "words")
    report = build_caches(cache, ["dev"], WordBackend, progress=False)
    dev = report["splits"]["dev"]
    assert dev["parse_failures"] == 1 and dev["failures"][0] == {"caption": 4, "text": "FAIL this caption", "error": "RuntimeError: cannot parse"}
    assert len(cache.load_trees("dev")) == 15 and cache.load_tree_labels("dev")[4].tolist() == [0] * 7
    assert set(report["splits"]) == {"train", "dev"} and np.load(cache.path("train", "tree_labels.npy")).shape == (20, 7)


@pytest.mark.parametrize(
    "setup, args, message",
    [
        (None, ["--data", "{tmp}/missing"], "missing: not a directory"),
        ("four_captions", ["--data", "{tmp}"], "train_caps.txt: 19 captions for 4 images in train_ims.npy"),
        ("ok", ["--data", "{tmp}", "--splits", "testall"], "no split 'testall'"),
        ("ok", ["--data", "{tmp}", "--backend", "stanza", "--stanza-dir", "{tmp}/none"], "stanza models not found"),
        ("no_train", ["--data", "{tmp}"], "no train split"),
        ("ok", ["--data", "{tmp}", "--batch-size", "0"], "--batch-size must be positive"),
    ],
)
def test_errors_are_one_line(tmp_path, capsys, setup, args, message):
    if setup is not None:
        folder = write_precomp(tmp_path, side=False, splits={"dev": 1} if setup == "no_train" else None)
        if setup == "four_captions":
            lines = _lines(folder / "train_caps.txt")
            (folder / "train_caps.txt").write_text("\n".join(lines[:-1]) + "\n")
    assert main(["parse", *[a.format(tmp=tmp_path) for a in args], "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("retrieval: error: ") and message in err and "\n" not in err


def test_damaged_or_missing_cache_files_are_user_errors(tmp_path):
    write_precomp(tmp_path, side=False)
    cache = ParseCache(resolve_precomp_dir(tmp_path), "words")
    with pytest.raises(UserError, match=r"train_trees\.jsonl: cache missing \(run `retrieval parse"):
        cache.load_trees("train")
    build_caches(cache, ["train"], WordBackend, progress=False)
    path = cache.path("train", "parses.jsonl")
    path.write_text(path.read_text().replace('"tokens"', '"tokenz"', 1))
    with pytest.raises(UserError, match=r"train_parses\.jsonl: line 1 is damaged"):
        cache.load_parses("train")
