"""Captions into structure: dependency parses (spaCy / stanza), scene graphs, SMFEA referral trees,
HiRE region graphs, and their on-disk caches.

Spec: retrieval-models.md §2.1(c), SM-3, §3.1, §9 G7; anchors-retrieval.md §6.  Backends import their
parser library only when constructed.
"""

from __future__ import annotations

from typing import Any

from shared.registry import Registry

from retrieval.parsing.base import ParserBackend
from retrieval.parsing.spacy_backend import SpacyBackend
from retrieval.parsing.stanza_backend import StanzaBackend

BACKENDS: Registry[ParserBackend] = Registry("parser backend")
BACKENDS.register("spacy")(SpacyBackend)
BACKENDS.register("stanza")(StanzaBackend)


def create_backend(name: str, **options: Any) -> ParserBackend:
    """Construct a parser backend by name (``spacy``, the offline default, or ``stanza``)."""
    return BACKENDS.create(name, **options)
