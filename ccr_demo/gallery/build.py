"""Build an image gallery sharded across processes and machines, resumable after a kill.

Launch the gallery command under ``accelerate launch`` or ``torchrun`` and every process
embeds its shard on its own device; a plain ``python -m ccr_demo.gallery build`` is the same
code with one process. The topology comes from accelerate's ``PartialState``.

Why results do not depend on the number of processes: the input stream (``ccr_demo.gallery.sources``)
is cut into fixed chunks of ``batch_size`` items in input order, chunk c belongs to process
c % N, and each chunk is encoded as one batch with ``threads`` intra-op threads. A chunk's
vectors are therefore computed from the same batch by the same arithmetic whatever N is, and
the main process merges the chunks in input order: with 1 or N processes (on the same kind of
device) vectors.npy and items.jsonl are byte-identical. The thread count is fixed by the build,
not taken from the launcher, because it changes the arithmetic: a CPU convolution splits its
work, and so the order of its float sums, by the number of threads (rows differed by up to
3e-8 between 1 and 2 threads), and ``torchrun`` sets OMP_NUM_THREADS=1 where a plain process
uses every core.

The work folder (default ``OUT.parts``; on several machines it must be on storage they
share) holds, per chunk, ``chunk-NNNNNNN.jsonl`` (one line per input item: its record, or
``{"skipped": {"id", "error"}}`` for an unreadable folder file), ``chunk-NNNNNNN.npy``
(float32 [kept, D]) and, for images with no file of their own (base64 rows), their
thumbnails (``thumbnails/NNNNNNN/``, ``ccr_demo.gallery.thumbnails``), each written to a temporary
name and renamed, the .npy last: a chunk whose .npy exists is finished, and a rerun of the
same command (any number of processes) skips it. ``manifest.json`` records the model
fingerprint, the inputs, the batch size, the threads and the thumbnail size the folder belongs
to; a folder of another build is refused. The folder is removed only after the gallery has been
saved.

One build at a time per work folder: every process of a build holds its own lock on it
(``lock-RANK.lock``, a ``filelock`` OS lock, released by the OS when the process dies, so a
killed build leaves no stale lock) with its pid and host beside it (``lock-RANK.json``). The main
process refuses to start while any process of an earlier build still holds one: killing only a
launcher (``torchrun``) leaves its workers writing chunks, and a resumed build in the same
folder would then mix its chunks with theirs.

After every process has finished (a barrier with a long timeout: shards can take hours), the
main process reads the chunks in order into one [N, D] array (nothing else is held), trains
the index (IVF/PQ: on a sample, ``train_size``) and fills it (``Gallery.from_vectors``),
records how the gallery was built in ``gallery.build`` (gallery.json's "build") and saves it.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import socket
import time
import warnings
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from filelock import FileLock, Timeout
from tqdm import tqdm

from ccr_demo.data.errors import DataFormatError
from ccr_demo.gallery import thumbnails
from ccr_demo.gallery.errors import GalleryError, GalleryWarning
from ccr_demo.gallery.gallery import Gallery
from ccr_demo.gallery.sources import ImageSource, SourceItem
from ccr_demo.model.fingerprint import check_finite, weights_fingerprint
from ccr_demo.utils.fileio import atomic_write_bytes, atomic_write_json, atomic_write_text
from ccr_demo.utils.paths import is_inside

WORK_FORMAT = "ccr_demo gallery build work folder"
WORK_VERSION = 1
MANIFEST_NAME = "manifest.json"
# Processes wait for the slowest shard at one barrier; the default 30 min of torch.distributed is too short.
BARRIER_TIMEOUT = timedelta(hours=24)
# Intra-op threads each process encodes with, whatever the launcher set (see the module docstring).
# 1 is what torchrun gives each process; more cores are used by more processes, which was also
# faster than more threads per process (docs/bench/bench_build.md).
BUILD_THREADS = 1
# This build's files in the work folder that are not chunks: the per-process locks and their holders.
LOCK_NAME = re.compile(r"lock-\d+\.(lock|json)")


def process_state(cpu: bool | None = None):
    """accelerate's PartialState for this process (one plain process, or one of a launched group).

    ``cpu`` None: on CPU when no accelerator is present or ``ACCELERATE_USE_CPU`` is set, which is
    what lets ``torchrun``/``accelerate launch`` form a CPU group (gloo) on a machine without GPUs.
    """
    from accelerate import PartialState

    if cpu is None:
        cpu = (os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes")
               or not torch.accelerator.is_available())
    return PartialState(cpu=cpu, timeout=BARRIER_TIMEOUT)


def default_work_dir(out: str | Path) -> Path:
    """``OUT.parts`` beside the gallery folder: its chunks, kept until the gallery is saved."""
    out = Path(out).absolute()
    return out.with_name(out.name + ".parts")


def _chunk_paths(work: Path, c: int) -> tuple[Path, Path]:
    return work / f"chunk-{c:07d}.jsonl", work / f"chunk-{c:07d}.npy"


def _chunks(source: ImageSource, batch_size: int) -> Iterator[tuple[int, list[SourceItem]]]:
    """(chunk number, items) in input order; every process walks this same sequence. Ids must be unique."""
    seen: set[str] = set()
    chunk: list[SourceItem] = []
    c = 0
    for item in source:
        if item.id in seen:
            raise ValueError(f"id {item.id!r} appears twice in the inputs ({source.describe().get('format')}): "
                             "gallery ids must be unique")
        seen.add(item.id)
        chunk.append(item)
        if len(chunk) == batch_size:
            yield c, chunk
            c, chunk = c + 1, []
    if chunk:
        yield c, chunk


def _decode(item: SourceItem, thumbnail_size: int):
    """(the item's image, its thumbnail's JPEG bytes or None), or the DataFormatError saying why
    it cannot be read. Only an image with no file of its own gets a thumbnail."""
    try:
        image = item.load()
    except DataFormatError as e:
        return e
    wanted = thumbnail_size > 0 and "path" not in item.record
    return image, thumbnails.jpeg_bytes(image, thumbnail_size) if wanted else None


def _manifest(fingerprint: str, source: ImageSource, batch_size: int, threads: int, thumbnail_size: int) -> dict:
    return {"format": WORK_FORMAT, "version": WORK_VERSION, "kind": "image", "model_fingerprint": fingerprint,
            "inputs": source.describe(), "batch_size": batch_size, "threads": threads,
            "thumbnail_size": thumbnail_size}


def _read_manifest(work: Path) -> dict | None:
    path = work / MANIFEST_NAME
    if not path.is_file():
        return None
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ValueError(f"{path} is not readable JSON ({e}): not using {work} as a build work folder") from None
    if not isinstance(found, dict) or found.get("format") != WORK_FORMAT:
        raise ValueError(f"{path} is not a gallery build manifest: not using {work} as a build work folder")
    return found


def _check_same_build(work: Path, found: dict, wanted: dict) -> None:
    found = {"thumbnail_size": 0, **found}  # folders of builds older than thumbnails hold none
    # threads: chunks encoded with another count would differ in their last bits (folders written
    # before the count was recorded say null, and are refused: their count is unknown)
    differ = [k for k in ("version", "model_fingerprint", "inputs", "batch_size", "threads", "kind",
                          "thumbnail_size") if found.get(k) != wanted.get(k)]
    if differ:
        what = "; ".join(f"{k}: {json.dumps(found.get(k))} there, {json.dumps(wanted.get(k))} now" for k in differ)
        hint = (f" (--thumbnails {found['thumbnail_size']} resumes it)" if differ == ["thumbnail_size"] else
                f" (--threads {found['threads']} resumes it)" if differ == ["threads"] and found.get("threads") else "")
        raise ValueError(f"{work} is the work folder of another build ({what}){hint}; delete it to start over, "
                         "or choose another --work-dir")


def _check_work_dir(work: Path, manifest: dict) -> None:
    """ValueError unless ``work`` is absent, empty, or the work folder of this same build."""
    if os.path.lexists(work) and (work.is_symlink() or not work.is_dir()):
        raise ValueError(f"{work} is not a folder: not using it as a build work folder")
    if work.is_dir():
        found = _read_manifest(work)
        if found is None:
            if any(not LOCK_NAME.fullmatch(p.name) for p in work.iterdir()):
                raise ValueError(f"{work} holds files but no {MANIFEST_NAME}: it is not a gallery build work "
                                 "folder; choose another --work-dir")
        else:
            _check_same_build(work, found, manifest)


def _lock_path(work: Path, rank: int) -> Path:
    return work / f"lock-{rank}.lock"


def _holder_path(lock: Path) -> Path:
    """Who holds ``lock`` is written beside it, not in it: a process trying the lock opens the lock file."""
    return lock.with_suffix(".json")


def _in_use(work: Path, lock: Path) -> GalleryError:
    """The refusal of a build whose work folder another build holds, naming the holder."""
    try:
        h = json.loads(_holder_path(lock).read_text(encoding="utf-8"))
        holder = (f"pid {h['pid']} on host {h['host']} (process {h['rank']} of {h['processes']} of that build, "
                  f"holding it since {h['since']})")
    except (OSError, ValueError, KeyError, TypeError):
        holder = "a process that has not yet written who it is"
    return GalleryError(
        f"{work} is in use by another gallery build: {holder} holds {lock.name}. Two builds writing one work "
        "folder would mix their chunks, so this one does not start: wait for that build to finish, or stop it "
        "(after killing only a launcher such as torchrun its worker processes go on: stop those too), then "
        "rerun this command to resume from the finished chunks")


def claim_work_dir(work: str | Path, rank: int = 0, processes: int = 1) -> FileLock:
    """Lock the work folder for process ``rank`` of a build: its own ``lock-RANK.lock``, an OS
    lock (``filelock``: ``flock`` on Unix) that the OS releases when the process ends, however it
    ends, so a killed build leaves no stale lock. Its pid, host, rank and start time are written
    beside it for the message of a refused build. GalleryError naming the holder when another
    process holds it. Returns the held lock: ``release()`` it when the process stops writing."""
    lock_path = _lock_path(Path(work), rank)
    lock = FileLock(lock_path)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise _in_use(Path(work), lock_path) from None
    atomic_write_json(_holder_path(lock_path), {
        "pid": os.getpid(), "host": socket.gethostname(), "rank": rank, "processes": processes,
        "since": datetime.now(timezone.utc).isoformat(timespec="seconds")})
    return lock


def _check_no_other_builder(work: Path, own: Path) -> None:
    """GalleryError if a process of another build still holds one of the folder's locks (any
    rank: a build of 2 processes may have left its process 1 running)."""
    for path in sorted(work.glob("lock-*.lock")):
        if path == own:
            continue
        probe = FileLock(path)
        try:
            probe.acquire(timeout=0)
        except Timeout:
            raise _in_use(work, path) from None
        probe.release()


def _prepare_work_dir(work: Path, manifest: dict, processes: int) -> FileLock:
    """Main process: create the work folder, or check that an existing one belongs to this build;
    then lock it (refused while another build holds any of its locks). Returns the held lock."""
    _check_work_dir(work, manifest)  # before the lock file is made: never inside a folder of the user's
    work.mkdir(parents=True, exist_ok=True)
    lock = claim_work_dir(work, 0, processes)
    try:
        _check_no_other_builder(work, _lock_path(work, 0))
        _check_work_dir(work, manifest)  # again, now that no other build can be writing it
        for stale in work.glob("process-*.json"):  # per-process reports of an earlier, interrupted run
            stale.unlink()
        if _read_manifest(work) is None:
            atomic_write_json(work / MANIFEST_NAME, manifest)
    except BaseException:
        lock.release()
        raise
    return lock


@contextlib.contextmanager
def _work_dir_held(work: Path, manifest: dict, state) -> Iterator[None]:
    """The work folder prepared and locked by every process of this build (each its own lock),
    for as long as the processes write in it."""
    lock = None
    try:
        if state.is_main_process:
            lock = _prepare_work_dir(work, manifest, state.num_processes)
        state.wait_for_everyone()
        if not state.is_main_process:
            _check_same_build(work, _read_manifest(work) or {}, manifest)
            lock = claim_work_dir(work, state.process_index, state.num_processes)
        yield
    finally:
        if lock is not None:
            lock.release()


@contextlib.contextmanager
def _encoding_threads(threads: int) -> Iterator[None]:
    """torch's intra-op threads set to ``threads`` for the block, then restored: a build's vectors
    depend on the thread count, so it must not come from the launcher (see the module docstring)."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _reusable_chunk(work: Path, jsonl: Path, items: list[SourceItem]) -> bool:
    """Whether a finished chunk can be reused: only for the same ids in the same order (else
    ValueError), and only when its thumbnails are all on disk and not empty (thumbnails are not
    fsynced, so after a crash of the machine a chunk may need encoding again)."""
    ids, thumbs = [], []
    with open(jsonl, encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            ids.append(r["skipped"]["id"] if "skipped" in r else r["id"])
            if thumbnails.KEY in r:
                thumbs.append(work / r[thumbnails.KEY])
    wanted = [it.id for it in items]
    if ids != wanted:
        first = next((i for i, (a, b) in enumerate(zip(ids, wanted)) if a != b), min(len(ids), len(wanted)))
        raise ValueError(f"{jsonl} was written for other inputs (item {first}: "
                         f"{ids[first] if first < len(ids) else 'none'!r} there, "
                         f"{wanted[first] if first < len(wanted) else 'none'!r} now): the inputs changed since; "
                         "delete the work folder to start over")
    try:
        return all(p.stat().st_size > 0 for p in thumbs)
    except FileNotFoundError:
        return False


def _write_chunk(work: Path, c: int, lines: list[dict], vectors: np.ndarray) -> None:
    jsonl, npy = _chunk_paths(work, c)
    atomic_write_text(jsonl, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in lines))
    buf = io.BytesIO()
    np.save(buf, vectors, allow_pickle=False)
    atomic_write_bytes(npy, buf.getvalue())  # last: its presence marks the chunk finished


