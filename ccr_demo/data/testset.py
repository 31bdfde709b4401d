"""Readers for the real CCR dataset formats, and the parallel test set they feed.

One code path reads both the real datasets and the generated shapes world (which is written
in the same formats). Every reader returns plain records and fails with a `DataFormatError`
that names the file and line, because a bad row in a million-line corpus is otherwise a
needle in a haystack. ``skip_bad=True`` drops bad rows instead and emits one counted warning.

Formats (see PAPER.md "Datasets"; field names checked against CCRK/CCLM/IGLUE code):

* CCRK pretraining: a folder of ``part_*.data``, one JSON object a line,
  ``{"caption": {"en": ..., "de": ...}, "image_path": "..."}``; relative paths resolve against
  the part file's folder (or ``image_root``). Instead of a path a row may carry the image as
  base64 in ``"image"`` (CCRK's ``images.image_key``), ``"binary"`` (CCLM's key for region and
  monolingual data) or ``"image_base64"``. Extra keys ``"scene"`` and ``"noise"`` are kept.
* IGLUE xFlickr&CO: ``annotations/{lang}/test.jsonl``, rows ``{"id", "img_path",
  "sentences"}``; ids are ints (COCO) or strings (Flickr) and are normalised to str.
* IGLUE WIT: ``test_{lang}.jsonl`` rows with ``image_url`` and
  ``caption_reference_description``; images as base64 in CSV/TSV files (``url<TAB>base64``
  a line), or merged into the row as ``"image_content"`` (CCLM's wit_preproc).
* CCRK retrieval JSON (Multi30K, MSCOCO): train = list of ``{"caption", "image", "image_id"}``,
  val/test = list of ``{"image", "caption": [...], "image_id"}``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from PIL import Image

from ccr_demo import LANGUAGES
from ccr_demo.data.errors import BadRows, DataFormatError, DataFormatWarning, rows_inside_root, where_in_file
from ccr_demo.data.images import decode_base64, load_image
from ccr_demo.data.readers.ccrk_json import read_ccrk_json
from ccr_demo.data.readers.ccrk_pretrain import default_language_order
from ccr_demo.data.readers.iglue import read_iglue_jsonl
from ccr_demo.data.readers.wit import read_wit_images, read_wit_jsonl

# Language codes of the paper, xFlickr&CO and WIT: tells a {lang: info} "noise" mapping
# from a per-row info mapping.
_KNOWN_LANGUAGES = frozenset(LANGUAGES) | {"ar", "bg", "da", "el", "et", "ko", "vi"}


def _noise_flags(noise: Any, lang: str, n: int) -> list[bool]:
    """Per-caption noisy flags from a row's optional "noise" field.

    Accepted forms: absent/None (clean), a bool, a list with one entry per caption, a
    mapping ``{lang: info}`` whose entry for this language applies (truthy = noisy), or any
    other mapping describing this row's noise (non-empty = noisy).
    """
    if isinstance(noise, Mapping) and (lang in noise or not _KNOWN_LANGUAGES.isdisjoint(noise)):
        noise = noise.get(lang)
    if isinstance(noise, list) and len(noise) == n:
        return [bool(x) for x in noise]
    return [bool(noise)] * n


@dataclass(slots=True)
class _Instance:
    """One instance as read from one language's file, before alignment."""

    id: str
    image: str
    captions: list[str]
    at: str
    noisy: list[bool]
    scene: Any = None
    image_data: str | None = None


