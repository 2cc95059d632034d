"""`retrieval index` / `retrieval search` and the Python API on a tiny SynScenes with a tiny trained VSE++."""

import json

import faiss
import numpy as np
import pytest
import torch

import retrieval
from retrieval.cli import main
from retrieval.data.precomp import load_split, resolve_precomp_dir
from retrieval.search import backends as backends_module
from retrieval.search import index as index_module
from retrieval.search.backends import BackendSpec, ExactBackend, FaissBackend, choose_backend, ivf_cells
from retrieval.search.encoder import Retriever, image_source
from retrieval.search.index import Index
from retrieval.synth.generate import generate
from retrieval.models import CONFIG_DIR
from retrieval.train import train
from shared.config import load_run_config
from shared.errors import UserError

FAST = ["train.epochs=1", "train.batch_size=16"]


@pytest.fixture(scope="module", autouse=True)
def single_thread():
    """One torch and one FAISS thread (the machine is shared; OpenMP oversubscription is slow)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    faiss.omp_set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    root = tmp_path_factory.mktemp("synscenes")
    generate(root, n_train=48, n_dev=16, n_test=24, seed=5, progress=False)
    return root


@pytest.fixture(scope="module")
def vsepp(scenes, tmp_path_factory):
    run = tmp_path_factory.mktemp("vsepp")
    return train("vsepp", scenes, load_run_config("vsepp_tiny", CONFIG_DIR, FAST), run, device="cpu", show_progress=False)


@pytest.fixture(scope="module")
def retriever(vsepp):
    return retrieval.load(str(vsepp), "cpu")


@pytest.fixture(scope="module")
def test_split(scenes):
    return load_split(resolve_precomp_dir(scenes), "test", feature_dim=None)


def unit_rows(n, d, seed=0, clusters=None):
    rng = np.random.default_rng(seed)
    if clusters:
        centres = rng.standard_normal((clusters, d))
        x = centres[rng.integers(0, clusters, n)] + 0.3 * rng.standard_normal((n, d))
    else:
        x = rng.standard_normal((n, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_api_encodes_and_scores_like_the_dot_product(retriever, test_split):
    images = retriever.encode_images(test_split)
    texts = retriever.encode_texts(test_split.captions[:7])
    assert images.shape == (24, texts.shape[1]) and images.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(images, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(retriever.score(test_split, test_split.captions[:7]), images @ texts.T, atol=1e-5)
    regions = np.asarray(test_split.images[:3])
    np.testing.assert_allclose(retriever.encode_images(regions), images[:3], atol=1e-5)  # bare feature array
    assert retriever.family == "two-tower" and len(retriever.sha256) == 64


def test_queries_empty_long_and_unknown(retriever, scenes, tmp_path, capsys):
    with pytest.raises(UserError, match="query 2 is empty"):
        retriever.encode_texts(["a red cube", "   "])
    long_query = " ".join(["a large red cube left of a small blue sphere"] * 100)
    unknown = "zorblax quuxified frobnicators"
    embeddings = retriever.encode_texts([long_query, unknown])
    assert embeddings.shape[0] == 2 and np.isfinite(embeddings).all()
    out = tmp_path / "idx"
    assert main(["index", "build", "--checkpoint", str(retriever.checkpoint), "--data", str(scenes), "--out", str(out),
                 "--quiet", "--device", "cpu"]) == 0
    assert main(["search", "--index", str(out), long_query, unknown, "--topk", "3", "--json", str(tmp_path / "r.json")]) == 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert [len(r["hits"]) for r in report["results"]] == [3, 3]
    capsys.readouterr()
    assert main(["search", "--index", str(out), ""]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "retrieval: error: query 1 is empty"


def test_round_trip_and_faiss_flat_agrees_with_exact(retriever, scenes, tmp_path):
    queries = retriever.encode_texts(["a red cube left of a blue sphere", "there are three cylinders", "a small ball"])
    built = Index.build(retriever, scenes, "test", progress=False)
    result = built.search(queries, 5)
    loaded = Index.load(built.save(tmp_path / "exact"))
    again = loaded.search(queries, 5)
    np.testing.assert_array_equal(again.ids, result.ids)
    np.testing.assert_array_equal(again.scores, result.scores)
    assert again.hits(0) == result.hits(0) and result.hits(0)[0]["path"].endswith(".png")
    manifest = json.loads((tmp_path / "exact" / "manifest.json").read_text())
    assert (manifest["model"], manifest["dim"], manifest["count"], manifest["dtype"]) == ("vsepp", built.dim, 24, "float32")
    assert manifest["checkpoint_sha256"] == retriever.sha256 and set(manifest["files"]) == {"vectors", "items"}
    assert set(manifest["checksums"]) == set(manifest["files"].values())
    assert {f.name for f in (tmp_path / "exact").iterdir()} == {"manifest.json", *manifest["files"].values()}

    flat = Index.build(retriever, scenes, "test", backend="flat", progress=False)
    flat_result = flat.search(queries, 5)
    np.testing.assert_array_equal(flat_result.ids, result.ids)
    np.testing.assert_allclose(flat_result.scores, result.scores, atol=1e-5)
    flat_loaded = Index.load(flat.save(tmp_path / "flat"))
    assert "faiss" in json.loads((tmp_path / "flat" / "manifest.json").read_text())["files"]
    np.testing.assert_array_equal(flat_loaded.search(queries, 5).ids, flat_result.ids)

    half = Index.build(retriever, scenes, "test", dtype="float16", progress=False)
    half_loaded = Index.load(half.save(tmp_path / "half"))
    assert half_loaded.vectors.dtype == np.float16
    np.testing.assert_array_equal(half_loaded.search(queries, 5).ids, half.search(queries, 5).ids)
    np.testing.assert_allclose(half.search(queries, 5).scores, result.scores, atol=2e-3)


def test_backends_agree_and_approximate_ones_recall(tmp_path):
    gallery, queries = unit_rows(4000, 32, clusters=40), unit_rows(50, 32, seed=1, clusters=40)
    exact = ExactBackend(chunk_rows=700)  # several chunks: the running top-k must merge them
    exact.add(gallery[:2500])
    exact.add(gallery[2500:])
    scores, ids = exact.search(queries, 10)
    truth = np.argsort(-(queries @ gallery.T), axis=1, kind="stable")[:, :10]
    np.testing.assert_array_equal(np.sort(ids, axis=1), np.sort(truth, axis=1))
    flat = FaissBackend(32, BackendSpec("flat"))
    flat.add(gallery)
    np.testing.assert_allclose(flat.search(queries, 10)[0], scores, atol=1e-5)
    for spec in (BackendSpec("ivf", nprobe=8), BackendSpec("hnsw", ef_search=64)):
        backend = FaissBackend(32, spec)
        backend.add(gallery)
        found = backend.search(queries, 10)[1]
        recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, ids)])
        assert recall >= 0.9, (spec.kind, recall)
    few = ExactBackend()
    few.add(gallery[:3])
    s, i = few.search(queries[:2], 5)
    assert (i[:, 3:] == -1).all() and np.isneginf(s[:, 3:]).all()
    assert choose_backend(10) == "exact" and choose_backend(backends_module.AUTO_EXACT_MAX + 1) == "ivfpq"
    assert choose_backend(10, "ivf") == "ivf" and ivf_cells(4000, 0) == 102 and ivf_cells(100, 0) == 2
    with pytest.raises(UserError, match="--backend 'annoy'"):
        choose_backend(10, "annoy")


def test_corrupted_or_mismatched_index_gives_one_line_errors(retriever, scenes, tmp_path, capsys):
    out = Index.build(retriever, scenes, "test", progress=False).save(tmp_path / "idx")
    vectors = out / json.loads((out / "manifest.json").read_text())["files"]["vectors"]
    data = bytearray(vectors.read_bytes())
    data[-3] ^= 0xFF
    vectors.write_bytes(bytes(data))
    with pytest.raises(UserError, match=rf"checksum mismatch in {vectors.name}"):
        Index.load(out)
    assert main(["search", "--index", str(out), "a cube"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "checksum mismatch" in err

    out = Index.build(retriever, scenes, "test", progress=False).save(tmp_path / "idx2")
    manifest = json.loads((out / "manifest.json").read_text())
    (out / "manifest.json").write_text(json.dumps({**manifest, "dim": manifest["dim"] + 1}))
    with pytest.raises(UserError, match=r"vectors\.\w+\.npy has shape \(24, \d+\), the manifest says"):
        Index.load(out)
    (out / "manifest.json").write_text("{not json")
    with pytest.raises(UserError, match="manifest.json is not valid JSON"):
        Index.load(out)
    (out / "manifest.json").unlink()
    with pytest.raises(UserError, match="not an index folder"):
        Index.load(out)

    other = Index.build(retriever, scenes, "test", progress=False)
    other.model = "3shnet"
    with pytest.raises(UserError, match="index built with model '3shnet'"):
        other.check_model(retriever)
    other.model, other.checkpoint_sha256 = "vsepp", "0" * 64
    with pytest.raises(UserError, match="rebuild the index"):
        other.encode_queries(retriever, ["a cube"])
    with pytest.raises(UserError, match="queries of dimension"):
        other.search(np.ones((1, other.dim + 2), np.float32))
    with pytest.raises(UserError, match="not l2-normalised"):
        other.add(np.ones((1, other.dim), np.float32), [{}])


def test_incremental_add_equals_full_build(retriever, scenes, tmp_path, monkeypatch):
    full = Index.build(retriever, scenes, "test", progress=False)
    split = load_split(resolve_precomp_dir(scenes), "test", feature_dim=None)
    items = index_module.image_items(split)
    part = Index.empty_for(retriever)
    part.add(retriever.encode_images(split, indices=range(10)), items[:10])
    reloaded = Index.load(part.save(tmp_path / "part"))
    reloaded.add(retriever.encode_images(split, indices=range(10, 24)), items[10:])
    np.testing.assert_allclose(reloaded.vectors, full.vectors, atol=1e-6)
    assert reloaded.items == full.items
    queries = retriever.encode_texts(["a red cube", "two spheres behind a cone"])
    np.testing.assert_array_equal(reloaded.search(queries, 8).ids, full.search(queries, 8).ids)

    # CLI: build on dev, then add test == one index over dev + test
    out = tmp_path / "cli"
    common = ["--data", str(scenes), "--quiet", "--device", "cpu"]
    assert main(["index", "build", "--checkpoint", str(retriever.checkpoint), "--out", str(out), "--split", "dev", *common]) == 0
    assert main(["index", "add", "--index", str(out), "--split", "test", *common]) == 0
    both = Index.load(out)
    dev = load_split(resolve_precomp_dir(scenes), "dev", feature_dim=None, dev_max_images=None)
    expected = np.concatenate([retriever.encode_images(dev), full.vectors])
    np.testing.assert_allclose(both.vectors, expected, atol=1e-6)
    assert [(i["split"], i["index"]) for i in both.items] == [("dev", i) for i in range(16)] + [("test", i) for i in range(24)]


def test_interrupted_build_resumes_from_saved_chunks(retriever, scenes, tmp_path, monkeypatch):
    monkeypatch.setattr(index_module, "BUILD_CHUNK", 8)
    calls = []
    original = type(retriever).encode_images

    def failing(self, images, batch_size=128, progress=False, indices=None):
        calls.append(list(indices))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return original(self, images, batch_size, progress, indices)

    monkeypatch.setattr(type(retriever), "encode_images", failing)
    with pytest.raises(KeyboardInterrupt):
        Index.build(retriever, scenes, "test", work_dir=tmp_path / "idx", progress=False)
    assert (tmp_path / "idx" / ".partial" / "000000.npy").is_file()
    resumed = Index.build(retriever, scenes, "test", work_dir=tmp_path / "idx", progress=False)
    assert calls[2:] == [list(range(8, 16)), list(range(16, 24))]  # chunk 0 came from disk
    assert not (tmp_path / "idx" / ".partial").exists()
    monkeypatch.setattr(type(retriever), "encode_images", original)
    np.testing.assert_allclose(resumed.vectors, Index.build(retriever, scenes, "test", progress=False).vectors, atol=1e-6)


def test_image_to_text_over_a_caption_bank(retriever, scenes, test_split, tmp_path):
    out = tmp_path / "captions"
    assert main(["index", "build", "--checkpoint", str(retriever.checkpoint), "--data", str(scenes), "--captions",
                 "--out", str(out), "--quiet", "--device", "cpu"]) == 0
    report_file = tmp_path / "i2t.json"
    assert main(["search", "--index", str(out), "--image", test_split.ids[3], "--topk", "5", "--json", str(report_file)]) == 0
    hits = json.loads(report_file.read_text())["results"][0]["hits"]
    row = retriever.score(test_split, test_split.captions)[3]
    expected = np.argsort(-row, kind="stable")[:5]
    assert [h["caption"] for h in hits] == expected.tolist()
    np.testing.assert_allclose([h["score"] for h in hits], row[expected], atol=1e-5)
    assert all(h["text"] == test_split.captions[h["caption"]] for h in hits)

    features = tmp_path / "image.npy"
    np.save(features, np.asarray(test_split.images[3]))
    assert main(["search", "--index", str(out), "--image", str(features), "--topk", "5", "--json", str(report_file)]) == 0
    assert [h["caption"] for h in json.loads(report_file.read_text())["results"][0]["hits"]] == expected.tolist()

    bank = tmp_path / "bank.txt"
    bank.write_text("a red cube\n\nthere are three cylinders\n", encoding="utf-8")
    assert main(["index", "build", "--checkpoint", str(retriever.checkpoint), "--captions-file", str(bank),
                 "--out", str(tmp_path / "bank"), "--quiet", "--device", "cpu"]) == 0
    assert [i["text"] for i in Index.load(tmp_path / "bank").items] == ["a red cube", "there are three cylinders"]
    assert main(["search", "--index", str(out), "--image", "no-such-id"]) == 2


def test_heldout_report_recall(retriever, scenes, tmp_path):
    out = Index.build(retriever, scenes, "test", progress=False).save(tmp_path / "idx")
    assert main(["search", "--index", str(out), "--heldout", "12", "--topk", "10", "--json", str(tmp_path / "h.json")]) == 0
    heldout = json.loads((tmp_path / "h.json").read_text())["heldout"]
    assert heldout["queries"] == 12 and 0.0 <= heldout["r1"] <= heldout["r5"] <= heldout["r10"] <= 100.0
    split = load_split(resolve_precomp_dir(scenes), "test", feature_dim=None)
    rows = np.unique(np.linspace(0, 23, 12).astype(int))
    sims = retriever.score(split, [split.captions[5 * i + i % 5] for i in rows])  # (images, queries)
    ranks = [(sims[:, q] >= sims[i, q]).sum() - 1 for q, i in enumerate(rows)]  # negatives at or above the target
    assert heldout["r5"] == pytest.approx(100.0 * np.mean(np.array(ranks) < 5))


def test_heldout_with_a_constant_scorer_scores_at_most_chance(retriever, scenes, tmp_path, monkeypatch):
    dim = retriever.encode_texts(["a"]).shape[1]
    unit = np.eye(1, dim, dtype=np.float32)  # every image and caption embedded to one vector: a collapsed model
    monkeypatch.setattr(Retriever, "encode_texts", lambda self, texts, *a, **k: np.repeat(unit, len(texts), 0))
    monkeypatch.setattr(Retriever, "encode_images", lambda self, images, *a, indices=None, **k: np.repeat(
        unit, len(indices) if indices is not None else image_source(images).n_images, 0))
    for kind, gallery, per_query in (("images", 24, 1), ("captions", 120, 5)):
        out = Index.build(retriever, scenes, "test", kind=kind, progress=False).save(tmp_path / kind)
        for topk in (10, gallery):  # a list cut from the gallery, and the whole gallery listed
            report = tmp_path / f"{kind}{topk}.json"
            assert main(["search", "--index", str(out), "--heldout", "24", "--topk", str(topk), "--json", str(report)]) == 0
            heldout = json.loads(report.read_text())["heldout"]
            for k in (1, 5, 10):
                assert heldout[f"r{k}"] <= 100 * k * per_query / gallery  # chance
                assert heldout[f"r{k}"] == 0.0  # pessimistic ties: every target is behind its tied negatives


def toy_index(rows, backend="exact", dtype="float32"):
    index = Index("images", "vsepp", "ckpt.safetensors", "0" * 64, rows.shape[1], dtype, backend)
    index.add(rows, [{"id": str(i)} for i in range(len(rows))])
    return index


def test_ivfpq_is_chosen_above_the_size_and_recalls_like_exact(tmp_path, monkeypatch):
    gallery, queries = unit_rows(4000, 32, clusters=40), unit_rows(50, 32, seed=1, clusters=40)
    truth = toy_index(gallery).search(queries, 10).ids
    monkeypatch.setattr(backends_module, "AUTO_EXACT_MAX", 3999)  # the toy gallery is "above the size"
    auto = toy_index(gallery, BackendSpec("auto", nprobe=16))
    assert auto.backend_spec.kind == "ivfpq"
    result = auto.search(queries, 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(result.ids, truth)])
    assert recall >= 0.95, recall
    np.testing.assert_allclose(result.scores, np.take_along_axis(queries @ gallery.T, result.ids, 1), atol=1e-5)  # re-ranked exactly
    loaded = Index.load(auto.save(tmp_path / "pq"))
    assert isinstance(loaded.vectors, np.memmap)  # the rows stay on disk; only shortlists are read
    again = loaded.search(queries, 10)
    np.testing.assert_array_equal(again.ids, result.ids)
    np.testing.assert_array_equal(again.scores, result.scores)
    half = toy_index(gallery[:3999], BackendSpec("auto"), "float16")
    assert half.backend_spec.kind == "exact"  # at or below the size: exact
    bare = FaissBackend(32, BackendSpec("ivfpq", nprobe=16))  # no stored rows: 4-byte PQ scores, no re-rank
    bare.add(gallery)
    bare_recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(bare.search(queries, 10)[1], truth)])
    assert 10 / 4000 * 40 < bare_recall < recall  # far above chance, and the exact re-rank is what reaches 0.95
    with pytest.raises(UserError, match="--rerank 0: must be at least 1"):
        BackendSpec("ivfpq", rerank=0).validate()


def test_index_is_searchable_from_another_working_directory(retriever, scenes, tmp_path, monkeypatch, capsys):
    home = tmp_path / "project"
    (home / "ckpt").mkdir(parents=True)
    for file in (retriever.checkpoint, retriever.checkpoint.with_suffix(".json")):
        (home / "ckpt" / file.name).write_bytes(file.read_bytes())
    monkeypatch.chdir(home)
    assert main(["index", "build", "--checkpoint", f"ckpt/{retriever.checkpoint.name}", "--data", str(scenes),
                 "--out", "idx", "--quiet", "--device", "cpu"]) == 0
    manifest = json.loads((home / "idx" / "manifest.json").read_text())
    assert manifest["checkpoint"] == str(home / "ckpt" / retriever.checkpoint.name)
    assert manifest["checkpoint_relative"] == f"../ckpt/{retriever.checkpoint.name}"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert main(["search", "--index", str(home / "idx"), "a red cube", "--json", "r.json"]) == 0
    assert json.loads((elsewhere / "r.json").read_text())["results"][0]["hits"]
    moved = tmp_path / "moved"
    home.rename(moved)  # index and checkpoint moved together: found relative to the index folder
    assert main(["search", "--index", str(moved / "idx"), "a red cube"]) == 0
    (moved / "ckpt" / retriever.checkpoint.name).unlink()
    capsys.readouterr()
    assert main(["search", "--index", str(moved / "idx"), "a red cube"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "was not found" in err and "--checkpoint" in err
    assert main(["search", "--index", str(moved / "idx"), "a red cube", "--checkpoint", str(retriever.checkpoint)]) == 0


@pytest.mark.parametrize("crash_at", ["items", "faiss", "manifest"])
def test_a_crash_during_save_leaves_the_previous_index(tmp_path, monkeypatch, crash_at):
    gallery, queries = unit_rows(600, 16, clusters=6), unit_rows(5, 16, seed=1)
    out = toy_index(gallery, "flat").save(tmp_path / "idx")
    before = Index.load(out).search(queries, 5)
    files_before = sorted(f.name for f in out.iterdir())
    smaller = toy_index(gallery[:300], "flat")

    def crash(*args, **kwargs):
        raise KeyboardInterrupt  # the process dies here
    if crash_at == "items":
        monkeypatch.setattr(index_module, "atomic_open", crash)
    elif crash_at == "faiss":
        real = index_module.write_npy
        monkeypatch.setattr(index_module, "write_npy", lambda path, a: crash() if "faiss" in str(path) else real(path, a))
    else:
        monkeypatch.setattr(index_module, "write_json", crash)
    with pytest.raises(KeyboardInterrupt):
        smaller.save(out)
    monkeypatch.undo()
    survivor = Index.load(out)  # the previous manifest and its own files: a complete, matching set
    assert survivor.count == 600
    np.testing.assert_array_equal(survivor.search(queries, 5).ids, before.ids)
    assert set(files_before) <= {f.name for f in out.iterdir()}
    smaller.save(out)  # the next save commits and clears the leftovers of both earlier saves
    manifest = json.loads((out / "manifest.json").read_text())
    assert Index.load(out).count == 300
    assert {f.name for f in out.iterdir()} == {"manifest.json", *manifest["files"].values()}


def test_a_format_1_index_still_loads(tmp_path):
    gallery, queries = unit_rows(50, 8), unit_rows(3, 8, seed=1)
    out = tmp_path / "old"
    out.mkdir()
    np.save(out / "vectors.npy", gallery)
    (out / "items.jsonl").write_text("".join(json.dumps({"id": str(i)}) + "\n" for i in range(50)))
    checksums = {name: index_module.file_sha256(out / name) for name in ("vectors.npy", "items.jsonl")}
    (out / "manifest.json").write_text(json.dumps({
        "format": 1, "kind": "images", "model": "vsepp", "checkpoint": "runs/x.safetensors", "checkpoint_sha256": "0" * 64,
        "dim": 8, "count": 50, "dtype": "float32", "backend": {"kind": "exact"}, "checksums": checksums}))
    old = Index.load(out)
    np.testing.assert_array_equal(old.search(queries, 4).ids, toy_index(gallery).search(queries, 4).ids)
    with pytest.raises(UserError, match="pass --checkpoint"):
        old.checkpoint_for(None)


@pytest.mark.parametrize("flag", ["--topk", "--shortlist", "--queries-per-tile", "--batch-size"])
def test_search_argument_checks_are_one_line(tmp_path, capsys, flag):
    assert main(["search", "--index", str(tmp_path / "none"), "a cube", flag, "0"]) == 2
    err = capsys.readouterr().err
    assert err == f"retrieval: error: {flag} 0: must be at least 1\n"


def test_search_has_no_min_score_and_refuses_it(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["search", "--index", str(tmp_path / "none"), "a cube", "--min-score", "nan"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "unrecognized arguments: --min-score" in err and "Traceback" not in err