class _Encoder:
    """One process's shard: decode (optionally in threads, one chunk ahead) and encode its chunks."""

    def __init__(self, model, work: Path, skip_bad: bool, workers: int, bar: tqdm, thumbnail_size: int):
        self.model, self.work, self.skip_bad, self.bar = model, work, skip_bad, bar
        self.thumbnail_size = thumbnail_size
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix="decode") if workers > 0 else None
        self.pending: deque = deque()
        self.encoded: list[int] = []
        self.images_decoded = 0
        self.images_encoded = 0

    def submit(self, c: int, items: list[SourceItem]) -> None:
        futures = [self.pool.submit(_decode, it, self.thumbnail_size) for it in items] if self.pool else None
        self.pending.append((c, items, futures))
        while len(self.pending) > (1 if self.pool else 0):  # with threads: the next chunk decodes meanwhile
            self._finish(*self.pending.popleft())

    def drain(self) -> None:
        while self.pending:
            self._finish(*self.pending.popleft())

    def close(self) -> None:
        if self.pool:
            self.pool.shutdown(wait=True, cancel_futures=True)

    def _finish(self, c: int, items: list[SourceItem], futures) -> None:
        decoded = [f.result() for f in futures] if futures else [_decode(it, self.thumbnail_size) for it in items]
        self.images_decoded += len(items)
        images, lines = [], []
        for j, (item, got) in enumerate(zip(items, decoded)):
            if isinstance(got, DataFormatError):
                if not self.skip_bad:
                    raise got
                lines.append({"skipped": {"id": item.id, "error": str(got)}})
                continue
            image, thumb = got
            images.append(image)
            line = {"id": item.id, **{k: v for k, v in item.record.items() if k != "id"}}
            if thumb is not None:  # before the chunk's files: a finished chunk has all its thumbnails
                line[thumbnails.KEY] = thumbnails.name_for(c, j)
                atomic_write_bytes(self.work / line[thumbnails.KEY], thumb, fsync=False)
            lines.append(line)
        if images:
            vectors = self.model.encode_images(images, batch_size=len(images)).numpy().astype(np.float32)
        else:
            vectors = np.empty((0, self.model.config.embed_dim), dtype=np.float32)
        _write_chunk(self.work, c, lines, vectors)
        self.encoded.append(c)
        self.images_encoded += len(images)
        self.bar.update(len(items))


