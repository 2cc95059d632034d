"""Action-unit sets of the datasets this package knows (BP4D's 12 and DISFA's 8 AUs, thesis Tabs 3.2
and 3.3; SynFACS's 15), their JAA-Net region centres ("the same rules in Shao et al. (2021)", thesis
§3.2.2; JAA-Net's public ``network.py``) and the attention maps drawn around them.

Centres and maps are batched array code: NumPy or torch in, the same type out (maps are torch).
torch is imported inside the functions that need it, so importing this module stays cheap.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from fau.face.points import to49
from shared.errors import UserError

BP4D_AUS: tuple[int, ...] = (1, 2, 4, 6, 7, 10, 12, 14, 15, 17, 23, 24)
DISFA_AUS: tuple[int, ...] = (1, 2, 4, 6, 9, 12, 25, 26)
SYNFACS_AUS: tuple[int, ...] = (1, 2, 4, 6, 7, 9, 10, 12, 14, 15, 17, 23, 24, 25, 26)
DATASET_AUS: dict[str, tuple[int, ...]] = {"bp4d": BP4D_AUS, "disfa": DISFA_AUS, "synfacs": SYNFACS_AUS}


def au_names(aus: tuple[int, ...]) -> list[str]:
    """Column names used everywhere (tables, JSON, reports): ``AU1``, ``AU2``, ..."""
    return [f"AU{au}" for au in aus]


@dataclass(frozen=True)
class CentreRule:
    """Two region centres from 49-point landmarks: points `a` and `b`, both moved down by dy x ruler.

    ruler = |x[22] - x[25]|, the horizontal inner-eye-corner distance; image y grows downward, so a
    negative `dy` moves the centres up. The (a, b) order is JAA-Net's: a mirror pair (image-left
    first, except AU17/AU26 whose `a` is the image-right lower-lip point) or, for AU23/24/25, two
    midline points (upper and lower lip middle).
    """

    a: int
    b: int
    dy: float


#: 49-point indices whose horizontal distance is the JAA-Net ruler (inner eye corners).
RULER_POINTS: tuple[int, int] = (22, 25)

#: JAA-Net's rule (``network.py: AlignNet``) for every AU of BP4D and DISFA. BP4D and DISFA agree
#: wherever both define an AU, so one table serves both, and SynFACS (their union) needs no extra
#: rule: AU9 uses DISFA's nostril rule, AU25 the lip mid-points 34/40 (same map as AU23/24),
#: AU26 the lower-lip points 39/41 + ruler/2 (same map as AU17). AU12/14/15 share one map.
AU_CENTRE_RULES: dict[int, CentreRule] = {
    1: CentreRule(4, 5, -1 / 2),
    2: CentreRule(1, 8, -1 / 3),
    4: CentreRule(2, 7, 1 / 3),
    6: CentreRule(24, 29, 1.0),
    7: CentreRule(21, 26, 0.0),
    9: CentreRule(15, 17, -1 / 2),
    10: CentreRule(43, 45, 0.0),
    12: CentreRule(31, 37, 0.0),
    14: CentreRule(31, 37, 0.0),
    15: CentreRule(31, 37, 0.0),
    17: CentreRule(39, 41, 1 / 2),
    23: CentreRule(34, 40, 0.0),
    24: CentreRule(34, 40, 0.0),
    25: CentreRule(34, 40, 0.0),
    26: CentreRule(39, 41, 1 / 2),
}



def resolve_aus(dataset: str | Sequence[int]) -> tuple[int, ...]:
    """The AU list of a dataset name (bp4d, disfa, synfacs) or an explicit AU sequence, checked."""
    if isinstance(dataset, str):
        if dataset.lower() not in DATASET_AUS:
            raise UserError(f"dataset {dataset!r} has no AU list; choose one of {sorted(DATASET_AUS)}")
        return DATASET_AUS[dataset.lower()]
    aus = tuple(int(au) for au in dataset)
    missing = [au for au in aus if au not in AU_CENTRE_RULES]
    if missing:
        raise UserError(f"AUs {missing} have no centre rule; known AUs: {sorted(AU_CENTRE_RULES)}")
    return aus


def centre_groups(dataset: str | Sequence[int]) -> list[tuple[int, ...]]:
    """Positions (in the dataset's AU order) of AUs that share one centre rule, e.g. BP4D's 12/14/15.

    Groups come in order of first appearance; singletons are included, so the groups partition
    ``range(len(aus))``. Models that build one map per distinct region can use it to deduplicate.
    """
    groups: dict[CentreRule, list[int]] = {}
    for position, au in enumerate(resolve_aus(dataset)):
        groups.setdefault(AU_CENTRE_RULES[au], []).append(position)
    return [tuple(group) for group in groups.values()]


def _constant(like: Any, values: Any) -> Any:
    """`values` as an array of the same kind, dtype (and torch device) as `like`."""
    if isinstance(like, np.ndarray):
        return np.asarray(values, dtype=like.dtype)
    import torch

    return torch.as_tensor(values, dtype=like.dtype, device=like.device)


def _as_float(landmarks: Any) -> Any:
    if isinstance(landmarks, np.ndarray) or not hasattr(landmarks, "is_floating_point"):
        array = np.asarray(landmarks)
        return array if np.issubdtype(array.dtype, np.floating) else array.astype(np.float32)
    return landmarks if landmarks.is_floating_point() else landmarks.float()


def centres_from_rules(landmarks: Any, rules: Sequence[CentreRule]) -> Any:
    """Two centres per rule from (..., 49|66|68, 2) landmarks -> (..., R, 2, 2) as (centre, xy).

    NumPy in -> NumPy out; torch in -> torch out on the same device, differentiable with respect
    to the landmarks ("the same rules in Shao et al. (2021)", thesis §3.2.2).
    """
    points = to49(_as_float(landmarks))
    pairs = np.array([[rule.a, rule.b] for rule in rules], dtype=np.int64).reshape(-1, 2)
    shifts = _constant(points, [rule.dy for rule in rules])
    ruler = abs(points[..., RULER_POINTS[0], 0] - points[..., RULER_POINTS[1], 0])
    shift_y = (ruler[..., None] * shifts)[..., None, None] * _constant(points, [0.0, 1.0])
    return points[..., pairs, :] + shift_y


def au_centres(landmarks49: Any, dataset: str | Sequence[int]) -> Any:
    """JAA-Net AU centres (``network.py: AlignNet``): (..., 49, 2) landmarks -> (..., A, 2, 2).

    One entry per AU in the dataset's AU order (shared regions are repeated, see `centre_groups`);
    `dataset` is bp4d, disfa, synfacs or a sequence of AU numbers. 66/68-point input is converted.
    """
    return centres_from_rules(landmarks49, [AU_CENTRE_RULES[au] for au in resolve_aus(dataset)])


def attention_maps(
    centres: Any,
    map_size: int = 52,
    crop: int = 176,
    spatial_ratio: float = 0.14,
    fill_coeff: float = 0.56,
) -> Any:
    """JAA-Net AU attention maps (``network.py: generate_map``), batched.

    `centres` (..., A, 2, 2) in `crop` pixels -> float32 tensor (..., A, map_size, map_size) on the
    input's device. Each centre is scaled by map_size/crop and rounded to a cell; within the
    window |dh|, |dw| <= round((map_size-1)/2 x spatial_ratio) (4 -> 9x9 by default) the value is
    1 - (|dh| + |dw|) x fill_coeff / (map_size x spatial_ratio), clipped at 0; the two centres are
    merged with a max. Not differentiable (JAA-Net draws them from detached landmarks).
    """
    import torch

    points = torch.as_tensor(centres).detach().float()
    cells = torch.round(points * (map_size / crop))
    half = round((map_size - 1) / 2.0 * spatial_ratio)
    grid = torch.arange(map_size, dtype=points.dtype, device=points.device)
    # per centre, per axis: |cell - centre| inside the window, +inf outside -> value clipped to 0
    offsets = (grid - cells[..., None]).abs()
    offsets = torch.where(offsets <= half, offsets, torch.inf)
    distance = offsets[..., 1, :, None] + offsets[..., 0, None, :]
    nearest = distance.amin(dim=-3)  # max over the two centres of a decreasing fall-off
    return (1.0 - nearest * (fill_coeff / (map_size * spatial_ratio))).clamp_min(0.0)


def gaussian_attention(centres: Any, sigma: Any, size: int = 44, crop: int = 176) -> Any:
    """Differentiable AU region maps for adaptive region learning ("an approximate Gaussian attention
    distribution for each AU region", thesis §3.2.2; docs/fau.md, decision 'differentiable region maps').

    A(x, y) = max over the two centres of exp(-((x - cx)^2 + (y - cy)^2) / (2 sigma^2)) on a
    `size` x `size` grid, centres (..., A, 2, 2) given in `crop` pixels and scaled by size/crop
    (the JAA-Net map convention). `sigma` is in grid cells, broadcastable to (..., A) — ALGRNet's
    sigma_i = e_i x size / 2 with e_i the learned width ratio (JAA-Net's fixed 0.14). Gradients flow
    to the centres and to sigma. Returns (..., A, size, size) on the centres' device.
    """
    import torch

    points = torch.as_tensor(centres)
    if not points.is_floating_point():
        points = points.float()
    positions = points * (size / crop)
    sigma = torch.as_tensor(sigma, dtype=positions.dtype, device=positions.device)
    grid = torch.arange(size, dtype=positions.dtype, device=positions.device)
    dx2 = (grid - positions[..., 0:1]) ** 2
    dy2 = (grid - positions[..., 1:2]) ** 2
    distance2 = dy2[..., :, None] + dx2[..., None, :]
    maps = torch.exp(-distance2 / (2.0 * sigma[..., None, None, None] ** 2))
    return maps.amax(dim=-3)


def dataset_for_aus(aus: Sequence[int]) -> str:
    """The named AU set (bp4d, disfa, synfacs) equal to `aus`, whose centre rules a model uses."""
    for name, members in DATASET_AUS.items():
        if tuple(int(a) for a in aus) == members:
            return name
    raise UserError(f"AU set {list(aus)} is none of the known sets ({', '.join(DATASET_AUS)}); "
                    "prepare the data with one of them (fau prepare --aus)")
