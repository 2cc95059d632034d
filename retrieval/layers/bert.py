"""BERT text encoder: pre-trained weights from a hub id or a local folder, or random weights on purpose.

3SHNet / VSE∞ text tower (docs/retrieval.md): BERT word features E (N × hidden) →
FC hidden → D → GPO over the caption's tokens → l2-normalised caption embedding.
Weights come from `retrieval.data.bert.load_bert` (``model.bert.source``: ``bert-base-uncased`` in the
paper configs, the shipped all-MiniLM-L6-v2 folder when null, or a local folder); docs/retrieval.md,
decision 'pre-trained BERT'.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from retrieval.data.bert import bert_architecture, load_bert
from retrieval.layers.gpo import GPO
from retrieval.layers.region import xavier_linear


@dataclass(frozen=True)
class BertConfig:
    """The ``model.bert`` section of the BERT-tower models (3SHNet, VSE∞, HiRE)."""

    source: str | None = "bert-base-uncased"  # hub id or local folder (None: the shipped MiniLM folder)
    pretrained: bool = True         # load the source's weights; false: random weights on purpose (its architecture)
    arch: dict[str, Any] | None = None  # architecture overrides, only with pretrained: false
    layers: int | None = None       # keep the first N transformer layers (None: all)
    freeze_embeddings: bool = False  # the token / position embeddings stay fixed


def bert_from_config(config: BertConfig) -> nn.Module:
    """The BERT module a `BertConfig` describes: `build_bert` (`arch` only applies to random weights), then
    `truncate_bert` (``layers`` / ``freeze_embeddings``; with random weights — a checkpoint being rebuilt
    before its tensors are loaded — the same architecture and trainable set)."""
    bert = build_bert(config.source, config.pretrained, None if config.pretrained else config.arch)
    return truncate_bert(bert, config.layers, config.freeze_embeddings)


def truncate_bert(bert: nn.Module, layers: int | None = None, freeze_embeddings: bool = False) -> nn.Module:
    """`bert` with only its first `layers` transformer layers (all when None) and, with
    `freeze_embeddings`, its embedding layer excluded from training.  The kept layers keep their
    pre-trained weights: the lower layers of a pre-trained encoder, a CPU-size text tower that still
    starts from pre-training (docs/retrieval.md, decision 'tiny configs')."""
    if layers is not None:
        total = len(bert.encoder.layer)
        if not 1 <= layers <= total:
            raise ValueError(f"`layers` = {layers}: the pre-trained encoder has {total} layers")
        bert.encoder.layer = bert.encoder.layer[:layers]
        bert.config.num_hidden_layers = layers
    if freeze_embeddings:
        bert.embeddings.requires_grad_(False)
    return bert


def build_bert(source: str | Path | None = None, pretrained: bool = True, arch: dict[str, Any] | None = None) -> nn.Module:
    """A `transformers` BertModel: pre-trained weights of `source` (hub id or local folder), or random weights.

    With ``pretrained=False`` the architecture is `source`'s (`retrieval.data.bert.bert_architecture`:
    no weights needed, e.g. the published bert-base-uncased sizes) with `arch` overrides, e.g. ``{num_hidden_layers: 2, hidden_size: 64,
    num_attention_heads: 2, intermediate_size: 128}`` — the vocabulary size and special ids stay
    those of the folder's tokenizer, so token ids from `retrieval.data.bert.load_tokenizer` fit.
    """
    if pretrained:
        if arch:
            raise ValueError("`arch` overrides need pretrained: false (pre-trained weights fix the architecture)")
        bert = load_bert(source)
        if getattr(bert, "pooler", None) is not None:
            bert.pooler = None  # unused by the text towers; random-weight builds have none, so checkpoints match
        return bert
    from transformers import BertModel

    config = bert_architecture(source)
    for key, value in (arch or {}).items():
        if not hasattr(config, key):
            raise ValueError(f"BertConfig has no field {key!r}")
        setattr(config, key, value)
    return BertModel(config, add_pooling_layer=False)


class BertTextEncoder(nn.Module):
    """`forward(input_ids, attention_mask)` → ((B, L, out_dim) token features, (B, L) bool mask).

    Token features are FC(BERT last hidden state) (Xavier init, 3SHNet/VSE∞ ``Linear(768, 1024)``).
    Padding is excluded by BERT's attention mask; padded positions of the output are zeroed.
    """

    def __init__(self, bert: nn.Module, out_dim: int = 1024) -> None:
        super().__init__()
        self.bert = bert
        self.fc = xavier_linear(bert.config.hidden_size, out_dim)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mask = attention_mask.to(torch.bool)
        hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask.long()).last_hidden_state
        return self.fc(hidden) * mask.unsqueeze(-1).to(hidden.dtype), mask


class BertGPOTextTower(nn.Module):
    """BERT → FC → GPO caption tower shared by 3SHNet and VSE∞: `forward(texts)` → (B, out_dim), not normalised."""

    def __init__(self, bert: nn.Module, out_dim: int = 1024, gpo_dim: int = 32) -> None:
        super().__init__()
        self.encoder = BertTextEncoder(bert, out_dim)
        self.gpo = GPO(gpo_dim, gpo_dim)

    def forward(self, texts: dict[str, torch.Tensor]) -> torch.Tensor:
        words, mask = self.encoder(texts["input_ids"], texts["attention_mask"])
        return self.gpo(words, mask)
