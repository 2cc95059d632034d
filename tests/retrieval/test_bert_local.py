"""BERT from a local folder: the shipped MiniLM (tokenizer without [UNK] on plain words, output shape)."""

from __future__ import annotations

import pytest
import torch

from retrieval.data.bert import check_bert_dir, default_bert_dir, load_bert, load_tokenizer
from shared.errors import UserError


def test_shipped_minilm_tokenizer_and_model():
    tokenizer = load_tokenizer()
    batch = tokenizer(["A small red cube left of a blue sphere.", "Two dogs play"], padding=True, return_tensors="pt")
    tokens = tokenizer.convert_ids_to_tokens(batch["input_ids"][0])
    assert tokens[:4] == ["[CLS]", "a", "small", "red"] and "[UNK]" not in tokens
    model = load_bert().eval()
    with torch.no_grad():
        out = model(**batch).last_hidden_state
    assert out.shape == (2, batch["input_ids"].shape[1], 384) and torch.isfinite(out).all()


def test_directories_are_validated(tmp_path):
    assert check_bert_dir(None) == default_bert_dir()
    with pytest.raises(UserError, match="bert-base-uncased: not a local directory"):
        check_bert_dir("bert-base-uncased")
    with pytest.raises(UserError, match="config.json missing"):
        check_bert_dir(tmp_path)
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(UserError, match="no vocab.txt or tokenizer.json"):
        check_bert_dir(tmp_path)
    (tmp_path / "vocab.txt").write_text("[PAD]\n")
    assert check_bert_dir(tmp_path) == tmp_path
    with pytest.raises(UserError, match="no model.safetensors"):
        load_bert(tmp_path)
