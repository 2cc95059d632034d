"""Searchable galleries for trained retrieval models (docs/retrieval.md).

`Retriever` (what `retrieval.load` returns) encodes images and captions and scores pairs;
`Index` stores l2-normalised two-tower embeddings with per-row metadata behind an exact or FAISS
backend (`backends`); `rerank` adds the pairwise second stage; `explain` draws SynScenes hits.
"""

from retrieval.search.encoder import Retriever
from retrieval.search.index import Index, SearchResult

__all__ = ["Index", "Retriever", "SearchResult"]
