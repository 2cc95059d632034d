"""Building blocks the retrieval models assemble (never a whole model): region and text encoders,
GPO pooling, attention blocks, graph reasoning, the structured tree encoder, CAC concepts and the
caption decoder.  Model files in `retrieval.models` import these, never each other."""

from retrieval.layers.bert import BertConfig, BertGPOTextTower, BertTextEncoder, bert_from_config, build_bert
from retrieval.layers.blocks import drop_regions
from retrieval.layers.gpo import GPO
from retrieval.layers.gru import GRUTextEncoder, length_mask
from retrieval.layers.lstm import BiLSTMSentenceEncoder
from retrieval.layers.region import RegionEncoder, xavier_linear

__all__ = [
    "GPO",
    "BertConfig",
    "BiLSTMSentenceEncoder",
    "BertGPOTextTower",
    "BertTextEncoder",
    "GRUTextEncoder",
    "RegionEncoder",
    "bert_from_config",
    "build_bert",
    "drop_regions",
    "length_mask",
    "xavier_linear",
]