class ParallelTestSet:
    """N instances x L languages: the retrieval test set behind recall and MRV.

    Instance i has one image and, per language, one or more captions. Texts are flattened
    per language in instance order; ``text_to_image[lang]`` gives each text's gold image,
    ``image_to_texts[lang]`` each image's gold texts and ``first_text[lang]`` each
    instance's first caption (the query whose rank enters the paper's text-to-image MRV).
    Image paths may point to files that do not exist (text-only use).
    """

    def __init__(self, image_ids: Sequence[str], image_paths: Sequence[str],
                 captions: Mapping[str, Sequence[Sequence[str]]], *,
                 noisy: Mapping[str, Sequence[Sequence[bool]]] | None = None,
                 scenes: Sequence[Any] | None = None, image_data: Sequence[str | None] | None = None,
                 name: str = ""):
        n = len(image_ids)
        self.name = name
        self.languages = list(captions)
        self.image_ids = [str(i) for i in image_ids]
        self.image_paths = [str(p) for p in image_paths]
        self.scenes = list(scenes) if scenes is not None else None
        self.image_data = list(image_data) if image_data is not None else None
        if not self.languages:
            raise DataFormatError(f"{name or 'test set'}: no languages")
        for what, seq in (("image_paths", self.image_paths), ("scenes", self.scenes), ("image_data", self.image_data)):
            if seq is not None and len(seq) != n:
                raise DataFormatError(f"{name or 'test set'}: {what} has {len(seq)} entries for {n} instances")
        self._nested = {lang: [list(c) for c in captions[lang]] for lang in self.languages}
        self._nested_noisy = None if noisy is None else {
            lang: [list(f) for f in noisy[lang]] for lang in self.languages}
        self.captions: dict[str, list[str]] = {}
        self.text_to_image: dict[str, np.ndarray] = {}
        self.image_to_texts: dict[str, list[list[int]]] = {}
        self.first_text: dict[str, np.ndarray] = {}
        self.noisy: dict[str, np.ndarray] | None = None if noisy is None else {}
        for lang in self.languages:
            nested = self._nested[lang]
            counts = np.fromiter((len(c) for c in nested), dtype=np.int64, count=len(nested))
            if len(nested) != n or (counts == 0).any():
                raise DataFormatError(
                    f"{name or 'test set'}: language {lang!r} needs >= 1 caption for each of {n} instances")
            first = np.cumsum(counts) - counts
            self.captions[lang] = [c for caps in nested for c in caps]
            self.text_to_image[lang] = np.repeat(np.arange(n, dtype=np.int64), counts)
            self.first_text[lang] = first
            self.image_to_texts[lang] = [list(range(s, s + c)) for s, c in zip(first.tolist(), counts.tolist())]
            if self.noisy is not None:
                flags = [f for fl in self._nested_noisy[lang] for f in fl]
                if len(flags) != len(self.captions[lang]):
                    raise DataFormatError(f"{name or 'test set'}: noisy flags for {lang!r} do not match its captions")
                self.noisy[lang] = np.asarray(flags, dtype=bool)

    def __len__(self) -> int:
        return len(self.image_ids)

    def __repr__(self) -> str:
        texts = ", ".join(f"{lang}:{len(c)}" for lang, c in self.captions.items())
        return f"ParallelTestSet({self.name!r}, {len(self)} instances, texts {texts})"

    def instance_captions(self, lang: str) -> list[list[str]]:
        """Captions of each instance in one language (a copy)."""
        return [list(c) for c in self._nested[lang]]

    def select(self, indices: Sequence[int] | np.ndarray) -> "ParallelTestSet":
        """A new test set with the given instances (and all their captions), in that order."""
        idx = np.arange(len(self))[np.asarray(indices, dtype=np.int64)].tolist()  # bounds-checked
        pick = lambda seq: None if seq is None else [seq[i] for i in idx]  # noqa: E731
        return ParallelTestSet(
            pick(self.image_ids), pick(self.image_paths),
            {lang: pick(self._nested[lang]) for lang in self.languages},
            noisy=None if self._nested_noisy is None else {lang: pick(v) for lang, v in self._nested_noisy.items()},
            scenes=pick(self.scenes), image_data=pick(self.image_data), name=self.name)

    def __getitem__(self, key: slice | Sequence[int] | np.ndarray) -> "ParallelTestSet":
        if isinstance(key, slice):
            return self.select(range(len(self))[key])
        return self.select(key)

    def subset(self, n: int) -> "ParallelTestSet":
        """The first n instances (quick evaluations)."""
        return self[:n]

    def with_languages(self, languages: Sequence[str]) -> "ParallelTestSet":
        """The same instances restricted to (and ordered by) `languages`."""
        unknown = [lang for lang in languages if lang not in self._nested]
        if unknown:
            raise DataFormatError(f"{self.name or 'test set'}: no language {unknown[0]!r} (has {self.languages})")
        return ParallelTestSet(
            self.image_ids, self.image_paths, {lang: self._nested[lang] for lang in languages},
            noisy=None if self._nested_noisy is None else {lang: self._nested_noisy[lang] for lang in languages},
            scenes=self.scenes, image_data=self.image_data, name=self.name)

    def load_image(self, i: int, max_pixels: int | None = None) -> Image.Image:
        """Instance i's image as RGB (from its base64 data if present, else its path)."""
        data = self.image_data[i] if self.image_data is not None else None
        if data is not None:
            label = f"{self.name or 'test set'} image {self.image_ids[i]!r} (base64)"
            return load_image(decode_base64(data, label), name=label, max_pixels=max_pixels)
        return load_image(self.image_paths[i], max_pixels=max_pixels)

    def missing_images(self) -> list[int]:
        """Indices of instances with neither image data nor an existing image file."""
        return [i for i, p in enumerate(self.image_paths)
                if (self.image_data is None or self.image_data[i] is None) and not Path(p).is_file()]

    # ---- constructors from the real formats

    @classmethod
    def _align(cls, per_lang: dict[str, list[_Instance]], *, intersect: bool, check_images: bool,
               skip_bad: bool, name: str) -> "ParallelTestSet":
        """Align instances across languages by id (row order may differ between files)."""
        langs = list(per_lang)
        ref = langs[0]
        index = {lang: {inst.id: inst for inst in per_lang[lang]} for lang in langs}
        ids = [inst.id for inst in per_lang[ref]]
        common = set(ids).intersection(*(index[lang].keys() for lang in langs[1:]))
        if len(common) < max(len(v) for v in index.values()):
            for lang in langs[1:] if not intersect else ():
                for a, b in ((lang, ref), (ref, lang)):
                    lacking = [k for k in index[b] if k not in index[a]]
                    if lacking:
                        raise DataFormatError(
                            f"{name}: not parallel: language {a!r} has no instance with id {lacking[0]!r} "
                            f"(from {index[b][lacking[0]].at}; {len(lacking)} such ids). MRV needs the same "
                            "instances in every language; pass intersect=True to keep only the common ids")
            if not common:
                raise DataFormatError(f"{name}: no id is common to all of {langs}")
            dropped = {lang: len(index[lang]) - len(common) for lang in langs}
            warnings.warn(f"{name}: kept the {len(common)} ids common to all languages; dropped: {dropped}",
                          DataFormatWarning, stacklevel=3)
            ids = [i for i in ids if i in common]
        for lang in langs[1:]:
            for i in ids:
                a, b = index[ref][i], index[lang][i]
                if a.image != b.image:
                    raise DataFormatError(f"{name}: id {i!r} has image {a.image!r} ({a.at}) but {b.image!r} ({b.at})")
        if check_images:
            bad = BadRows(skip_bad, name)
            keep = []
            for i in ids:
                inst = index[ref][i]
                if inst.image_data is None and not Path(inst.image).is_file():
                    bad(inst.at, f"image file not found: {inst.image}")
                else:
                    keep.append(i)
            bad.finish()
            ids = keep
            if not ids:
                raise DataFormatError(f"{name}: no instance has its image")
        refs = [index[ref][i] for i in ids]
        has_scene = any(r.scene is not None for r in refs)
        has_noise = any(any(index[lang][i].noisy) for lang in langs for i in ids)
        has_data = any(r.image_data is not None for r in refs)
        return cls(ids, [r.image for r in refs], {lang: [index[lang][i].captions for i in ids] for lang in langs},
                   noisy={lang: [index[lang][i].noisy for i in ids] for lang in langs} if has_noise else None,
                   scenes=[r.scene for r in refs] if has_scene else None,
                   image_data=[r.image_data for r in refs] if has_data else None, name=name)

    @classmethod
    def from_iglue(cls, path: str | Path, languages: Sequence[str] | None = None, *,
                   image_root: str | Path | Mapping[str, str | Path] | None = None, split: str = "test",
                   intersect: bool = False, check_images: bool = False, skip_bad: bool = False,
                   allow_outside_root: bool = False) -> "ParallelTestSet":
        """Read the IGLUE layout ``<dir>/annotations/{lang}/{split}.jsonl`` (dir or annotations dir).

        ``languages`` defaults to the folders present, in the paper's K order (`default_language_order`);
        the first language's row order is the instance order. ``image_root`` defaults to
        ``<dir>/images``; a mapping ``{"coco": ..., "flickr30k": ...}`` follows CCRK's xFlickr&CO
        rule (``COCO`` in img_path picks the COCO root). An ``img_path`` must stay inside its
        root (not absolute, no ``..`` out of it) unless ``allow_outside_root``.
        """
        path = Path(path)
        ann = path / "annotations" if (path / "annotations").is_dir() else path
        base = ann.parent
        if languages is None:
            found = [d.name for d in ann.iterdir() if (d / f"{split}.jsonl").is_file()] if ann.is_dir() else []
            languages = default_language_order(found)
            if not languages:
                raise DataFormatError(f"{ann}: no {{lang}}/{split}.jsonl files")
        root = image_root if image_root is not None else base / "images"

        def root_of(img_path: str) -> Path:
            if isinstance(root, Mapping):
                return Path(root["coco" if "COCO" in img_path else "flickr30k"])
            return Path(root)

        def image_of(img_path: str) -> str:
            return str(root_of(img_path) / img_path)

        per_lang = {}
        for lang in languages:
            rows = read_iglue_jsonl(ann / lang / f"{split}.jsonl", skip_bad=skip_bad)
            if not allow_outside_root:
                rows = rows_inside_root(rows, lambda r: (r.img_path, root_of(r.img_path)),
                                        lambda r: where_in_file(r.file, r.line), skip_bad,
                                        str(ann / lang / f"{split}.jsonl"))
            per_lang[lang] = [_Instance(r.id, image_of(r.img_path), r.sentences, where_in_file(r.file, r.line),
                                        _noise_flags(r.noise, lang, len(r.sentences)), r.scene) for r in rows]
        return cls._align(per_lang, intersect=intersect, check_images=check_images, skip_bad=skip_bad,
                          name=f"{ann}/*/{split}.jsonl")

    @classmethod
    def from_ccrk_json(cls, files: Mapping[str, str | Path], *, image_root: str | Path | None = None,
                       intersect: bool = False, check_images: bool = False,
                       skip_bad: bool = False, allow_outside_root: bool = False) -> "ParallelTestSet":
        """Read CCRK retrieval JSON files, one per language (``{lang: path}``), aligned by image_id.

        Images resolve against ``image_root`` (default: each JSON file's folder) and must stay
        inside it (not absolute, no ``..`` out of it) unless ``allow_outside_root``.
        """
        per_lang = {}
        for lang, f in files.items():
            root = Path(image_root) if image_root is not None else Path(f).parent
            entries = read_ccrk_json(f, skip_bad=skip_bad)
            if not allow_outside_root:
                entries = rows_inside_root(entries, lambda e: (e.image, root),
                                           lambda e: where_in_file(e.file, item=e.item), skip_bad, str(f))
            per_lang[lang] = [_Instance(e.image_id, str(root / e.image), e.captions,
                                        where_in_file(e.file, item=e.item), [False] * len(e.captions))
                              for e in entries]
        return cls._align(per_lang, intersect=intersect, check_images=check_images, skip_bad=skip_bad,
                          name=Path(next(iter(files.values()))).stem)

    @classmethod
    def from_wit(cls, files: Mapping[str, str | Path], images: str | Path | Mapping[str, str] | None = None, *,
                 intersect: bool = False, skip_bad: bool = False) -> "ParallelTestSet":
        """Read IGLUE WIT files (``{lang: test_{lang}.jsonl}``); instances are grouped by image_url.

        WIT's languages have different images, so several languages need ``intersect=True``.
        ``images``: a url<TAB>base64 file/folder or a {url: base64} mapping; without it, rows'
        ``image_content`` is used if present, else the set is text-only.
        """
        per_lang: dict[str, list[_Instance]] = {}
        rows_by_lang = {lang: read_wit_jsonl(f, skip_bad=skip_bad) for lang, f in files.items()}
        if images is not None and not isinstance(images, Mapping):
            images = read_wit_images(images, {r.image_url for rows in rows_by_lang.values() for r in rows},
                                     skip_bad=skip_bad)
        for lang, rows in rows_by_lang.items():
            groups: dict[str, _Instance] = {}
            for r in rows:
                inst = groups.get(r.image_url)
                if inst is None:
                    data = images.get(r.image_url) if images is not None else r.image_base64
                    groups[r.image_url] = _Instance(r.image_url, r.image_url, [r.caption],
                                                    where_in_file(r.file, r.line), [False], image_data=data)
                else:
                    inst.captions.append(r.caption)
                    inst.noisy.append(False)
            per_lang[lang] = list(groups.values())
        if images is not None:
            bad = BadRows(skip_bad, "WIT images")
            for lang in per_lang:
                for inst in per_lang[lang]:
                    if inst.image_data is None:
                        bad(inst.at, f"no image for url {inst.id!r} in the WIT image files")
                per_lang[lang] = [inst for inst in per_lang[lang] if inst.image_data is not None]
            bad.finish()
        return cls._align(per_lang, intersect=intersect, check_images=False, skip_bad=skip_bad,
                          name=f"wit/{'+'.join(files)}")


