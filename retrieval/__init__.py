"""Image-sentence retrieval.

Python API (imported lazily, so ``import retrieval`` stays light): ``retrieval.load(CKPT)`` returns a
`retrieval.search.Retriever` (``encode_images``, ``encode_texts``, ``score``) and ``retrieval.Index``
builds, loads and searches embedding indexes.
"""

from __future__ import annotations

from typing import Any


def load(checkpoint: str, device: str = "auto") -> Any:
    """The trained checkpoint as a `retrieval.search.Retriever` (on CUDA when present)."""
    from retrieval.search.encoder import Retriever

    return Retriever.load(checkpoint, device)


def __getattr__(name: str) -> Any:
    if name == "Index":
        from retrieval.search.index import Index

        return Index
    raise AttributeError(f"module 'retrieval' has no attribute {name!r}")
