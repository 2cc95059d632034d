"""Caption-structure caches of a precomp dataset, built once: parses, scene graphs, trees, region graphs.

Sources: docs/retrieval.md decision 'referral trees' ("cache trees offline, one JSON line per caption"), decision 'scene-graph edges' ("precompute
and cache a (36, 36) bool adjacency per image") (versioned caches, built once).

Layout under ``ROOT`` (default ``{precomp dir}/parse_cache``)::

    ROOT/{split}_region_graphs.npy          (N, R, R) bool, when {split}_boxes.npy exists
    ROOT/{backend}/{split}_parses.jsonl      one dependency parse per caption (the slow step)
    ROOT/{backend}/{split}_parses.meta.json  captions fingerprint + backend version of that file
    ROOT/{backend}/{split}_text_graphs.jsonl one text scene graph per caption
    ROOT/{backend}/{split}_trees.jsonl       one 7-node referral tree per caption
    ROOT/{backend}/{split}_tree_labels.npy   (n_captions, 7) int64 labels (0 = null)
    ROOT/{backend}/tree_dictionaries.json    fragment / relation dictionaries fitted on train
    ROOT/{backend}/manifest.json             inputs of the derived files (skip when unchanged)
    ROOT/{backend}/report.json               counts and parse failures

Parsing appends to ``{split}_parses.jsonl.partial`` batch by batch; an interrupted run resumes from
the last complete line, and the final file appears (by rename) only when every caption is parsed.
A finished parse file is reused while the caption file (sha1) and the backend name are unchanged;
after upgrading the parser model, delete ``ROOT/{backend}`` to re-parse.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence, TypeVar

import numpy as np
from tqdm import tqdm

from shared.errors import UserError
from shared.io import atomic_open, atomic_path, write_json

from retrieval.data.precomp import PrecompDir, load_split, load_split_captions
from retrieval.parsing.base import Parse, ParserBackend
from retrieval.parsing.referral_tree import (
    DEFAULT_FRAGMENTS,
    DEFAULT_RELATIONS,
    ReferralTree,
    TreeDictionaries,
    build_referral_tree,
)
from retrieval.parsing.region_graph import region_adjacency, scene_graph_adjacency
from retrieval.parsing.scene_graph import SceneGraph, build_scene_graph

FORMAT_VERSION = 1
DICTIONARY_SPLIT = "train"
REGION_CHUNK = 4096
MAX_LISTED_FAILURES = 100
EXAMPLES = 5
T = TypeVar("T")


def _sha1(path: Path) -> str:
    digest = hashlib.sha1()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read_jsonl(path: Path, convert: Callable[[dict], T]) -> Iterator[T]:
    """Records of a JSONL cache file, converted; a damaged line is a one-line `UserError`."""
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            try:
                yield convert(json.loads(line))
            except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
                raise UserError(f"{path}: line {number} is damaged ({err}); delete the file to rebuild") from None


@dataclass
class ParseCache:
    """Paths of, and readers for, the caches of one precomp dataset and one parser backend."""

    precomp: PrecompDir
    backend: str = "spacy"
    root: Path | None = None

    def __post_init__(self) -> None:
        self.root = Path(self.root) if self.root is not None else self.precomp.path / "parse_cache"
        self.text_dir = self.root / self.backend

    def path(self, split: str, kind: str) -> Path:
        """``{split}_{kind}`` in the backend folder (``kind`` e.g. ``parses.jsonl``, ``trees.jsonl``)."""
        return self.text_dir / f"{split}_{kind}"

    def region_graph_path(self, split: str) -> Path:
        return self.root / f"{split}_region_graphs.npy"

    @property
    def dictionaries_path(self) -> Path:
        return self.text_dir / "tree_dictionaries.json"

    def require(self, path: Path) -> Path:
        """`path` itself, or a `UserError` telling the user to run `retrieval parse` first."""
        if not path.is_file():
            raise UserError(f"{path}: cache missing (run `retrieval parse --data {self.precomp.path}`)")
        return path

    def load_parses(self, split: str) -> list[Parse]:
        """The cached parse of every caption of `split`."""
        return list(_read_jsonl(self.require(self.path(split, "parses.jsonl")), Parse.from_json))

    def load_scene_graphs(self, split: str) -> list[SceneGraph]:
        """The cached text scene graph of every caption of `split`."""
        return list(_read_jsonl(self.require(self.path(split, "text_graphs.jsonl")), SceneGraph.from_json))

    def load_trees(self, split: str) -> list[ReferralTree]:
        """The cached referral tree of every caption of `split`."""
        return list(_read_jsonl(self.require(self.path(split, "trees.jsonl")), ReferralTree.from_json))

    def load_tree_labels(self, split: str) -> np.ndarray:
        """(n_captions, 7) int64 referral-tree labels of `split` (0 = null)."""
        return np.load(self.require(self.path(split, "tree_labels.npy")))

    def load_dictionaries(self) -> TreeDictionaries:
        return TreeDictionaries.load(self.dictionaries_path)

    def load_region_graphs(self, split: str) -> np.ndarray:
        """(N, R, R) bool region adjacency of `split`, memory-mapped."""
        return np.load(self.require(self.region_graph_path(split)), mmap_mode="r")


@dataclass
class SplitReport:
    """What happened to one split: counts, parse failures and captions without structure."""

    n_captions: int = 0
    parsed_now: int = 0
    failures: list[dict] = field(default_factory=list)
    no_entities: int = 0
    no_relations: int = 0
    examples_no_relations: list[str] = field(default_factory=list)
    region_graphs: bool = False

    def to_json(self) -> dict:
        return {
            "n_captions": self.n_captions,
            "parsed_now": self.parsed_now,
            "parse_failures": len(self.failures),
            "failures": self.failures[:MAX_LISTED_FAILURES],
            "captions_without_entities": self.no_entities,
            "captions_without_relations": self.no_relations,
            "examples_without_relations": self.examples_no_relations,
            "region_graphs": self.region_graphs,
        }


def _resume_lines(partial: Path) -> int:
    """Count complete JSON lines of an interrupted parse file and cut off a torn last line."""
    good_bytes, count = 0, 0
    with partial.open("rb") as handle:
        for line in handle:
            if not line.endswith(b"\n"):
                break
            try:
                json.loads(line)
            except json.JSONDecodeError:
                break
            good_bytes += len(line)
            count += 1
    with partial.open("r+b") as handle:
        handle.truncate(good_bytes)
    return count


def parse_split(
    cache: ParseCache,
    split: str,
    captions: Sequence[str],
    backend_factory: Callable[[], ParserBackend],
    *,
    batch_size: int = 256,
    progress: bool = True,
) -> int:
    """Make ``{split}_parses.jsonl`` cover every caption; resume an interrupted run. Returns #parsed now."""
    final = cache.path(split, "parses.jsonl")
    meta_path = cache.path(split, "parses.meta.json")
    partial = final.with_name(final.name + ".partial")
    caps_file = cache.precomp.file(split, "caps.txt")
    fingerprint = {
        "format": FORMAT_VERSION,
        "backend": cache.backend,
        "captions_sha1": _sha1(caps_file),
        "n_captions": len(captions),
    }
    old = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.is_file() else None
    same = old is not None and {k: old.get(k) for k in fingerprint} == fingerprint
    if same and final.is_file():
        return 0
    backend = backend_factory()
    fingerprint["backend_version"] = backend.version
    same = same and old.get("backend_version") == backend.version
    done = _resume_lines(partial) if (same and partial.is_file()) else 0
    cache.text_dir.mkdir(parents=True, exist_ok=True)
    if done == 0:
        partial.write_bytes(b"")
        write_json(meta_path, fingerprint)
    with partial.open("a", encoding="utf-8") as handle, tqdm(
        total=len(captions), initial=done, desc=f"parse {split}", unit="cap", disable=not progress
    ) as bar:
        for start in range(done, len(captions), batch_size):
            batch = captions[start : start + batch_size]
            parses = backend.parse(batch)
            if len(parses) != len(batch):
                raise RuntimeError(f"parser {backend.version} returned {len(parses)} parses for {len(batch)} captions")
            for parse in parses:
                handle.write(json.dumps(parse.to_json(), ensure_ascii=False) + "\n")
            handle.flush()
            bar.update(len(batch))
    os.replace(partial, final)
    return len(captions) - done