TRANSLATE_TEST_DIR = "annotations_machine-translate"


def read_iglue_translate_test(path: str | Path, test_set: ParallelTestSet, languages: Sequence[str] | None = None,
                              *, split: str = "test", system: str = "gmt") -> ParallelTestSet:
    """IGLUE's translate-test captions for ``test_set``'s instances, as a parallel test set.

    Layout: ``<dir>/annotations_machine-translate/{lang}/{split}_{system}.jsonl`` (``dir`` may
    also be that folder itself), rows as in ``annotations/`` (``{"id", "img_path",
    "sentences"}``) with each caption machine-translated into English (xFlickr&CO has files
    for every language but en). The result has the same images, in ``test_set``'s order, and
    the languages among ``languages`` (default: ``test_set``'s) that have a file; rows of ids
    outside ``test_set`` (e.g. a ``--max-instances`` subset) are ignored, and every instance
    of ``test_set`` must have a row with the same image.
    """
    path = Path(path)
    base = path / TRANSLATE_TEST_DIR if (path / TRANSLATE_TEST_DIR).is_dir() else path
    wanted = list(languages or test_set.languages)
    name = f"{base}/*/{split}_{system}.jsonl"
    found = [lang for lang in wanted if (base / lang / f"{split}_{system}.jsonl").is_file()]
    if not found:
        raise DataFormatError(f"{name}: no translate-test file for any of {wanted}")
    position = {image_id: i for i, image_id in enumerate(test_set.image_ids)}
    captions: dict[str, list[list[str]]] = {}
    for lang in found:
        file = base / lang / f"{split}_{system}.jsonl"
        nested: list[list[str] | None] = [None] * len(test_set)
        for row in read_iglue_jsonl(file):
            i = position.get(row.id)
            if i is None:
                continue
            original = Path(test_set.image_paths[i]).as_posix()
            if original != row.img_path and not original.endswith("/" + row.img_path.lstrip("/")):
                raise DataFormatError(f"{where_in_file(row.file, row.line)}: id {row.id!r} has image {row.img_path!r}, "
                                      f"the test set has {test_set.image_paths[i]!r}")
            nested[i] = list(row.sentences)
        missing = [test_set.image_ids[i] for i, c in enumerate(nested) if c is None]
        if missing:
            raise DataFormatError(f"{file}: no row for id {missing[0]!r} of the test set ({len(missing)} such ids); "
                                  "translate-test needs every instance")
        captions[lang] = nested
    return ParallelTestSet(test_set.image_ids, test_set.image_paths, captions, scenes=test_set.scenes,
                           image_data=test_set.image_data, name=f"{test_set.name} translate-test ({system})")
