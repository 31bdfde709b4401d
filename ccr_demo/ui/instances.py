"""The parallel test instances gold mode draws from, with their captions per language.

``GoldInstances`` comes from the test set (``from_testset``) or, without one, from a caption
gallery's items (``from_caption_gallery``: only languages every image has, so the instances
stay parallel). Gold mode picks one, image-to-text marks its captions, and the caption index
is encoded from them when no caption gallery is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass

from ccr_demo import LANGUAGES


@dataclass
class GoldInstances:
    """Parallel test instances: each image id with its captions in every language (gold mode)."""

    image_ids: list[str]
    captions: dict[str, list[list[str]]]  # language -> per instance, its captions
    source: str

    @property
    def languages(self) -> list[str]:
        return list(self.captions)

    def __len__(self) -> int:
        return len(self.image_ids)

    @classmethod
    def from_testset(cls, test_set) -> "GoldInstances":
        return cls(list(test_set.image_ids), {lang: test_set.instance_captions(lang) for lang in test_set.languages},
                   source=f"test set {test_set.name}")

    @classmethod
    def from_caption_gallery(cls, gallery) -> "GoldInstances | None":
        """From the items of a caption gallery built with ``--captions`` (image_id, language, caption)."""
        per: dict[str, dict[str, list[str]]] = {}
        order: list[str] = []
        for item in gallery.items:
            image_id, lang, caption = item.get("image_id"), item.get("language"), item.get("caption")
            if image_id is None or lang is None or caption is None:
                return None
            if image_id not in per:
                per[image_id] = {}
                order.append(image_id)
            per[image_id].setdefault(lang, []).append(caption)
        found = {lang for i in order for lang in per[i]}
        langs = [lang for lang in [*LANGUAGES, *sorted(found - set(LANGUAGES))]
                 if lang in found and all(lang in per[i] for i in order)]  # parallel: in every instance
        if not order or not langs:
            return None
        return cls(order, {lang: [per[i][lang] for i in order] for lang in langs}, source="caption gallery")
