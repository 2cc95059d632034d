"""Karpathy split JSON (``dataset_coco.json`` / ``dataset_flickr30k.json``) as the caption source.

Sources: docs/retrieval.md ("raw-image route").  Structure::

    {"images": [{"filename": ..., "split": "train|val|test|restval", "sentences": [{"raw": ...}, ...]}]}

Split names follow the precomp convention: ``train`` (COCO: + ``restval``), ``dev`` (= ``val``),
``test`` (COCO: the first 1,000 Karpathy test images) and ``testall`` (all Karpathy test images).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from shared.errors import UserError

CAPTIONS_PER_IMAGE = 5
COCO_TEST_1K = 1000


@dataclass(frozen=True)
class KarpathyImage:
    """One image entry: file name, Karpathy split, its raw captions and the dataset's image id."""

    filename: str
    split: str
    captions: tuple[str, ...]
    image_id: str
    filepath: str = ""


def load_karpathy(path: str | Path) -> list[KarpathyImage]:
    """Read a Karpathy JSON file; captions come from ``sentences[*].raw`` (docs/retrieval.md)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: Karpathy JSON not found")
    try:
        records = json.loads(path.read_text(encoding="utf-8"))["images"]
    except json.JSONDecodeError as err:
        raise UserError(f"{path}: invalid JSON ({err.msg} at line {err.lineno})") from None
    except (KeyError, TypeError):
        raise UserError(f"{path}: no top-level 'images' list") from None
    images = []
    for number, record in enumerate(records):
        try:
            raw = tuple(str(s["raw"]).strip() for s in record["sentences"])
            image_id = record.get("cocoid", record.get("imgid", number))
            images.append(
                KarpathyImage(
                    filename=str(record["filename"]),
                    split=str(record["split"]),
                    captions=raw,
                    image_id=str(image_id),
                    filepath=str(record.get("filepath", "")),
                )
            )
        except (KeyError, TypeError) as err:
            raise UserError(f"{path}: image entry {number} lacks {err} (needs filename, split, sentences[*].raw)") from None
    return images


def split_images(images: list[KarpathyImage], split: str, *, restval_to_train: bool = True) -> list[KarpathyImage]:
    """Images of a precomp-style split: train (+restval), dev (= val), test (COCO: first 1K), testall.

    COCO's Karpathy train is 82,783 images plus 30,504 ``restval`` = 113,287 (docs/retrieval.md).
    """
    is_coco = any(image.split == "restval" for image in images)
    if split == "train":
        wanted = {"train", "restval"} if restval_to_train else {"train"}
        return [image for image in images if image.split in wanted]
    if split in ("dev", "val"):
        return [image for image in images if image.split == "val"]
    if split in ("test", "testall"):
        test = [image for image in images if image.split == "test"]
        return test[:COCO_TEST_1K] if (split == "test" and is_coco) else test
    raise UserError(f"unknown split {split!r} (known: train, dev, test, testall)")


def split_counts(images: list[KarpathyImage]) -> dict[str, int]:
    """Number of images per raw Karpathy split label."""
    counts: dict[str, int] = {}
    for image in images:
        counts[image.split] = counts.get(image.split, 0) + 1
    return counts


def split_captions(images: list[KarpathyImage], source: str | Path = "Karpathy JSON") -> list[str]:
    """The first 5 captions of every image, image-major (caption j ↔ image j // 5), as in precomp files.

    Some COCO images carry 6-7 captions; like the public precomp files we keep the first five.
    """
    captions: list[str] = []
    for image in images:
        if len(image.captions) < CAPTIONS_PER_IMAGE:
            count = len(image.captions)
            raise UserError(f"{source}: image {image.filename} has {count} captions, need {CAPTIONS_PER_IMAGE}")
        captions.extend(image.captions[:CAPTIONS_PER_IMAGE])
    return captions
