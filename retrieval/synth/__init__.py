"""SynScenes: an embedded, compositional image–caption dataset in the SCAN precomp layout."""

from retrieval.synth.generate import generate

__all__ = ["generate"]
