"""Generate SynScenes: scenes, renders, features, captions and the hard subset, deterministic
from one seed ("SynScenes"; layout in writer.py)."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from retrieval.synth.captions import Caption, scene_captions, tokens
from retrieval.synth.features import (
    FEATURE_DIM, GRID, N_CLASSES, N_REGIONS, SEG_SIZE, Projections, category_onehot, class_map, grid_codes,
    project, region_layout, segmentation_logits,
)
from retrieval.synth.hard import VARIANTS, sample_hard_group
from retrieval.synth.render import render, write_png
from retrieval.synth.scene import HEIGHT, WIDTH, Scene, sample_scene
from retrieval.synth.writer import (
    image_filename, karpathy_entry, npy_memmap, precomp_dir, write_jsonl, write_lines,
)
from shared.io import write_json, write_npy

SPLITS = ("train", "dev", "test")
CAPTIONS_PER_IMAGE = 5
CHUNK = 128


@dataclasses.dataclass(frozen=True)
class ImageRecord:
    """One generated image: its scene, five captions and (test split) its hard-group membership."""

    scene: Scene
    captions: tuple[Caption, ...]
    group: int | None = None
    variant: str | None = None


def sample_split(n: int, rng: np.random.Generator, hard_fraction: float = 0.0) -> tuple[list[ImageRecord], list[dict]]:
    """`n` records in shuffled order; `hard_fraction` of them come from four-scene hard groups.

    Returns the records and the groups as {"images": [split indices in VARIANTS order], "pair": [a, b]}.
    """
    n_groups = min(n // len(VARIANTS), int(round(n * hard_fraction / len(VARIANTS))))
    pending: list[ImageRecord] = []
    pairs = []
    for g in range(n_groups):
        group = sample_hard_group(rng, CAPTIONS_PER_IMAGE)
        pairs.append(list(group.pair))
        pending += [ImageRecord(s, c, g, v) for s, c, v in zip(group.scenes, group.captions, VARIANTS)]
    while len(pending) < n:
        scene = sample_scene(rng)
        pending.append(ImageRecord(scene, tuple(scene_captions(scene, rng, CAPTIONS_PER_IMAGE))))
    order = rng.permutation(n)
    records = [pending[i] for i in order]
    members: dict[int, dict[str, int]] = {}
    for index, record in enumerate(records):
        if record.group is not None:
            members.setdefault(record.group, {})[record.variant] = index
    groups = [{"images": [members[g][v] for v in VARIANTS], "pair": pairs[g]} for g in range(n_groups)]
    return records, groups


def write_split(out: Path, split: str, records: list[ImageRecord], first_id: int, rng: np.random.Generator, proj: Projections, progress: bool) -> list[dict]:
    """Render and featurise one split into the precomp layout; returns its Karpathy entries."""
    n = len(records)
    pdir = precomp_dir(out)
    boxes = np.zeros((n, N_REGIONS, 4), np.float32)
    seg_maps = np.zeros((n, SEG_SIZE, SEG_SIZE), np.uint8)
    onehots = np.zeros((n, N_CLASSES), np.float32)
    graphs = []
    with contextlib.ExitStack() as stack:
        ims = stack.enter_context(npy_memmap(pdir / f"{split}_ims.npy", (n, N_REGIONS, FEATURE_DIM), np.float32))
        grid = stack.enter_context(npy_memmap(pdir / f"{split}_grid.npy", (n, GRID * GRID, FEATURE_DIM), np.float32))
        segs = stack.enter_context(npy_memmap(pdir / f"{split}_segmentations.npy", (n, N_CLASSES, GRID, GRID), np.float32))
        bar = tqdm(total=n, desc=f"synscenes {split}", disable=not progress, leave=False)
        for start in range(0, n, CHUNK):
            stop = min(n, start + CHUNK)
            region_z, grid_z = [], []
            for i in range(start, stop):
                image, labels = render(records[i].scene)
                write_png(out / "images" / image_filename(first_id + i), image)
                layout = region_layout(records[i].scene, rng)
                boxes[i] = layout.boxes
                graphs.append({"edges": layout.edges})
                region_z.append(layout.codes)
                grid_z.append(grid_codes(records[i].scene, labels, rng))
                seg_maps[i] = class_map(records[i].scene, labels)
                segs[i] = segmentation_logits(seg_maps[i], rng)
                onehots[i] = category_onehot(seg_maps[i])
                bar.update()
            ims[start:stop] = project(np.stack(region_z), proj.region)
            grid[start:stop] = project(np.stack(grid_z), proj.grid)
        bar.close()
    write_npy(pdir / f"{split}_boxes.npy", boxes)
    write_npy(pdir / f"{split}_image_sizes.npy", np.tile(np.array([WIDTH, HEIGHT], np.int64), (n, 1)))
    write_npy(pdir / f"{split}_seg_maps.npy", seg_maps)
    write_npy(pdir / f"{split}_cat_onehots.npy", onehots)
    write_jsonl(pdir / f"{split}_scene_graphs.jsonl", graphs)
    texts = [[c.text() for c in r.captions] for r in records]
    write_lines(pdir / f"{split}_caps.txt", (t for caps in texts for t in caps))
    write_lines(pdir / f"{split}_ids.txt", (str(first_id + i) for i in range(n)))
    return [karpathy_entry(first_id + i, split, caps, [tokens(t) for t in caps]) for i, caps in enumerate(texts)]


def generate(
    out: str | os.PathLike,
    n_train: int = 3000,
    n_dev: int = 200,
    n_test: int = 1000,
    seed: int = 0,
    hard_fraction: float = 0.4,
    progress: bool = True,
) -> dict:
    """Write a SynScenes dataset under `out` (layout: writer.py) and return a summary dict.

    Deterministic from `seed`; the test split holds `hard_fraction` of its images in hard groups
    (hard.py).  Sizes follow the F30K proportions at a scale that trains in minutes.  BLAS runs on
    one thread: the projections are memory-bound, and spinning BLAS threads on a busy 2-core
    machine made them 10x slower.
    """
    with threadpool_limits(limits=1, user_api="blas"):
        return _generate(Path(out), n_train, n_dev, n_test, seed, hard_fraction, progress)


def _generate(out: Path, n_train: int, n_dev: int, n_test: int, seed: int, hard_fraction: float, progress: bool) -> dict:
    start_time = time.perf_counter()
    (out / "images").mkdir(parents=True, exist_ok=True)
    precomp_dir(out).mkdir(parents=True, exist_ok=True)
    proj = Projections.fixed()
    sizes = {"train": n_train, "dev": n_dev, "test": n_test}
    seeds = np.random.SeedSequence(seed).spawn(len(SPLITS))
    karpathy, scenes_json, first_id = [], [], 0
    for split, split_seed in zip(SPLITS, seeds):
        scene_rng, feature_rng = (np.random.default_rng(s) for s in split_seed.spawn(2))
        records, groups = sample_split(sizes[split], scene_rng, hard_fraction if split == "test" else 0.0)
        karpathy += write_split(out, split, records, first_id, feature_rng, proj, progress)
        if split == "test":
            write_json(precomp_dir(out) / f"{split}_hard.json", {"variants": list(VARIANTS), "groups": groups})
        for i, record in enumerate(records):
            scenes_json.append({
                "image_id": first_id + i, "split": split, "index": i, "filename": image_filename(first_id + i),
                **record.scene.to_json(), "captions": [c.text() for c in record.captions],
                "hard_group": record.group, "variant": record.variant,
            })
        first_id += len(records)
    write_json(out / "dataset_synscenes.json", {"dataset": "synscenes", "images": karpathy}, indent=None)
    write_json(out / "scenes.json", {"dataset": "synscenes", "seed": seed, "splits": sizes, "scenes": scenes_json}, indent=None)
    return {"out": str(out), "splits": sizes, "seed": seed, "seconds": round(time.perf_counter() - start_time, 2)}
