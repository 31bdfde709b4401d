"""Galleries: the search API, FAISS indexes, storage, item sources, sharded builds, CLI.

``from ccr_demo.gallery import Gallery`` is the public entry (resolved on first use, PEP 562,
so a light submodule does not pull in FAISS and torch); ``python -m ccr_demo.gallery`` (or
``ccr-gallery``) is the command line.
"""

__all__ = ["Gallery", "GalleryError"]


def __getattr__(name: str):
    if name == "Gallery":
        from ccr_demo.gallery.gallery import Gallery

        return Gallery
    if name == "GalleryError":
        from ccr_demo.gallery.errors import GalleryError

        return GalleryError
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
