"""Retrieval data layer: pre-computed features, Karpathy captions, tokens, vocabularies, word vectors, BERT.

Sources: docs/retrieval.md  Heavy libraries (transformers, pyarrow)
are imported inside the functions that need them, so importing this package stays cheap.
"""
