"""Plumbing every layer uses: atomic files, configs as dataclasses, paths kept inside roots."""
