"""Command line for galleries: ``python -m ccr_demo.gallery build|info|search`` (``-h`` on each).

Kept apart from ``ccr_demo.gallery.gallery`` (the Gallery class) by the style guide: the library stays
importable without argparse, and the CLI's safety rules live here. ``build --out`` never
destroys what the user did not ask to lose: an existing ``--out`` is replaced only when it is a
gallery (or with ``--overwrite``), and never when it is, holds or lies inside an input
(``--images``, ``--iglue``, ``--model``); all of that is checked before the model is loaded.
The work folder of a sharded build (``--work-dir``) may not overlap an input or ``--out``.
Errors print one line, ``error: ...``, and exit with code 2.

Image galleries are built by ``ccr_demo.gallery.build`` from a streamed source
(``ccr_demo.gallery.sources``): run this command under ``accelerate launch`` or ``torchrun``
and each process encodes its shard.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Sequence

from ccr_demo.gallery.gallery import Gallery
from ccr_demo.gallery.storage import INDEX_NAME, ITEMS_NAME, VECTORS_NAME, replace_problem
from ccr_demo.utils.paths import is_inside


def _overlap(out: Path, inp: Path) -> str | None:
    """How ``out`` overlaps an input folder/file, or None."""
    out, inp = out.resolve(), inp.resolve()
    if out == inp:
        return "is"
    if is_inside(inp, [out]):
        return "holds"
    if is_inside(out, [inp]) and (out.exists() or out.is_symlink()):
        return "lies inside"
    return None


def check_output(out: str | Path, inputs: Sequence[tuple[str, str | Path | None]], overwrite: bool) -> Path:
    """The folder a gallery will be written to, or ValueError saying why it may not be."""
    path = Path(out).absolute()
    for flag, inp in inputs:
        if inp is None or not Path(inp).exists():
            continue
        how = _overlap(path, Path(inp))
        if how:
            raise ValueError(f"{path} {how} the {flag} input {inp}: writing the gallery there would destroy "
                             "the input; choose another --out")
    problem = replace_problem(path)
    if problem and not overwrite:
        raise ValueError(f"{path} {problem}; not replacing it (choose another --out, or pass --overwrite to "
                         "replace it and lose what it holds)")
    return path


def _source(args):
    """The --images / --iglue / --ccrk / --wit input as a streamed image source."""
    from ccr_demo.gallery.sources import CcrkPartSource, FolderSource, TestSetSource, WitImageSource

    if args.images:
        return FolderSource(args.images)
    if args.iglue:
        return TestSetSource.from_iglue(args.iglue, args.languages.split(",") if args.languages else None)
    if args.ccrk:
        return CcrkPartSource(args.ccrk, image_root=args.image_root)
    return WitImageSource(args.wit)


def _check_work_dir(work: Path, out: Path, inputs: Sequence[tuple[str, str | Path | None]]) -> None:
    """The chunk folder may not be, hold or lie inside an input or the gallery folder."""
    for flag, inp in [*inputs, ("--out", out)]:
        if inp is not None and (Path(inp).exists() or flag == "--out"):
            how = _overlap(work, Path(inp)) or ("lies inside" if is_inside(work.resolve(), [Path(inp).resolve()])
                                                else None)
            if how:
                raise ValueError(f"--work-dir {work} {how} the {flag} {'folder' if flag == '--out' else 'input'} "
                                 f"{inp}: choose another --work-dir")


def _build(args) -> None:
    from ccr_demo.gallery.build import build_sharded, default_work_dir, process_state
    from ccr_demo.model.modeling import CCRModel

    if args.captions and not args.iglue:
        raise ValueError("--captions needs --iglue (the captions come from the test set)")
    if args.image_root and not args.ccrk:
        raise ValueError("--image-root goes with --ccrk (where its rows' image_path resolve)")
    inputs = [("--images", args.images), ("--iglue", args.iglue), ("--ccrk", args.ccrk), ("--wit", args.wit),
              ("--image-root", args.image_root), ("--model", args.model if Path(args.model).exists() else None)]
    out = check_output(args.out, inputs, args.overwrite)
    work = Path(args.work_dir).absolute() if args.work_dir else default_work_dir(out)
    _check_work_dir(work, out, inputs)
    captions_out = None
    if args.captions:
        captions_out = check_output(args.captions_out or f"{str(args.out).rstrip('/')}-captions", inputs,
                                    args.overwrite)
        if captions_out == out:
            raise ValueError("--captions-out must differ from --out")
    model = CCRModel.from_pretrained(args.model)
    source = _source(args)
    state = process_state(cpu=True if args.cpu else None)
    try:
        gallery = build_sharded(model, source, out, work_dir=work, index_factory=args.factory,
                                batch_size=args.batch_size, workers=args.workers, train_size=args.train_size,
                                search_params=args.search_params, overwrite=args.overwrite, state=state,
                                vectors_dtype=args.vectors_dtype, thumbnail_size=args.thumbnails,
                                **({} if args.threads is None else {"threads": args.threads}))
    finally:
        state.destroy_process_group()
    if gallery is None:  # not the main process: it encoded its shard; the main process saved the gallery
        return
    _report(gallery, out)
    if args.captions:
        ts = source.test_set
        texts, meta = [], []
        for lang in ts.languages:
            for image_id, caps in zip(ts.image_ids, ts.instance_captions(lang)):
                texts.extend(caps)
                meta.extend({"id": f"{lang}/{image_id}/{j}", "image_id": image_id, "language": lang}
                            for j in range(len(caps)))
        kwargs = {} if args.search_params is None else {"search_params": args.search_params}
        captions = Gallery.build(model, texts, kind="text", metadata=meta, index_factory=args.factory,
                                 batch_size=args.batch_size, train_size=args.train_size,
                                 vectors_dtype=args.vectors_dtype, **kwargs)
        print(f"{captions} -> {captions.save(captions_out, overwrite=args.overwrite)}")


def _report(gallery: Gallery, out: Path) -> None:
    print(f"{gallery} -> {out}")
    if gallery.build and gallery.build.get("thumbnails"):
        print(f"{gallery.build['thumbnails']} thumbnails ({gallery.build['thumbnail_size']} px) for images with no "
              f"file of their own, in {out / 'thumbnails'}")
    folders = {Path(r["path"]).parent for r in gallery.items if "path" in r}
    outside = sorted(f for f in folders if not is_inside(f.resolve(), [out.resolve()]))
    if outside:
        common = Path(os.path.commonpath([str(f) for f in outside]))
        print(f"note: its images lie outside the gallery folder (under {common}); loading it needs that folder "
              f"declared as an image root: `--image-root {common}` here, Gallery.load(..., image_root=...), "
              "or CCR_IMAGE_ROOT for the app", file=sys.stderr)


def _info(args) -> None:
    info = Gallery.read_info(args.dir)
    sizes = {name: (Path(args.dir) / name).stat().st_size for name in (INDEX_NAME, VECTORS_NAME, ITEMS_NAME)
             if (Path(args.dir) / name).is_file()}
    print(json.dumps({**info, "file_bytes": sizes}, indent=2))


def _search(args) -> None:
    from ccr_demo.model.modeling import CCRModel

    langs = args.lang or (["en"] if len(args.text) == 1 else [])
    if len(langs) != len(args.text):
        raise ValueError(f"give one --lang per --text ({len(args.text)} texts, {len(langs)} languages)")
    if len(set(langs)) != len(langs):
        raise ValueError(f"each language may be given once, got {langs}")
    if args.no_verify and not args.mmap:
        raise ValueError("--no-verify applies only with --mmap")
    model = CCRModel.from_pretrained(args.model)
    gallery = Gallery.load(args.dir, model, image_root=args.image_root, mmap=args.mmap, verify=not args.no_verify)
    res = gallery.search_texts(model, dict(zip(langs, args.text)), args.k)

    def label(row: int) -> str:
        r = gallery.items[row]
        return r.get("caption", r.get("path", r["id"]))

    if args.json:
        out = {lang: [{"id": gallery.items[p]["id"], "row": int(p), "score": float(s), "item": label(p)}
                      for s, p in zip(*res[lang]) if p >= 0] for lang in langs}
        out["ranks"] = {gallery.items[p]["id"]: dict(zip(langs, res.item_ranks[:, j].tolist()))
                        for j, p in enumerate(res.items)}
        print(json.dumps(out, indent=2, ensure_ascii=False))
        return
    for lang, text in zip(langs, args.text):
        print(f"[{lang}] {text}")
        for n, (s, p) in enumerate(zip(*res[lang]), 1):
            if p >= 0:
                print(f"  {n:3d}. {s:.4f}  {gallery.items[p]['id']}  {label(p)}")
    if len(langs) > 1:
        print("rank of each returned item under each language (0 = top):")
        print("  " + " ".join(f"{lang:>6}" for lang in langs) + "  id")
        for j, p in enumerate(res.items):
            print("  " + " ".join(f"{r:6d}" for r in res.item_ranks[:, j]) + f"  {gallery.items[p]['id']}")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m ccr_demo.gallery", description="Build, inspect and search galleries.")
    sub = p.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="embed images (and captions) with a model and save a gallery")
    b.add_argument("--model", required=True, help="model folder or Hub id")
    src = b.add_mutually_exclusive_group(required=True)
    src.add_argument("--images", help="folder of images (scanned recursively; non-images skipped with a warning)")
    src.add_argument("--iglue", help="parallel test set in IGLUE layout: annotations/{lang}/test.jsonl + images/")
    src.add_argument("--ccrk", help="CCRK pretraining part files (a folder of part_*.data, or one file): one JSON "
                                    "row a line, the image as image_path or base64 (image/binary/image_base64)")
    src.add_argument("--wit", help="WIT image file(s): url<TAB>base64 a line (a .csv/.tsv file or a folder of them)")
    b.add_argument("--out", required=True,
                   help="gallery folder to write, atomically; an existing one is replaced only if it is a gallery")
    b.add_argument("--overwrite", action="store_true",
                   help="replace --out (and --captions-out) even when it is not a gallery (never an input)")
    b.add_argument("--factory", default="Flat", help="faiss index_factory string: Flat, HNSW32, IVF1024,PQ32, ...")
    b.add_argument("--search-params", help='faiss search parameters, e.g. "nprobe=64" (default: see Gallery)')
    b.add_argument("--train-size", type=int,
                   help="vectors sampled to train IVF/PQ (default 40 x lists or centroids)")
    b.add_argument("--captions", action="store_true", help="also index every language's captions (with --iglue)")
    b.add_argument("--captions-out", help="caption gallery folder (default: OUT-captions)")
    b.add_argument("--languages", help="comma-separated languages to read with --iglue (default: all)")
    b.add_argument("--image-root", help="with --ccrk: folder its rows' image_path resolve in (default: the part's)")
    b.add_argument("--batch-size", type=int, default=64,
                   help="images per chunk; a chunk is one batch of one process (results do not depend on how many)")
    b.add_argument("--workers", type=int, default=2, help="threads decoding images ahead of the encoder (0: inline)")
    b.add_argument("--threads", type=int,
                   help="torch threads each process encodes with, whatever OMP_NUM_THREADS or the launcher says "
                        "(default 1, as torchrun gives each process): the vectors depend on it, so builds to "
                        "compare or resume use the same; for more cores, run more processes (torchrun)")
    b.add_argument("--work-dir", help="folder for finished chunks (default OUT.parts); a killed build rerun with "
                                      "the same command resumes from it; removed once the gallery is saved")
    b.add_argument("--cpu", action="store_true", help="encode on CPU even when a GPU is present")
    b.add_argument("--thumbnails", type=int, metavar="PX",
                   help="longer side of the JPEG thumbnails written into the gallery folder for images that "
                        "have no file (base64 rows of --ccrk, --wit), which the app shows and re-ranking reads "
                        "(default: 256, or the model's input size if larger; 0: none)")
    b.add_argument("--vectors-dtype", choices=["float32", "float16"], default="float32",
                   help="dtype of the stored vectors.npy (float16: half the size, scores within ~1e-3)")
    i = sub.add_parser("info", help="print a gallery's description (no model needed)")
    i.add_argument("dir")
    s = sub.add_parser("search", help="search a gallery with text queries, one per language")
    s.add_argument("dir")
    s.add_argument("--model", required=True, help="the model that built the gallery (folder or Hub id)")
    s.add_argument("--text", action="append", required=True, help="query text; repeat with --lang for several")
    s.add_argument("--lang", action="append", help="language of each --text (default en)")
    s.add_argument("-k", type=int, default=5)
    s.add_argument("--image-root", action="append",
                   help="folder where the gallery's images may lie besides its own folder (repeatable)")
    s.add_argument("--json", action="store_true", help="print results as JSON")
    s.add_argument("--mmap", action="store_true",
                   help="memory-map the gallery instead of reading it into RAM (for galleries larger than memory)")
    s.add_argument("--no-verify", action="store_true",
                   help="with --mmap: skip the whole-file checksum / unit-norm / unique-id checks (faster start)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """python -m ccr_demo.gallery build|info|search (``-h`` on each for options)."""
    args = parser().parse_args(argv)
    try:
        {"build": _build, "info": _info, "search": _search}[args.command](args)
    except (ValueError, TypeError, OSError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0

