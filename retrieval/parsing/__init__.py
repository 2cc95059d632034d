"""Captions into structure: dependency parses (spaCy / stanza), scene graphs, SMFEA referral trees,
HiRE region graphs, and their on-disk caches.

Backends import their parser library only when constructed (docs/retrieval.md, "Parsing").
"""

from __future__ import annotations

from typing import Any

from shared.errors import UserError

from retrieval.parsing.base import ParserBackend
from retrieval.parsing.spacy_backend import SpacyBackend
from retrieval.parsing.stanza_backend import StanzaBackend

#: parser backend name → class
BACKENDS: dict[str, type[ParserBackend]] = {"spacy": SpacyBackend, "stanza": StanzaBackend}


def create_backend(name: str, **options: Any) -> ParserBackend:
    """Construct a parser backend by name (``spacy``, the offline default, or ``stanza``)."""
    try:
        cls = BACKENDS[str(name).lower()]
    except KeyError:
        raise UserError(f"unknown parser backend {name!r} (known: {', '.join(sorted(BACKENDS))})") from None
    return cls(**options)
