"""Subject-exclusive 3-fold protocol: published subject parts, folds named by their test part.

The shipped files ``fau/data/folds/{bp4d,disfa}.yaml`` hold the partitions every public AU
project uses (JAA-Net ``data/list/*_part{1,2,3}_path.txt``, identical in ME-GraphAU, FG-Net,
LibreFace, AU-Net; the thesis follows "the common 3-fold subject-exclusive cross-validation
protocol", §5.4.1, without listing subjects: docs/fau.md, decision 'fold partitions') plus, per fold,
a deterministic validation subset of that fold's training subjects for model selection (the thesis
describes none; never select on the test fold: decision 'protocol'; the paper protocol trains on them).

Fold-file format (also accepted as ``ROOT/folds.yaml`` in a raw tree, which overrides the shipped
list, e.g. for SynFACS or FPara)::

    dataset: bp4d
    parts:                      # exactly part1, part2, part3; subject lists, disjoint
      part1: [F001, M007, ...]
      part2: [...]
      part3: [...]
    validation:                 # optional; per fold (= test part) a subset of its training
      part1: [...]              # subjects; computed by `choose_validation` when absent
      part2: [...]
      part3: [...]

Fold ``partK`` tests on ``partK`` and trains on the other two parts minus its validation subjects.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from fau.data.yamlfile import read_yaml
from shared.errors import UserError

PARTS: tuple[str, ...] = ("part1", "part2", "part3")
FOLDS_DIR = Path(__file__).resolve().parent / "folds"
VALIDATION_FRACTION = 0.15
VALIDATION_SEED = 0


@dataclass(frozen=True)
class Fold:
    """One cross-validation fold, named by its test part."""

    name: str
    train: tuple[str, ...]
    val: tuple[str, ...]
    test: tuple[str, ...]

    def split_of(self, subject: str) -> str | None:
        """``train``, ``val``, ``test`` or None when the subject is in no part of this fold."""
        for split, members in (("train", self.train), ("val", self.val), ("test", self.test)):
            if subject in members:
                return split
        return None

    def to_dict(self) -> dict:
        """JSON form, as stored in the prepared dataset's ``folds/<name>.json``."""
        return {"name": self.name, "train": list(self.train), "val": list(self.val),
                "test": list(self.test)}


@dataclass(frozen=True)
class FoldSpec:
    """Subject parts of a dataset and each fold's validation subjects."""

    dataset: str
    parts: Mapping[str, tuple[str, ...]]
    validation: Mapping[str, tuple[str, ...]]

    def folds(self) -> list[Fold]:
        """The three folds, ``part1`` .. ``part3``, each named by its test part."""
        out = []
        for name in PARTS:
            val = self.validation[name]
            train = tuple(s for p in PARTS if p != name for s in self.parts[p] if s not in val)
            out.append(Fold(name, train, tuple(val), tuple(self.parts[name])))
        return out

    def subjects(self) -> set[str]:
        """Every subject of the three parts."""
        return {s for members in self.parts.values() for s in members}

    def to_dict(self) -> dict:
        """The fold-file form (module docstring)."""
        return {"dataset": self.dataset,
                "parts": {p: list(self.parts[p]) for p in PARTS},
                "validation": {p: list(self.validation[p]) for p in PARTS}}


def training_subjects(parts: Mapping[str, Sequence[str]], test_part: str) -> list[str]:
    """Subjects of the two parts other than `test_part`, in file order."""
    return [s for p in PARTS if p != test_part for s in parts[p]]


def choose_validation(subjects: Sequence[str], fraction: float = VALIDATION_FRACTION,
                      seed: int = VALIDATION_SEED) -> tuple[str, ...]:
    """Deterministic validation subset: a seeded permutation of the sorted subjects, first
    max(1, round(fraction * n)) of them, returned sorted (docs/fau.md, decision 'protocol')."""
    ordered = sorted(subjects)
    if len(ordered) < 2:
        return ()
    count = min(len(ordered) - 1, max(1, round(fraction * len(ordered))))
    order = np.random.default_rng(seed).permutation(len(ordered))
    return tuple(sorted(ordered[i] for i in order[:count]))


