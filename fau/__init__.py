"""Facial action unit recognition."""
