"""Galleries: the search API, FAISS indexes, storage, item sources, sharded builds, CLI."""
