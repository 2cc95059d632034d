"""Text and visual encoders shared by the retrieval models: Bi-GRU, BERT (local), GPO, region FC."""

from retrieval.models.encoders.bert import BertGPOTextTower, BertTextEncoder, build_bert
from retrieval.models.encoders.gpo import GPO
from retrieval.models.encoders.gru import GRUTextEncoder, length_mask
from retrieval.models.encoders.region import RegionEncoder, xavier_linear

__all__ = [
    "GPO",
    "BertGPOTextTower",
    "BertTextEncoder",
    "GRUTextEncoder",
    "RegionEncoder",
    "build_bert",
    "length_mask",
    "xavier_linear",
]
