"""Streamed image sources for building a gallery: a folder, an explicit list, a parallel test
set (IGLUE), CCRK part files with base64 or path images, WIT's ``url<TAB>base64`` CSV files.

Why streamed: a real corpus (WIT's image files are many GB of base64; CCRK's parts hold
millions of rows) does not fit in memory, and a sharded build needs every process to walk the
same item sequence while decoding only its own shard. So a source yields ``SourceItem``s in
input order -- an id, the record kept in items.jsonl, and a ``load`` callable that decodes the
image only when called. Walking a source reads its text (one line at a time for part and CSV
files) but decodes no image; an item holds at most its own line's base64 text.

Bad images, per source (``skip_bad``): a folder is scanned, so a file that is not a readable
image is skipped and counted (one GalleryWarning, as ``Gallery.build`` does); every other
source names its images explicitly, so an unreadable one is an error naming the file and
line. A malformed row of a part or CSV file is always an error naming the file and line.
Readers and decoders come from ``ccr_demo.data`` (``readers``, ``images``, ``testset``); WIT's
image files are read line by line (``iter_wit_image_lines``), since ``read_wit_images`` builds a
dict for a chosen set of urls. A folder is listed by ``ccr_demo.gallery.items.scan_folder``, as
``Gallery.build`` lists it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

from PIL import Image

from ccr_demo.data.errors import BadRows, DataFormatError
from ccr_demo.data.images import decode_base64, load_image
from ccr_demo.data.readers.ccrk_pretrain import pretrain_files, pretrain_rows
from ccr_demo.data.readers.wit import iter_wit_image_lines, wit_image_files
from ccr_demo.data.testset import ParallelTestSet
from ccr_demo.gallery.items import scan_folder

__all__ = ["SourceItem", "ImageSource", "FolderSource", "PathListSource", "TestSetSource", "CcrkPartSource",
           "WitImageSource"]


@dataclass(frozen=True, slots=True)
class SourceItem:
    """One image to embed: its gallery id, its items.jsonl record (beyond the id), and how to decode it."""

    id: str
    record: dict  # e.g. {"path": ...}; merged into the item's items.jsonl line
    load: Callable[[], Image.Image]  # decodes on call; raises DataFormatError naming the image


class ImageSource:
    """An ordered, lazily walked sequence of SourceItems.

    ``describe()`` names the inputs (recorded in a build's work folder, so a resumed build is
    refused when it reads other inputs); ``count()`` is the number of items when known cheaply
    (for the progress bar), else None; ``skip_bad``: unreadable images are skipped, not errors.
    """

    skip_bad = False
    # every item is an image file (its record has a "path"): a build needs no thumbnails for it
    all_files = False

    def __iter__(self) -> Iterator[SourceItem]:
        raise NotImplementedError

    def describe(self) -> dict:
        raise NotImplementedError

    def count(self) -> int | None:
        return None

    def input_paths(self) -> list[Path]:
        """Files and folders this source reads (a build's outputs must not overlap them)."""
        return []


class FolderSource(ImageSource):
    """Every file under a folder (recursive, sorted, hidden ones left out); id = path relative to
    the folder. Files that are not readable images are skipped and counted."""

    skip_bad = True
    all_files = True

    def __init__(self, root: str | Path):
        self.root = Path(root)
        if not self.root.is_dir():
            raise (NotADirectoryError if self.root.exists() else FileNotFoundError)(
                f"{self.root}: not a folder of images")
        self._ids, self._paths = scan_folder(self.root)  # names only: no image is opened here

    def __iter__(self) -> Iterator[SourceItem]:
        for i, p in zip(self._ids, self._paths):
            yield SourceItem(i, {"path": str(p)}, lambda p=p: load_image(p))

    def describe(self) -> dict:
        return {"format": "folder", "path": str(self.root.resolve())}

    def count(self) -> int:
        return len(self._ids)

    def input_paths(self) -> list[Path]:
        return [self.root]


class PathListSource(ImageSource):
    """Image files named one by one (id = the path as given, or ``ids``); an unreadable one is an error."""

    all_files = True

    def __init__(self, paths: Sequence[str | Path], ids: Sequence[str] | None = None):
        self.paths = [str(p) for p in paths]
        self.ids = [str(p) for p in (ids if ids is not None else self.paths)]
        if len(self.ids) != len(self.paths):
            raise ValueError(f"{len(self.ids)} ids for {len(self.paths)} image paths")

    def __iter__(self) -> Iterator[SourceItem]:
        for i, p in zip(self.ids, self.paths):
            yield SourceItem(i, {"path": str(Path(p).resolve())}, lambda p=p: load_image(p))

    def describe(self) -> dict:
        return {"format": "paths", "count": len(self.paths), "first": self.paths[:1]}

    def count(self) -> int:
        return len(self.paths)


class TestSetSource(ImageSource):
    """The images of a parallel test set (IGLUE layout; ids = the test set's image ids), from their
    files or their base64 data; an unreadable one is an error naming it."""

    __test__ = False  # not a pytest test class

    def __init__(self, test_set: ParallelTestSet, description: dict | None = None, roots: Sequence[Path] = ()):
        self.test_set = test_set
        self._description = description or {"format": "test_set", "name": test_set.name}
        self._roots = list(roots)
        self.all_files = test_set.image_data is None or all(d is None for d in test_set.image_data)

    def __iter__(self) -> Iterator[SourceItem]:
        ts = self.test_set
        for i, image_id in enumerate(ts.image_ids):
            has_data = ts.image_data is not None and ts.image_data[i] is not None
            record = {} if has_data else {"path": str(Path(ts.image_paths[i]).resolve())}
            yield SourceItem(image_id, record, lambda i=i: ts.load_image(i))

    def describe(self) -> dict:
        return dict(self._description, count=len(self.test_set))

    def count(self) -> int:
        return len(self.test_set)

    @classmethod
    def from_iglue(cls, path: str | Path, languages: Sequence[str] | None = None) -> "TestSetSource":
        ts = ParallelTestSet.from_iglue(path, languages, check_images=True)
        return cls(ts, {"format": "iglue", "path": str(Path(path).resolve()), "languages": ts.languages},
                   roots=[Path(path)])

    def input_paths(self) -> list[Path]:
        return list(self._roots)


class CcrkPartSource(ImageSource):
    """Rows of CCRK pretraining part files (``part_*.data``: a folder or given files), each with its
    image as a path (``image_path``) or base64 (``image``/``binary``/``image_base64``).

    id = ``part_file_name:line`` (rows have no id of their own; a part's name and line are
    unique). Rows are read one at a time; a base64 image is re-read from its line by byte
    offset when decoded (``PretrainRecord.load_image``), so walking the source keeps no image.
    Image paths must stay inside ``image_root`` (default: the part file's folder).
    """

    def __init__(self, source: str | Path | Sequence[str | Path], image_root: str | Path | None = None):
        self.source = source
        self.files = pretrain_files(source)
        self.image_root = image_root

    def __iter__(self) -> Iterator[SourceItem]:
        bad = BadRows(False, str(self.source))
        for path in self.files:
            root = str(self.image_root) if self.image_root is not None else str(path.parent)
            for rec in pretrain_rows(path, str(path), root, None, False, bad):
                record = {"path": os.path.abspath(rec.image_path)} if rec.image_path is not None else {}
                yield SourceItem(f"{path.name}:{rec.line}", record, rec.load_image)

    def describe(self) -> dict:
        return {"format": "ccrk", "files": [str(f.resolve()) for f in self.files],
                "image_root": None if self.image_root is None else str(Path(self.image_root).resolve())}

    def input_paths(self) -> list[Path]:
        return list(self.files) + ([Path(self.image_root)] if self.image_root is not None else [])


class WitImageSource(ImageSource):
    """WIT image files: ``url<TAB>base64`` a line, one file or a folder of ``*.csv`` / ``*.tsv``
    (sorted by name); id = the url. Read a line at a time: an item holds its own line only."""

    def __init__(self, source: str | Path):
        self.source = Path(source)
        self.files = wit_image_files(self.source)

    def __iter__(self) -> Iterator[SourceItem]:
        for path in self.files:
            lines = 0
            for lineno, url, data, problem in iter_wit_image_lines(path):
                lines += 1
                at = f"{path}, line {lineno}"
                if problem:
                    raise DataFormatError(f"{at}: {problem}")
                label = f"{at} (base64 image of {url})"
                text = data.decode("ascii", "replace")
                yield SourceItem(url, {}, lambda t=text, label=label: load_image(decode_base64(t, label), name=label))
            if lines == 0:
                raise DataFormatError(f"{path}: file is empty")

    def describe(self) -> dict:
        return {"format": "wit", "files": [str(f.resolve()) for f in self.files]}

    def input_paths(self) -> list[Path]:
        return [self.source]