def _merge(work: Path, n_chunks: int) -> tuple[np.ndarray, list[dict], list[str]]:
    """Chunks in input order -> (vectors [N, D], records, skip errors), holding one array of all vectors."""
    shapes = []
    for c in range(n_chunks):
        npy = _chunk_paths(work, c)[1]
        if not npy.is_file():
            raise GalleryError(f"{npy} is missing after every process finished: the work folder {work} is "
                               "incomplete; rerun the build to encode the missing chunks")
        shapes.append(np.load(npy, mmap_mode="r", allow_pickle=False).shape)
    dims = {s[1] for s in shapes if s[0]}
    if len(dims) > 1:
        raise GalleryError(f"{work}: chunks hold vectors of different sizes {sorted(dims)}: delete the work folder")
    dim = dims.pop() if dims else 0
    vectors = np.empty((sum(s[0] for s in shapes), dim), dtype=np.float32)
    records, skipped, row = [], [], 0
    for c in range(n_chunks):
        jsonl, npy = _chunk_paths(work, c)
        v = np.load(npy, allow_pickle=False)
        kept = 0
        with open(jsonl, encoding="utf-8") as f:
            for line in f:
                r = json.loads(line)
                if "skipped" in r:
                    skipped.append(r["skipped"]["error"])
                else:
                    records.append(r)
                    kept += 1
        if kept != len(v) or v.dtype != np.float32:
            raise GalleryError(f"{npy} holds {len(v)} {v.dtype} vectors for the {kept} items of {jsonl.name}: "
                               f"the work folder {work} is corrupt; delete it and rebuild")
        vectors[row:row + kept] = v
        row += kept
    return vectors, records, skipped


