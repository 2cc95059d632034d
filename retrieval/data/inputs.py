"""What a model reads from a split's image side: the array keys, plus how derived inputs are built.

`ImageInputs` is the tuple of keys a model's ``image_inputs()`` returns (``"regions"``, ``"region_mask"``,
``"region_graph"``, ...), carrying the settings of the inputs the loader derives rather than reads:
``iou_threshold`` is μ of HiRE's visual spatial-semantic graph (spatial edge iff IoU > μ, the thesis
§7.4.1; μ = 0.4 in §7.5.1), set by the model's ``model.iou_threshold``.  Every loader that receives a
model's inputs (`retrieval.data.pairs.image_item`, `ImageStream`, `PairDataset`) builds the graph with
it; a plain tuple of keys means the paper's μ.
"""

from __future__ import annotations

from typing import Iterable

from retrieval.parsing.region_graph import IOU_THRESHOLD


class ImageInputs(tuple):
    """A tuple of image keys with the derived-input settings (module docstring); compares as its keys."""

    iou_threshold: float

    def __new__(cls, keys: Iterable[str] = (), iou_threshold: float = IOU_THRESHOLD) -> "ImageInputs":
        self = super().__new__(cls, tuple(keys))
        self.iou_threshold = float(iou_threshold)
        return self

    def __reduce__(self):  # data-loader workers receive the keys and μ
        return (type(self), (tuple(self), self.iou_threshold))

    @classmethod
    def of(cls, keys: Iterable[str]) -> "ImageInputs":
        """`keys` itself when it is an `ImageInputs`, else its keys with the default settings."""
        return keys if isinstance(keys, cls) else cls(keys)
