"""Readers of the real datasets' files, one module per format."""
