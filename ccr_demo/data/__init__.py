"""Data: the generated shapes world, readers for the real CCR dataset formats, torch datasets."""
