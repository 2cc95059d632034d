"""SynScenes visual inputs in the shapes the retrieval models expect (docs/retrieval.md):
36 region features (2,048-d) with boxes, a 7×7 grid of 2,048-d features, 3SHNet segmentation
arrays (133×7×7 logits, a 64×64 class map, 133 category one-hots) and scene-graph edges.

Every 2,048-d vector is `relu(z @ P)` for a FIXED random projection P (seeded by
`PROJECTION_SEED`, independent of the data seed, so all splits and all generated datasets share
it) of a 46-d code z = [region type (6) | shape (4) | colour (8) | size (2) | material (2) |
box geometry (8) | noise (16)].  Regions are made so no single one says everything: a whole-object
region carries shape and size strongly but colour and material weakly, its top part carries colour
and material, its base part a mix; pair regions blend two objects; floor, wall and distractor
boxes carry background codes or overlap-weighted blends.  Region order is shuffled per image.

Segmentation classes (133 ids, the COCO-panoptic count used by 3SHNet): object classes are
`shape_index * 8 + colour_index` (ids 0–31, thing range), floor = 80 and wall = 81 (stuff range);
all other ids never occur.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from retrieval.synth.scene import COLOUR_NAMES, HEIGHT, HORIZON, MATERIALS, SHAPES, SIZES, WIDTH, Scene, SceneObject, relation_holds

N_REGIONS, FEATURE_DIM, GRID, N_CLASSES, SEG_SIZE = 36, 2048, 7, 133, 64
PROJECTION_SEED = 20240601
FLOOR_CLASS, WALL_CLASS = 80, 81
TYPES = ("object", "part_top", "part_base", "pair", "floor", "background")
Z_TYPE, Z_ATTR, Z_GEOM, Z_NOISE = 6, 16, 8, 16
Z_DIM = Z_TYPE + Z_ATTR + Z_GEOM + Z_NOISE
EDGE_NAMES = {"left": "left of", "right": "right of", "front": "in front of", "behind": "behind", "pushing": "pushing", "hiding": "hiding behind"}


def object_class(obj: SceneObject) -> int:
    """Segmentation class id of an object: shape_index * 8 + colour_index (0–31)."""
    return SHAPES.index(obj.shape) * len(COLOUR_NAMES) + COLOUR_NAMES.index(obj.colour)


def attributes(obj: SceneObject, shape=1.0, colour=1.0, size=1.0, material=1.0) -> np.ndarray:
    """Weighted one-hot attribute code (16,) of an object."""
    code = np.zeros(Z_ATTR, np.float32)
    code[SHAPES.index(obj.shape)] = shape
    code[4 + COLOUR_NAMES.index(obj.colour)] = colour
    code[12 + SIZES.index(obj.size)] = size
    code[14 + MATERIALS.index(obj.material)] = material
    return code


def geometry(boxes: np.ndarray) -> np.ndarray:
    """Normalised box codes (R, 8): x0, y0, x1, y1, w, h, cx, cy for pixel boxes (R, 4)."""
    b = np.asarray(boxes, np.float32).reshape(-1, 4) / np.array([WIDTH, HEIGHT, WIDTH, HEIGHT], np.float32)
    return np.concatenate([b, b[:, 2:] - b[:, :2], (b[:, :2] + b[:, 2:]) / 2], axis=1)


def _grid_boxes() -> np.ndarray:
    r, q = np.divmod(np.arange(GRID * GRID), GRID)
    return np.stack([q * WIDTH / GRID, r * HEIGHT / GRID, (q + 1) * WIDTH / GRID, (r + 1) * HEIGHT / GRID], axis=1)


GRID_GEOMETRY = geometry(_grid_boxes())


@dataclasses.dataclass(frozen=True)
class Projections:
    """The fixed random projections for regions and grid cells (Z_DIM → FEATURE_DIM)."""

    region: np.ndarray
    grid: np.ndarray

    @classmethod
    def fixed(cls, seed: int = PROJECTION_SEED) -> "Projections":
        """The dataset-independent projections (Gaussian, scale 2/sqrt(Z_DIM))."""
        rng = np.random.default_rng(seed)
        scale = 2.0 / np.sqrt(Z_DIM)
        region = (rng.standard_normal((Z_DIM, FEATURE_DIM)) * scale).astype(np.float32)
        grid = (rng.standard_normal((Z_DIM, FEATURE_DIM)) * scale).astype(np.float32)
        return cls(region, grid)


def _overlap(box, obj_box) -> float:
    """Fraction of `obj_box` covered by `box`."""
    w = min(box[2], obj_box[2]) - max(box[0], obj_box[0])
    h = min(box[3], obj_box[3]) - max(box[1], obj_box[1])
    area = (obj_box[2] - obj_box[0]) * (obj_box[3] - obj_box[1])
    return max(0.0, w) * max(0.0, h) / area if w > 0 and h > 0 else 0.0


def _random_box(rng: np.random.Generator, y_lo: float, y_hi: float) -> tuple[float, float, float, float]:
    w = rng.uniform(0.12, 0.45) * WIDTH
    h = min(rng.uniform(0.12, 0.45) * HEIGHT, y_hi - y_lo)
    x0 = rng.uniform(0, WIDTH - w)
    y0 = rng.uniform(y_lo, y_hi - h)
    return (x0, y0, x0 + w, y0 + h)


@dataclasses.dataclass
class RegionLayout:
    """Per-image region codes before projection: boxes (36, 4), codes z (36, Z_DIM), scene-graph edges."""

    boxes: np.ndarray
    codes: np.ndarray
    edges: list


def region_layout(scene: Scene, rng: np.random.Generator) -> RegionLayout:
    """The 36 regions of a scene (objects, parts, pairs, background, distractors), shuffled."""
    regions: list[tuple[tuple, int, np.ndarray]] = []  # (box, type, attribute code)
    objs = scene.objects
    for obj in objs:
        regions.append((obj.box, 0, attributes(obj, 1.0, 0.3, 1.0, 0.2)))
    for obj in objs:
        x0, y0, x1, y1 = obj.box
        regions.append(((x0, y0, x1, y0 + 0.45 * (y1 - y0)), 1, attributes(obj, 0.2, 1.0, 0.0, 1.0)))
        regions.append(((x0, y0 + 0.6 * (y1 - y0), x1, y1), 2, attributes(obj, 0.5, 0.5, 0.5, 0.0)))
    n = len(objs)
    centres = np.array([[o.x, o.y] for o in objs])
    dist = np.linalg.norm(centres[:, None] - centres[None], axis=-1) + np.eye(n) * 1e9
    pairs = sorted({tuple(sorted((i, int(np.argmin(dist[i]))))) for i in range(n)})[:4]
    for i, j in pairs:
        a, b = objs[i].box, objs[j].box
        union = (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))
        regions.append((union, 3, 0.5 * (attributes(objs[i], 1, 0.4, 0.5, 0.2) + attributes(objs[j], 1, 0.4, 0.5, 0.2))))
    while len(regions) < N_REGIONS:
        kind = int(rng.integers(3))
        if kind == 0:
            regions.append((_random_box(rng, HORIZON, HEIGHT), 4, np.zeros(Z_ATTR, np.float32)))
        elif kind == 1:
            regions.append((_random_box(rng, 0, HORIZON), 5, np.zeros(Z_ATTR, np.float32)))
        else:
            box = _random_box(rng, 0, HEIGHT)
            blend = sum((0.5 * _overlap(box, o.box) * attributes(o) for o in objs), np.zeros(Z_ATTR, np.float32))
            regions.append((box, 5, blend))
    order = rng.permutation(N_REGIONS)
    position = np.empty(N_REGIONS, np.int64)
    position[order] = np.arange(N_REGIONS)  # original region r is stored at position[r]
    boxes = np.zeros((N_REGIONS, 4), np.float32)
    codes = np.zeros((N_REGIONS, Z_DIM), np.float32)
    boxes[position] = np.clip(np.array([r[0] for r in regions], np.float32), 0, [WIDTH, HEIGHT, WIDTH, HEIGHT])
    codes[position, [r[1] for r in regions]] = 1.0
    codes[position, Z_TYPE : Z_TYPE + Z_ATTR] = np.stack([r[2] for r in regions])
    codes[:, Z_TYPE : Z_TYPE + Z_ATTR] += rng.standard_normal((N_REGIONS, Z_ATTR)).astype(np.float32) * 0.05
    codes[:, Z_TYPE + Z_ATTR : Z_TYPE + Z_ATTR + Z_GEOM] = geometry(boxes)
    codes[:, -Z_NOISE:] = rng.standard_normal((N_REGIONS, Z_NOISE)).astype(np.float32) * 0.3
    return RegionLayout(boxes, codes, scene_graph_edges(scene, position, dist))


def scene_graph_edges(scene: Scene, position: np.ndarray, dist: np.ndarray) -> list:
    """[subject_region, relation, object_region] edges: parts → objects, and each object's two
    nearest neighbours under every directional/action relation that holds (region indices are
    the stored, shuffled positions; object k is region k before shuffling, its parts n + 2k, n + 2k + 1)."""
    objs = scene.objects
    n = len(objs)
    edges = []
    for k in range(n):
        edges.append([int(position[n + 2 * k]), "part of", int(position[k])])
        edges.append([int(position[n + 2 * k + 1]), "part of", int(position[k])])
    for i in range(n):
        for j in np.argsort(dist[i])[: min(2, n - 1)]:
            for rel, name in EDGE_NAMES.items():
                if relation_holds(rel, objs[i], objs[int(j)]):
                    edges.append([int(position[i]), name, int(position[int(j)])])
    return edges


def class_map(scene: Scene, labels: np.ndarray) -> np.ndarray:
    """(64, 64) uint8 segmentation class map (nearest-neighbour resize of the label map)."""
    lut = np.array([WALL_CLASS, FLOOR_CLASS] + [object_class(o) for o in scene.objects], np.uint8)
    small = cv2.resize(labels, (SEG_SIZE, SEG_SIZE), interpolation=cv2.INTER_NEAREST)
    return lut[small]


def _cell_fractions(index_map: np.ndarray, n_values: int) -> np.ndarray:
    """(49, n_values) fraction of each 7×7 cell covered by each value of an integer map."""
    h, w = index_map.shape
    cell = ((np.arange(h) * GRID) // h)[:, None] * GRID + ((np.arange(w) * GRID) // w)[None, :]
    counts = np.bincount((cell * n_values + index_map).ravel(), minlength=GRID * GRID * n_values)
    counts = counts.reshape(GRID * GRID, n_values).astype(np.float32)
    return counts / counts.sum(axis=1, keepdims=True)


def grid_codes(scene: Scene, labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(49, Z_DIM) codes of the 7×7 grid cells: coverage-weighted object attributes + cell geometry."""
    fractions = _cell_fractions(labels.astype(np.int64), 2 + len(scene.objects))
    attrs = np.stack([attributes(o) for o in scene.objects])
    codes = np.zeros((GRID * GRID, Z_DIM), np.float32)
    codes[:, 0] = fractions[:, 2:].sum(axis=1)
    codes[:, 4], codes[:, 5] = fractions[:, 1], fractions[:, 0]
    codes[:, Z_TYPE : Z_TYPE + Z_ATTR] = fractions[:, 2:] @ attrs
    codes[:, Z_TYPE + Z_ATTR : Z_TYPE + Z_ATTR + Z_GEOM] = GRID_GEOMETRY
    codes[:, -Z_NOISE:] = rng.standard_normal((GRID * GRID, Z_NOISE)) * 0.3
    return codes


def segmentation_logits(seg_map: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(133, 7, 7) float32 pooled logits: log(class coverage of the cell + 0.02) + N(0, 0.1)."""
    fractions = _cell_fractions(seg_map.astype(np.int64), N_CLASSES)  # (49, 133)
    logits = np.log(fractions + 0.02) + rng.standard_normal(fractions.shape) * 0.1
    return logits.T.reshape(N_CLASSES, GRID, GRID).astype(np.float32)


def category_onehot(seg_map: np.ndarray) -> np.ndarray:
    """(133,) float32 multi-hot of the classes present in the class map."""
    out = np.zeros(N_CLASSES, np.float32)
    out[np.unique(seg_map)] = 1.0
    return out


def project(codes: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """relu(codes @ matrix) in float32 — the fixed random projection to 2,048-d features."""
    return np.maximum(codes @ matrix, 0.0, dtype=np.float32)
