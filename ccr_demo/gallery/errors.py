"""TODO docstring."""

from __future__ import annotations


class GalleryError(ValueError):
    """A gallery file is corrupt or inconsistent, or does not belong to the given model."""


class GalleryWarning(UserWarning):
    """Items were skipped while building (e.g. files in a folder that are not images)."""