def _derive_split(cache: ParseCache, split: str, captions: Sequence[str], report: SplitReport) -> list[ReferralTree]:
    """Stream the parses of `split` into scene-graph and tree files; return the trees (for the labels)."""
    parses_path = cache.require(cache.path(split, "parses.jsonl"))
    trees: list[ReferralTree] = []
    with atomic_open(cache.path(split, "text_graphs.jsonl"), "w", encoding="utf-8") as graph_out, atomic_open(
        cache.path(split, "trees.jsonl"), "w", encoding="utf-8"
    ) as tree_out:
        for j, parse in enumerate(_read_jsonl(parses_path, Parse.from_json)):
            if j >= len(captions):
                break
            graph = build_scene_graph(parse)
            tree = build_referral_tree(graph, parse)
            graph_out.write(json.dumps(graph.to_json(), ensure_ascii=False) + "\n")
            tree_out.write(json.dumps(tree.to_json(), ensure_ascii=False) + "\n")
            trees.append(tree)
            if parse.error is not None:
                report.failures.append({"caption": j, "text": captions[j], "error": parse.error})
            report.no_entities += not graph.entities
            if not graph.relations:
                report.no_relations += 1
                if len(report.examples_no_relations) < EXAMPLES:
                    report.examples_no_relations.append(captions[j])
        lines = sum(1 for _ in parses_path.open("rb"))
        if lines != len(captions):
            raise UserError(f"{parses_path}: {lines} parses for {len(captions)} captions (delete it to re-parse)")
    return trees


