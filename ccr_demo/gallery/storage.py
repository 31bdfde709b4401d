"""A gallery folder on disk: its file names and format, reading and writing items.jsonl and
vectors.npy with their checks, and what lets a gallery be larger than memory.

What is read is checked, because a gallery folder may come from elsewhere (a download, a Hub
snapshot): gallery.json must describe a gallery this version can read (``read_info``); every
record of items.jsonl must be an object with a string id whose "path" resolves, symlinks
followed, inside the gallery folder or a declared image root (``record_checker``, through
``ccr_demo.utils.paths``; ``Gallery.image_file`` checks again where it leads each time it hands
the file out); ids are unique; vectors are finite unit rows (``check_vectors``);
the files match the checksums gallery.json records (``verify_checksums``). An existing folder is
only ever replaced when it is a gallery (``replace_problem``).

Larger than memory: ``Gallery.load(dir, mmap=True)`` keeps ``vectors.npy`` memory-mapped
(``np.load(mmap_mode="r")``) and ``items.jsonl`` on disk (``ItemsFile``). Every pass over all
vectors (exact scores for top-k and ranks, the load-time checks) goes through ``chunks``:
``SCAN_ROWS`` rows at a time, upcast to float32 into one reused buffer, and the chunk's pages
are released from the process's mapping after it (``madvise(MADV_DONTNEED)``; the OS page cache
may keep them, so a repeated pass reads from RAM when RAM allows). Resident memory then stays at
one chunk plus the [queries, count] float32 score rows, whatever the file size. In-memory
float32 galleries go through the same chunks (views, no copy), so a memory-mapped gallery and an
in-memory one give bit-identical scores.
"""

from __future__ import annotations

import json
import mmap
import os
import threading
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch

from ccr_demo.gallery import thumbnails
from ccr_demo.gallery.errors import GalleryError
from ccr_demo.utils.hashing import file_sha256
from ccr_demo.utils.paths import is_inside

# 1: float32 vectors.npy; 2: vectors.npy may be float16 ("vectors_dtype"). float32 galleries are
# still written as 1, so older ccr_demo versions keep reading them.
FORMAT_VERSION = 2


INFO_NAME, INDEX_NAME, VECTORS_NAME, ITEMS_NAME = "gallery.json", "index.faiss", "vectors.npy", "items.jsonl"


KINDS = ("image", "text")
# rows per chunk of an exact pass: 2**16 x 256 float32 = 64 MB (one reused buffer)
SCAN_ROWS = 1 << 16
VECTOR_DTYPES = ("float32", "float16")


def check_dtype(dtype: str) -> str:
    """A storage dtype name, checked: "float32" (default) or "float16" (half the disk and RAM)."""
    if dtype not in VECTOR_DTYPES:
        raise ValueError(f"vectors_dtype must be one of {VECTOR_DTYPES}, got {dtype!r}")
    return dtype


def release(vectors: np.ndarray, start: int, stop: int) -> None:
    """Drop rows [start, stop) of a memory-mapped array from this process's resident set.

    A no-op for in-memory arrays and where the OS has no MADV_DONTNEED. The mapping stays valid:
    a later read of those rows faults them in again (from the page cache when it still holds them).
    """
    mm = getattr(vectors, "base", None)
    if not isinstance(vectors, np.memmap) or not isinstance(mm, mmap.mmap) or not hasattr(mmap, "MADV_DONTNEED"):
        return
    row = vectors.strides[0]
    map_start = vectors.offset - vectors.offset % mmap.ALLOCATIONGRANULARITY  # where numpy's mapping begins
    lo = vectors.offset - map_start + start * row
    hi = vectors.offset - map_start + stop * row
    lo -= lo % mmap.PAGESIZE  # madvise needs a page-aligned start
    hi = min(len(mm), hi)
    if hi > lo:
        mm.madvise(mmap.MADV_DONTNEED, lo, hi - lo)


