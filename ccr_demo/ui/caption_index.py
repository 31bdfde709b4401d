"""The caption index image-to-text searches: one text gallery of captions per language.

Made from a caption gallery ``python -m ccr_demo.gallery build --iglue ... --captions`` wrote
(``CaptionIndex.from_gallery``: vectors split per language, nothing re-encoded), or, without
one, by encoding the gold instances' captions once (``CaptionIndex.build``: in chunks that a
stop event can end, cached on disk under the model's fingerprint so a later start loads them).
``gold_rows`` finds an image's own captions, which image-to-text marks as gold.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from pathlib import Path
from typing import Mapping

from ccr_demo import LANGUAGES
from ccr_demo.ui.instances import GoldInstances

log = logging.getLogger(__name__)


class CaptionIndex:
    """One text Gallery per language (image-to-text returns the top captions of each language).

    Items carry ``caption``, ``language`` and ``image_id`` (the layout of ``index build --captions``).
    """

    def __init__(self, per_language: Mapping[str, object], source: str):
        self.per_language = dict(per_language)
        self.source = source
        self._rows_by_image = {lang: _rows_by(g.items, "image_id") for lang, g in self.per_language.items()}

    @property
    def languages(self) -> list[str]:
        return list(self.per_language)

    @classmethod
    def from_gallery(cls, gallery, source: str) -> "CaptionIndex":
        """Split one caption gallery into per-language galleries (vectors copied, not re-encoded)."""
        from ccr_demo.gallery.gallery import Gallery  # imports torch: kept out of ``import ccr_demo.ui``

        rows: dict[str, list[int]] = {}
        for row, item in enumerate(gallery.items):
            if "language" not in item or "caption" not in item:
                raise ValueError(f"caption gallery item {item.get('id')!r} lacks 'language' or 'caption': "
                                 "build it with `python -m ccr_demo.gallery build --iglue ... --captions`")
            rows.setdefault(item["language"], []).append(row)
        order = [lang for lang in LANGUAGES if lang in rows] + sorted(set(rows) - set(LANGUAGES))
        per = {}
        for lang in order:
            r = rows[lang]
            items = [gallery.items[i] for i in r]
            per[lang] = Gallery.from_vectors(gallery.vectors[r], [it["id"] for it in items],
                                             metadata=[{k: v for k, v in it.items() if k != "id"} for it in items],
                                             kind="text", fingerprint=gallery.fingerprint)
        return cls(per, source)

    def gold_rows(self, language: str, image_id: str) -> list[int]:
        """Rows of one image's captions in one language's gallery (empty if it has none)."""
        return self._rows_by_image.get(language, {}).get(str(image_id), [])

    @classmethod
    def build(cls, model, instances: GoldInstances, batch_size: int = 128, cache: Path | None = None,
              stop: threading.Event | None = None, chunk: int = 256) -> "CaptionIndex":
        """Encode every caption of the instances once (ids as ``index build --captions`` writes them).

        With ``cache`` (a folder), the result is saved there under a key of the model's
        fingerprint and the captions, and a later start loads it instead of encoding again.
        Encoding goes in chunks of ``chunk`` captions; a set ``stop`` ends it between two
        (raises InterruptedError), so a shutting-down process need not wait minutes.
        """
        from ccr_demo.gallery.gallery import Gallery  # torch, as in from_gallery
        from ccr_demo.model.fingerprint import weights_fingerprint

        key = hashlib.sha256(json.dumps([weights_fingerprint(model), instances.image_ids, instances.captions],
                                        ensure_ascii=False).encode()).hexdigest()[:16]
        folder = cache / key if cache is not None else None
        if folder is not None and folder.is_dir():
            try:
                return cls.from_gallery(Gallery.load(folder, model), source=f"cached encoding of the "
                                        f"{instances.source}'s captions ({folder})")
            except Exception as e:  # noqa: BLE001 - a stale or broken cache entry: encode again
                log.warning("ignoring caption cache %s: %s", folder, e)
        texts, meta = [], []
        for lang in instances.languages:
            for image_id, caps in zip(instances.image_ids, instances.captions[lang]):
                texts.extend(caps)
                meta.extend({"id": f"{lang}/{image_id}/{j}", "image_id": image_id, "language": lang}
                            for j in range(len(caps)))
        gallery = None
        for start in range(0, len(texts), chunk):
            if stop is not None and stop.is_set():
                raise InterruptedError("caption encoding stopped")
            part, part_meta = texts[start:start + chunk], meta[start:start + chunk]
            if gallery is None:
                gallery = Gallery.build(model, part, kind="text", metadata=part_meta, batch_size=batch_size,
                                        progress=False)
            else:
                gallery.add(model, part, metadata=part_meta, batch_size=batch_size, progress=False)
        if folder is not None:
            try:
                gallery.save(folder)
            except OSError as e:
                log.warning("could not cache the caption index in %s: %s", folder, e)
        return cls.from_gallery(gallery, source=f"{len(texts)} captions of the {instances.source}, encoded at start-up")


def _rows_by(items: list[dict], key: str) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for row, item in enumerate(items):
        if key in item:
            out.setdefault(str(item[key]), []).append(row)
    return out
