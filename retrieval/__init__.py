"""Image-sentence retrieval."""