def build_region_graphs(cache: ParseCache, split: str) -> bool:
    """Write ``{split}_region_graphs.npy`` from ``{split}_boxes.npy`` (+ scene graphs); False without boxes.

    The file uses the paper's μ = 0.4 (`IOU_THRESHOLD`); training and evaluation do not read it — their
    loaders build each image's graph with the model's ``model.iou_threshold`` (`retrieval.data.pairs`)."""
    data = load_split(cache.precomp, split, feature_dim=None, num_regions=None, dev_max_images=None)
    if data.boxes is None:
        return False
    n, regions = data.boxes.shape[:2]
    target = cache.region_graph_path(split)
    with atomic_path(target) as tmp:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=bool, shape=(n, regions, regions))
        for start in range(0, n, REGION_CHUNK):
            stop = min(n, start + REGION_CHUNK)
            semantic = None
            if data.scene_graphs is not None:
                semantic = scene_graph_adjacency(data.scene_graphs[start:stop], regions)
            out[start:stop] = region_adjacency(np.asarray(data.boxes[start:stop]), semantic=semantic)
        out.flush()
        del out
    return True


def _rules_fingerprint() -> str:
    """sha1 of the modules that turn parses into graphs and trees: editing the rules rebuilds the caches."""
    from retrieval.parsing import referral_tree, region_graph, scene_graph

    digest = hashlib.sha1()
    for module in (scene_graph, referral_tree, region_graph):
        digest.update(Path(module.__file__).read_bytes())
    return digest.hexdigest()


def _input_stamp(path: Path) -> list[int] | None:
    return [path.stat().st_size, path.stat().st_mtime_ns] if path.is_file() else None


def build_caches(
    cache: ParseCache,
    splits: Sequence[str],
    backend_factory: Callable[[], ParserBackend],
    *,
    n_fragments: int = DEFAULT_FRAGMENTS,
    n_relations: int = DEFAULT_RELATIONS,
    batch_size: int = 256,
    progress: bool = True,
) -> dict:
    """Parse every caption of `splits` (resumable), then derive scene graphs, trees, labels, region graphs.

    The tree dictionaries are fitted on the ``train`` split only (decision 'referral trees'), which is therefore always
    processed when it exists.  Derived files are rebuilt only when their inputs (parses, dictionary
    sizes, box and scene-graph files, the extraction rules' source) changed.  Returns the report that
    is also written to ``report.json``.
    """
    available = cache.precomp.splits()
    missing = [s for s in splits if s not in available]
    if missing:
        raise UserError(f"{cache.precomp.path}: no split {missing[0]!r} (found: {', '.join(available) or 'none'})")
    if DICTIONARY_SPLIT not in available:
        raise UserError(f"{cache.precomp.path}: no train split to fit the referral-tree dictionaries on")
    ordered = list(dict.fromkeys([DICTIONARY_SPLIT, *splits]))
    backend: list[ParserBackend] = []

    def shared_backend() -> ParserBackend:
        if not backend:
            backend.append(backend_factory())
        return backend[0]

    reports = {split: SplitReport() for split in ordered}
    captions = {split: load_split_captions(cache.precomp, split) for split in ordered}
    for split in ordered:
        reports[split].n_captions = len(captions[split])
        reports[split].parsed_now = parse_split(
            cache, split, captions[split], shared_backend, batch_size=batch_size, progress=progress
        )
    manifest = {
        "format": FORMAT_VERSION,
        "rules": _rules_fingerprint(),
        "n_fragments": n_fragments,
        "n_relations": n_relations,
        "parses": {s: json.loads(cache.path(s, "parses.meta.json").read_text(encoding="utf-8")) for s in ordered},
        "visual_inputs": {
            s: [_input_stamp(cache.precomp.file(s, n)) for n in ("boxes.npy", "scene_graphs.jsonl")] for s in ordered
        },
    }
    manifest_path = cache.text_dir / "manifest.json"
    report_path = cache.text_dir / "report.json"
    if manifest_path.is_file() and report_path.is_file():
        stored = json.loads(report_path.read_text(encoding="utf-8"))
        if json.loads(manifest_path.read_text(encoding="utf-8")) == manifest:
            for info in stored["splits"].values():
                info["parsed_now"] = 0
            return {**stored, "up_to_date": True}
    trees = {
        split: _derive_split(cache, split, captions[split], reports[split])
        for split in tqdm(ordered, desc="scene graphs + trees", disable=not progress)
    }
    dictionaries = TreeDictionaries.fit(trees[DICTIONARY_SPLIT], n_fragments, n_relations)
    dictionaries.save(cache.dictionaries_path)
    for split in ordered:
        with atomic_open(cache.path(split, "tree_labels.npy"), "wb") as handle:
            np.save(handle, dictionaries.encode_all(trees[split]))
        reports[split].region_graphs = build_region_graphs(cache, split)
    report = {
        "cache": str(cache.text_dir),
        "fragment_classes": len(dictionaries.fragments),
        "relation_classes": len(dictionaries.relations),
        "splits": {split: r.to_json() for split, r in reports.items()},
    }
    write_json(report_path, report)
    write_json(manifest_path, manifest)
    return {**report, "up_to_date": False}
