"""MVCrec model parts: item graph propagation, sequence transformers, fusion, losses."""

from model.graph import ItemGraphPropagation, normalized_adjacency
from model.mvcrec import MVCRec
from model.session_encoder import SessionEncoder

__all__ = ["ItemGraphPropagation", "MVCRec", "SessionEncoder", "normalized_adjacency"]