def spec_from_parts(dataset: str, parts: Mapping[str, Sequence[str]],
                    fraction: float = VALIDATION_FRACTION, seed: int = VALIDATION_SEED) -> FoldSpec:
    """A `FoldSpec` whose validation subsets are computed by `choose_validation`."""
    tuples = {p: tuple(parts[p]) for p in PARTS}
    validation = {p: choose_validation(training_subjects(tuples, p), fraction, seed) for p in PARTS}
    return FoldSpec(dataset, tuples, validation)


def split_subjects(subjects: Sequence[str], seed: int = VALIDATION_SEED) -> dict[str, list[str]]:
    """Three subject-exclusive parts for a dataset without published lists (e.g. FPara):
    a seeded permutation of the sorted subjects dealt round-robin into part1..part3."""
    ordered = sorted(set(subjects))
    if len(ordered) < 3:
        raise UserError(f"need at least 3 subjects for 3 subject-exclusive folds, got {len(ordered)}")
    order = np.random.default_rng(seed).permutation(len(ordered))
    parts: dict[str, list[str]] = {p: [] for p in PARTS}
    for rank, index in enumerate(order):
        parts[PARTS[rank % 3]].append(ordered[index])
    return {p: sorted(members) for p, members in parts.items()}


def _subject_list(value: object, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(s, (str, int)) for s in value):
        raise UserError(f"{where} must be a list of subject ids")
    return tuple(str(s) for s in value)


def load_fold_spec(path: str | Path, fraction: float = VALIDATION_FRACTION,
                   seed: int = VALIDATION_SEED) -> FoldSpec:
    """Read and validate a fold file (module docstring); missing validation lists are computed."""
    path = Path(path)
    data = read_yaml(path, "fold file")
    if not isinstance(data, dict) or not isinstance(data.get("parts"), dict):
        raise UserError(f"{path}: fold file needs a 'parts' mapping with {', '.join(PARTS)}")
    if sorted(data["parts"]) != sorted(PARTS):
        raise UserError(f"{path}: 'parts' must have exactly {', '.join(PARTS)}")
    parts = {p: _subject_list(data["parts"][p], f"{path}: parts.{p}") for p in PARTS}
    seen: dict[str, str] = {}
    for p in PARTS:
        for s in parts[p]:
            if s in seen:
                raise UserError(f"{path}: subject {s} is in both {seen[s]} and {p}")
            seen[s] = p
    spec = spec_from_parts(str(data.get("dataset", path.stem)), parts, fraction, seed)
    given = data.get("validation")
    if given is None:
        return spec
    if not isinstance(given, dict) or sorted(given) != sorted(PARTS):
        raise UserError(f"{path}: 'validation' must map each of {', '.join(PARTS)} to a list")
    validation = {}
    for p in PARTS:
        val = _subject_list(given[p], f"{path}: validation.{p}")
        outside = set(val) - set(training_subjects(parts, p))
        if outside:
            raise UserError(f"{path}: validation.{p} has {sorted(outside)[0]}, "
                            f"which is not a training subject of fold {p}")
        validation[p] = val
    return FoldSpec(spec.dataset, parts, validation)


def shipped_fold_spec(dataset: str) -> FoldSpec:
    """The published subject parts shipped for `dataset` (``bp4d`` or ``disfa``)."""
    path = FOLDS_DIR / f"{dataset}.yaml"
    if not path.is_file():
        raise UserError(f"no published fold list for dataset {dataset!r} "
                        f"(have: {', '.join(sorted(p.stem for p in FOLDS_DIR.glob('*.yaml')))})")
    return load_fold_spec(path)
