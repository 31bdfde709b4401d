"""Markdown report helpers shared by the bench scripts (run as ``python bench/NAME.py``, so this
folder is on their import path)."""

from __future__ import annotations


def replace_section(text: str, heading: str, section: str) -> str:
    """``text`` with its Markdown section starting at ``heading`` (up to the next ``## ``) replaced,
    or the section appended: a script can remake its part of a page without rerunning the rest."""
    if heading not in text:
        return (text.rstrip() + "\n\n" if text else "") + section.rstrip() + "\n"
    before, rest = text.split(heading, 1)
    after = rest.split("\n## ", 1)
    return before + section.rstrip() + "\n" + ("\n## " + after[1] if len(after) > 1 else "")
