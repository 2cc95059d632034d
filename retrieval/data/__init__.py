"""Retrieval data layer: pre-computed features, Karpathy captions, tokens, vocabularies, word vectors, BERT.

Spec: retrieval-models.md §1.2-1.4; anchors-retrieval.md §2.  Heavy libraries (transformers, pyarrow)
are imported inside the functions that need them, so importing this package stays cheap.
"""
