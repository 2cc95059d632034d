"""Stanza dependency parser backend, used when stanza's English models are installed locally.

Sources: docs/retrieval.md decision 'referral trees', decision 'offline parsers'; docs/retrieval.md, decision 'offline weights' (no stanza
model is on PyPI and ``stanza.download`` needs the internet, so the models folder must already exist;
``download_method=None`` makes a missing folder fail at once).  Stanza already speaks UD v2, so the
conversion only flattens the sentences of a caption into one `Parse` with 0-based heads.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

from shared.errors import UserError

from retrieval.parsing.base import ROOT_HEAD, Parse, Token

RESOURCES_ENV = "STANZA_RESOURCES_DIR"
PROCESSORS = "tokenize,pos,lemma,depparse"


def stanza_to_parse(doc: Any) -> Parse:
    """Convert a stanza ``Document`` (one caption, any number of sentences) into the common `Parse`."""
    tokens: list[Token] = []
    for sentence in doc.sentences:
        offset = len(tokens)
        for word in sentence.words:
            head = ROOT_HEAD if not word.head else offset + int(word.head) - 1
            tokens.append(
                Token(
                    text=word.text,
                    lemma=word.lemma or word.text.lower(),
                    upos=word.upos or "X",
                    xpos=word.xpos or "",
                    head=head,
                    deprel=word.deprel or "dep",
                )
            )
    return Parse(tuple(tokens)) if tokens else Parse((), error="empty caption")


def stanza_models_dir(path: str | Path | None = None) -> Path:
    """The stanza resources folder: `path`, ``$STANZA_RESOURCES_DIR`` or ``~/stanza_resources``."""
    if path is not None:
        return Path(path)
    configured = os.environ.get(RESOURCES_ENV)
    return Path(configured) if configured else Path.home() / "stanza_resources"


class StanzaBackend:
    """Parses captions with a stanza English pipeline loaded from a local models folder."""

    name = "stanza"

    def __init__(self, models_dir: str | Path | None = None) -> None:
        import stanza

        folder = stanza_models_dir(models_dir)
        if not (folder / "resources.json").is_file():
            raise UserError(
                f"stanza models not found in {folder} (no resources.json); install them there "
                f"or set {RESOURCES_ENV} - nothing is downloaded"
            )
        self.nlp = stanza.Pipeline(
            "en", dir=str(folder), processors=PROCESSORS, download_method=None, use_gpu=False, logging_level="WARN"
        )
        self.version = f"stanza-{stanza.__version__}/{folder}"

    def parse(self, texts: Sequence[str]) -> list[Parse]:
        """Parse captions in bulk (one ``Document`` each); on failure, one by one with errors recorded."""
        from stanza.models.common.doc import Document

        try:
            docs = self.nlp.bulk_process([Document([], text=text) for text in texts])
            return [stanza_to_parse(doc) for doc in docs]
        except Exception:  # isolate the failing caption below
            return [self._parse_one(text) for text in texts]

    def _parse_one(self, text: str) -> Parse:
        try:
            return stanza_to_parse(self.nlp(text))
        except Exception as err:  # recorded in the cache and the failure report
            return Parse((), error=f"{type(err).__name__}: {err}")