def build_sharded(model, source: ImageSource, out: str | Path, *, work_dir: str | Path | None = None,
                  index_factory: str = "Flat", batch_size: int = 64, workers: int = 0,
                  train_size: int | None = None, search_params: str | None = None, overwrite: bool = False,
                  progress: bool = True, state: Any = None, vectors_dtype: str = "float32",
                  thumbnail_size: int | None = None, threads: int = BUILD_THREADS) -> Gallery | None:
    """Embed ``source``'s images across this launch's processes and save the gallery to ``out``.

    Every process of the launch calls this with the same arguments; process r encodes chunks
    c with c % N == r. Returns the saved Gallery on the main process, None on the others.
    ``workers``: threads decoding images (one chunk ahead of the encoder); 0 decodes inline.
    ``thumbnail_size``: the longer side of the thumbnails written for images that have no file
    (base64 rows), so the app can show them; None: ``thumbnails.default_size`` of the model's
    input size; 0: none.
    ``threads``: torch's intra-op threads each process encodes with, whatever the launcher set
    (OMP_NUM_THREADS): the vectors depend on it, so builds to compare or resume use the same.
    The work folder is locked while the build runs: a second build in it is a GalleryError
    naming the process that holds it.
    """
    if batch_size <= 0:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if thumbnail_size is None:
        thumbnail_size = thumbnails.default_size(model.config.image_size)
    if thumbnail_size < 0:
        raise ValueError(f"thumbnail_size must be >= 0 (0: no thumbnails), got {thumbnail_size}")
    if source.all_files:
        thumbnail_size = 0  # every image has its file: nothing to make thumbnails of
    if workers < 0:
        raise ValueError(f"workers must be >= 0, got {workers}")
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be a whole number >= 1, got {threads!r}")
    started = time.perf_counter()
    state = state if state is not None else process_state()
    rank, n_proc = state.process_index, state.num_processes
    device = torch.device("cpu") if state.device.type == "cpu" else state.device
    check_finite(model)
    model = model.to(device)
    fingerprint = weights_fingerprint(model)
    out = Path(out).absolute()
    work = Path(work_dir).absolute() if work_dir is not None else default_work_dir(out)
    if is_inside(work.resolve(), [out.resolve()]) or is_inside(out.resolve(), [work.resolve()]):
        raise ValueError(f"the work folder {work} and the gallery folder {out} overlap: the build removes its "
                         "work folder after saving the gallery; choose another work_dir")
    manifest = _manifest(fingerprint, source, batch_size, threads, thumbnail_size)
    with _work_dir_held(work, manifest, state):
        total = source.count()
        mine = None
        if total is not None:  # this process's items, for the bar
            mine = sum(min(batch_size, total - c * batch_size)
                       for c in range(rank, -(-total // batch_size), n_proc))
        desc = "embedding images" + (f" (process {rank + 1} of {n_proc})" if n_proc > 1 else "")
        enc_start = time.perf_counter()
        reused: list[int] = []
        n_chunks = 0
        with (_encoding_threads(threads),
              tqdm(total=mine, unit="img", desc=desc, disable=not (progress and state.is_main_process)) as bar):
            encoder = _Encoder(model, work, source.skip_bad, workers, bar, thumbnail_size)
            try:
                for c, items in _chunks(source, batch_size):
                    n_chunks = c + 1
                    if c % n_proc != rank:
                        continue
                    jsonl, npy = _chunk_paths(work, c)
                    if npy.is_file() and jsonl.is_file() and _reusable_chunk(work, jsonl, items):
                        reused.append(c)
                        bar.update(len(items))
                        continue
                    encoder.submit(c, items)
                encoder.drain()
            finally:
                encoder.close()
        report = {"rank": rank, "device": str(device), "chunks_encoded": len(encoder.encoded),
                  "chunks_reused": len(reused), "images_decoded": encoder.images_decoded,
                  "images_encoded": encoder.images_encoded,
                  "seconds": round(time.perf_counter() - enc_start, 3)}
        atomic_write_json(work / f"process-{rank}.json", report)
        state.wait_for_everyone()
        if not state.is_main_process:
            return None

        encode_seconds = time.perf_counter() - enc_start
        per_process = [json.loads((work / f"process-{r}.json").read_text(encoding="utf-8"))
                       for r in range(n_proc)]
        if n_chunks == 0:
            raise ValueError(f"no items to index ({json.dumps(source.describe())})")
        vectors, records, skipped = _merge(work, n_chunks)
        if skipped:
            warnings.warn(f"skipped {len(skipped)} file(s) that are not readable images, e.g. {skipped[0]}",
                          GalleryWarning, stacklevel=2)
        if not records:
            raise ValueError(f"no readable images among {len(skipped)} files (e.g. {skipped[0]})")
        gallery = Gallery.from_vectors(vectors, [r.pop("id") for r in records], metadata=records, kind="image",
                                       index_factory=index_factory, fingerprint=fingerprint,
                                       search_params=search_params, train_size=train_size,
                                       vectors_dtype=vectors_dtype)
        del vectors
        gallery.thumbnail_root = work  # the items' thumbnail names are relative to it until the save
        encoded = sum(p["images_encoded"] for p in per_process)
        gallery.build = {
            "processes": n_proc,
            "chunks": n_chunks,
            "sharding": "chunk c = items [c*batch_size, (c+1)*batch_size) in input order, encoded as one batch "
                        "by process c % processes",
            "batch_size": batch_size,
            "decode_workers": workers,
            "threads_per_process": threads,
            "images": gallery.count,
            "skipped": len(skipped),
            "thumbnails": sum(thumbnails.KEY in r for r in records),
            "thumbnail_size": thumbnail_size,
            "chunks_reused": sum(p["chunks_reused"] for p in per_process),
            "images_encoded": encoded,
            "encode_seconds": round(encode_seconds, 3),
            "images_per_second": round(encoded / encode_seconds, 2) if encode_seconds > 0 else None,
            "model_fingerprint": fingerprint,
            "devices": sorted({p["device"] for p in per_process}),
            "per_process": per_process,
            "inputs": source.describe(),
        }
        gallery.build["seconds"] = round(time.perf_counter() - started, 3)
        gallery.save(out, overwrite=overwrite)
        _remove_work_dir(work, n_chunks)  # only once the gallery is safely saved
        return gallery


def _remove_work_dir(work: Path, n_chunks: int) -> None:
    """Delete the files this builder writes (chunks, thumbnails, manifest, per-process reports,
    locks), then the folder if nothing else is in it: a --work-dir that held or gained anything
    else is kept."""
    for c in range(n_chunks):
        for path in _chunk_paths(work, c):
            path.unlink(missing_ok=True)
        chunk_thumbs = work / Path(thumbnails.name_for(c, 0)).parent
        if chunk_thumbs.is_dir():
            for path in [*chunk_thumbs.glob("*.jpg"), *chunk_thumbs.glob(".*.tmp")]:  # .tmp: a killed write
                path.unlink()
            with contextlib.suppress(OSError):
                chunk_thumbs.rmdir()
    with contextlib.suppress(OSError):
        (work / thumbnails.FOLDER).rmdir()
    for path in [work / MANIFEST_NAME, *work.glob("process-*.json")]:
        path.unlink(missing_ok=True)
    # the locks last (this process still holds its own; the others have stopped writing): a build
    # that starts now finds an empty folder, not one half removed
    for path in [p for p in work.iterdir() if LOCK_NAME.fullmatch(p.name)]:
        path.unlink(missing_ok=True)
    try:
        work.rmdir()
    except OSError:
        warnings.warn(f"{work} still holds files the build did not write; left in place", GalleryWarning,
                      stacklevel=3)
