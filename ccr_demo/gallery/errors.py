"""The gallery's own error and warning, shared by every gallery module.

``GalleryError`` subclasses ValueError, so callers that already handle bad input (the CLI prints
``error: ...`` and exits 2 for ValueError) handle a bad gallery the same way; tests and the app
can still tell it apart. Its messages name the file and the problem, and say what to do
(rebuild, or load with the right model or image root). ``GalleryWarning`` marks items skipped
while building (one counted warning per build, not one per file).
"""

from __future__ import annotations


class GalleryError(ValueError):
    """A gallery file is corrupt or inconsistent, or does not belong to the given model."""


class GalleryWarning(UserWarning):
    """Items were skipped while building (e.g. files in a folder that are not images)."""