def chunks(vectors: np.ndarray, rows: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """(first row, float32 [r, D] chunk) over all rows, ``SCAN_ROWS`` at a time.

    In-memory float32 rows are yielded as views; memory-mapped or float16 rows are copied
    (upcast) into one reused buffer, and memory-mapped pages are released right after the copy.
    The chunk is only valid until the next one is produced. float16 rows are first copied as
    they are (a plain memcpy, also what reads a mapped file) and then upcast by torch, whose
    vectorised conversion was several times faster than numpy's cast in a quick check here.
    """
    n = len(vectors)
    step = max(1, rows or SCAN_ROWS)
    mapped = isinstance(vectors, np.memmap)
    buf = stage = None
    for start in range(0, n, step):
        part = vectors[start:start + step]
        if part.dtype == np.float32 and not mapped:
            yield start, part
            continue
        if buf is None:
            buf = np.empty((min(step, n), vectors.shape[1]), np.float32)
            stage = None if part.dtype == np.float32 else np.empty(buf.shape, part.dtype)
        out = buf[:len(part)]
        if stage is None:
            np.copyto(out, part)
        else:
            np.copyto(stage[:len(part)], part)
            torch.from_numpy(out).copy_(torch.from_numpy(stage[:len(part)]))
        release(vectors, start, start + len(part))
        yield start, out


def rows_f32(vectors: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """vectors[rows] as float32: reads only those rows of a memory-mapped file."""
    return np.asarray(vectors[rows], dtype=np.float32)


def check_vectors(vectors: np.ndarray, path: Path, error: type[Exception]) -> None:
    """Every row finite and of unit norm (what save wrote), checked chunk by chunk.

    A NaN row would rank first with score nan. float16 rows are within ~5e-4 of unit norm
    after rounding, inside the 1e-3 tolerance.
    """
    nonfinite, first_bad, off, first_off, off_norm = 0, -1, 0, -1, 0.0
    for start, chunk in chunks(vectors):
        norms = np.sqrt(np.einsum("ij,ij->i", chunk, chunk))  # no chunk-sized temporaries
        suspect = np.flatnonzero(~np.isfinite(norms))  # NaN/inf in the row, or squares that overflow
        bad = suspect[~np.isfinite(chunk[suspect]).all(axis=1)]
        if len(bad):
            nonfinite += len(bad)
            first_bad = start + bad[0] if first_bad < 0 else first_bad
        wrong = np.setdiff1d(np.flatnonzero(~(np.abs(norms - 1) <= 1e-3)), bad)
        if len(wrong):
            off += len(wrong)
            if first_off < 0:
                first_off, off_norm = start + wrong[0], norms[wrong[0]]
    if nonfinite:
        raise error(f"{path}: {nonfinite} row(s) hold NaN or inf, e.g. row {first_bad}: the file is corrupt; "
                    "rebuild the gallery")
    if off:
        raise error(f"{path}: {off} row(s) are not unit vectors, e.g. row {first_off} has norm "
                    f"{off_norm:.4g}: the file is corrupt or not written by this tool; rebuild the gallery")


class ItemsFile(Sequence):
    """items.jsonl read on demand: ``items[row]`` parses that one line (10M parsed records would
    be gigabytes of Python dicts, a few hundred bytes each; this keeps two int64 offsets per row).

    ``check`` is the per-record check ``Gallery`` applies on every load (an object with a string
    id, paths resolving inside the allowed roots); it runs on each record as it is read, and on
    every record at open time when ``validate`` (which also checks that ids are unique).
    """

    def __init__(self, path: Path, check, validate: bool, error: type[Exception]):
        self.path, self._check, self._error = Path(path), check, error
        self._lock = threading.Lock()
        self._file = open(self.path, "rb")  # noqa: SIM115 -- held for the gallery's lifetime
        self._starts, self._ends = self._scan_validated() if validate else self._scan_lines()

    def _scan_lines(self) -> tuple[np.ndarray, np.ndarray]:
        """Offsets of the non-empty lines, from a chunked newline search (no parsing)."""
        newlines, base = [], 0
        with open(self.path, "rb") as f:
            while block := f.read(1 << 22):
                newlines.append(np.flatnonzero(np.frombuffer(block, np.uint8) == 10) + base)
                base += len(block)
        ends = np.concatenate(newlines + [np.array([base], np.int64)]).astype(np.int64)
        starts = np.concatenate([[0], ends[:-1] + 1]).astype(np.int64)
        keep = ends > starts
        return starts[keep], ends[keep]

    def _scan_validated(self) -> tuple[np.ndarray, np.ndarray]:
        """Parse and check every record, and that ids are unique (by hash, then exactly).

        Lines are parsed a block at a time by one ``json.loads`` of "[line,line,...]" (a block
        that fails, or yields a different count, is parsed line by line to name the bad line).
        """
        starts, ends, hashes = [], [], []
        offset, lineno = 0, 0
        with open(self.path, "rb") as f:
            while lines := f.readlines(1 << 22):
                lengths = np.fromiter(map(len, lines), np.int64, len(lines))
                begin = offset + np.cumsum(lengths) - lengths
                keep = [i for i, line in enumerate(lines) if line.strip()]
                block = [lines[i] for i in keep]
                records = self._parse_block(block, [lineno + i + 1 for i in keep])
                ids = [r.get("id") if type(r) is dict else None for r in records]
                # the full check only where it can fail or has work to do (a path to resolve)
                for j in [j for j, (r, x) in enumerate(zip(records, ids)) if type(x) is not str or "path" in r
                          or "thumbnail" in r]:
                    self._check(records[j], f"{self.path}:{lineno + keep[j] + 1}")
                keep_np = np.asarray(keep, np.int64)
                starts.append(begin[keep_np])
                ends.append(begin[keep_np] + lengths[keep_np])  # the newline too: json ignores it
                hashes.append(np.fromiter(map(hash, ids), np.int64, len(ids)))
                offset += int(lengths.sum())
                lineno += len(lines)
        starts_np = np.concatenate(starts) if starts else np.zeros(0, np.int64)
        ends_np = np.concatenate(ends) if ends else np.zeros(0, np.int64)
        h = np.concatenate(hashes) if hashes else np.zeros(0, np.int64)
        order = np.argsort(h, kind="stable")
        same = np.flatnonzero(h[order][1:] == h[order][:-1])
        for i in same:  # equal hashes need not be equal ids: compare the ids themselves
            a, b = sorted((int(order[i]), int(order[i + 1])))
            id_a, id_b = (json.loads(self._line(starts_np[r], ends_np[r]))["id"] for r in (a, b))
            if id_a == id_b:
                raise self._error(f"{self.path}: id {id_a!r} appears on record {a + 1} and record {b + 1}: ids must "
                                  "be unique; the file is corrupt, rebuild the gallery")
        return starts_np, ends_np

    def _parse_block(self, lines: list[bytes], linenos: list[int]) -> list:
        try:
            records = json.loads(b"[" + b",".join(lines) + b"]")
            if isinstance(records, list) and len(records) == len(lines):
                return records
        except (json.JSONDecodeError, UnicodeDecodeError):
            pass
        return [self._decode(line, n) for line, n in zip(lines, linenos)]

    def _decode(self, line: bytes, lineno) -> object:
        try:
            return json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise self._error(f"{self.path}:{lineno}: not valid JSON: {e}") from None

    def _line(self, start: int, end: int) -> bytes:
        with self._lock:
            self._file.seek(start)
            return self._file.read(end - start)

    def _parse(self, line: bytes, where: str) -> dict:
        return self._check(self._decode(line, where), f"{self.path}:{where}")

    def __len__(self) -> int:
        return len(self._starts)

    def __getitem__(self, row):
        if isinstance(row, slice):
            return [self[i] for i in range(*row.indices(len(self)))]
        row = int(row)
        if row < 0:
            row += len(self)
        if not 0 <= row < len(self):
            raise IndexError(f"row {row} out of range for {len(self)} items")
        return self._parse(self._line(self._starts[row], self._ends[row]), f"record {row + 1}")

    def close(self) -> None:
        self._file.close()

    def __del__(self):
        try:
            self._file.close()
        except Exception:  # noqa: BLE001 -- interpreter shutdown
            pass


def write_vectors(path: Path, vectors: np.ndarray, dtype: str) -> None:
    """vectors.npy in the gallery's dtype, converted chunk by chunk (no full-size copy)."""
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.dtype(dtype), shape=vectors.shape)
    for start, chunk in chunks(vectors):
        out[start:start + len(chunk)] = chunk
    out.flush()
    del out


GALLERY_FILES = frozenset({INFO_NAME, INDEX_NAME, VECTORS_NAME, ITEMS_NAME, thumbnails.FOLDER})


def replace_problem(path: Path) -> str | None:
    """Why writing a gallery at ``path`` would destroy something (None: nothing there, or a
    gallery folder holding nothing but gallery files)."""
    if not os.path.lexists(path):
        return None
    if path.is_symlink():
        return "is a symbolic link"
    if not path.is_dir():
        return "is a file, not a gallery folder"
    try:
        names = {p.name for p in path.iterdir()}
    except OSError as e:
        return f"cannot be listed ({e.strerror})"
    if not names:
        return None
    if INFO_NAME not in names:
        return f"is a folder that is not a gallery (no {INFO_NAME}; it holds {len(names)} entries)"
    others = sorted(names - GALLERY_FILES)
    thumbs = path / thumbnails.FOLDER
    if thumbnails.FOLDER in names and (thumbs.is_symlink() or not thumbs.is_dir()
                                       or not thumbnails.is_own_folder(thumbs)):
        others.append(f"{thumbnails.FOLDER} (holds what no build wrote)")
    if others:
        more = " ..." if len(others) > 3 else ""
        return f"holds files that are not part of a gallery ({', '.join(others[:3])}{more})"
    return None


def write_items(path: Path, items: list[dict], directory: Path) -> None:
    """items.jsonl; paths relative to the gallery folder when the file lies under its parent."""
    with open(path, "w", encoding="utf-8") as f:
        for r in items:
            if "path" in r:
                r = dict(r, path=_relative(r["path"], directory))
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def _relative(path: str, directory: Path) -> str:
    try:
        rel = os.path.relpath(path, directory)
    except ValueError:  # another drive (Windows)
        return path
    return path if rel.startswith(os.path.join(os.pardir, os.pardir)) else Path(rel).as_posix()


def record_checker(directory: Path, roots: Sequence[Path]):
    """check(record, where) -> the record with its path resolved, or GalleryError: an object with a
    string id whose "path" (if any) resolves inside ``roots`` (resolved folders,
    ``ccr_demo.utils.paths.resolved_roots``) and whose "thumbnail" (if any) is
    a thumbnail name (``ccr_demo.gallery.thumbnails``: checked by its text here, where it leads at use).
    ``where`` (str, or a function giving it, so a million checks format no message) names the
    record in errors."""
    base = directory.resolve()

    def check(r, where) -> dict:
        if callable(where) and (not isinstance(r, dict) or not isinstance(r.get("id"), str) or "path" in r):
            where = where()
        if not isinstance(r, dict) or not isinstance(r.get("id"), str):
            raise GalleryError(f"{where}: expected an object with a string 'id'")
        if "path" in r:
            if not isinstance(r["path"], str) or not r["path"] or "\0" in r["path"]:
                raise GalleryError(f"{where}: 'path' must be a non-empty string, got {r['path']!r}")
            resolved = (base / r["path"]).resolve()
            if not is_inside(resolved, roots):
                raise GalleryError(
                    f"{where}: item path {r['path']!r} resolves to {resolved}, outside "
                    + ("the gallery folder" if len(roots) == 1 else
                       "the gallery folder and the image roots " + ", ".join(str(x) for x in roots[1:]))
                    + ": a gallery's images must lie inside its folder or a declared image root "
                    "(Gallery.load(..., image_root=DIR), `--image-root DIR`, CCR_IMAGE_ROOT in the app)")
            r["path"] = str(resolved)
        if thumbnails.KEY in r:
            try:
                thumbnails.check_name(r[thumbnails.KEY], where)
            except ValueError as e:
                raise GalleryError(str(e)) from None
        return r

    return check


def read_items(path: Path, directory: Path, roots: Sequence[Path]) -> list[dict]:
    """items.jsonl, checked: objects with unique string ids, paths inside ``roots``."""
    items, seen = [], {}
    check = record_checker(directory, roots)
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                r = json.loads(line)
            except json.JSONDecodeError as e:
                raise GalleryError(f"{path}:{lineno}: not valid JSON: {e}") from None
            r = check(r, f"{path}:{lineno}")
            if r["id"] in seen:
                raise GalleryError(f"{path}:{lineno}: id {r['id']!r} already appears on line {seen[r['id']]}: "
                                   "ids must be unique; the file is corrupt, rebuild the gallery")
            seen[r["id"]] = lineno
            items.append(r)
    return items


def read_info(directory: str | Path) -> dict:
    """gallery.json, checked: the keys every reader needs, of the right types, and a format version
    this ccr_demo reads (a newer one says "upgrade ccr_demo")."""
    path = Path(directory) / INFO_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: {directory} is not a saved gallery")
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise GalleryError(f"{path} is not valid JSON: {e}") from None
    keys = {"format_version", "kind", "count", "embed_dim", "model_fingerprint", "index_factory"}
    if not isinstance(info, dict) or not keys <= set(info):
        raise GalleryError(f"{path} is not a gallery description (needs keys {sorted(keys)})")
    for key in ("format_version", "count", "embed_dim"):
        if isinstance(info[key], bool) or not isinstance(info[key], int) or info[key] < 0:
            raise GalleryError(f"{path}: {key} must be a non-negative integer, got {info[key]!r}")
    if info["format_version"] > FORMAT_VERSION:
        raise GalleryError(f"{path} has format_version {info['format_version']}; this ccr_demo reads up to "
                           f"{FORMAT_VERSION}: upgrade ccr_demo")
    if info["kind"] not in KINDS:
        raise GalleryError(f"{path}: kind must be one of {KINDS}, got {info['kind']!r}")
    if not isinstance(info["index_factory"], str):
        raise GalleryError(f"{path}: index_factory must be a string, got {info['index_factory']!r}")
    dtype = info.setdefault("vectors_dtype", "float32")
    if dtype not in VECTOR_DTYPES:
        raise GalleryError(f"{path}: vectors_dtype must be 'float32' or 'float16', got {dtype!r}")
    return info


CHECKSUMMED = (VECTORS_NAME, ITEMS_NAME)


def checksums(directory: Path) -> dict[str, str]:
    """The sha256 of the files gallery.json records them for (streamed: memory stays flat)."""
    return {name: file_sha256(directory / name) for name in CHECKSUMMED}


def verify_checksums(directory: Path, info: dict) -> None:
    """GalleryError unless vectors.npy and items.jsonl match the sha256 gallery.json records
    (galleries written before checksums were recorded have none to check)."""
    sums = info.get("sha256") or {}
    for name in CHECKSUMMED:
        if name in sums and file_sha256(directory / name) != sums[name]:
            raise GalleryError(f"{directory / name} does not match the sha256 that {INFO_NAME} records: it "
                               "was edited, reordered or corrupted after the gallery was written; rebuild "
                               "the gallery")
