"""What the app loads once, before serving: model, default gallery, test set, caption index.

Why one object: every request path (search, gold, image-to-text, evaluation) reads it and
none re-loads anything. Where things come from, first match wins:

=========  ======================  ==============  ===============================
item       build_demo argument     env var         embedded default (offline)
=========  ======================  ==============  ===============================
model      ``model_dir``           CCR_MODEL       assets/model (a saved CCRModel)
gallery    ``gallery_dir``         CCR_GALLERY     assets/gallery (a saved Gallery)
test set   ``testset_dir``         CCR_TESTSET     assets/shapes_test (IGLUE layout)
captions   ``captions_dir``        CCR_CAPTIONS    ``<gallery>-captions`` if present
queries    (none)                  CCR_QUERIES     ``test_queries/`` beside the test set
models     ``models``              CCR_MODELS      assets/models.json (2 models)
=========  ======================  ==============  ===============================

Several models side by side (``compare_view``): ``CCR_MODELS`` is a manifest file (JSON, see
``read_manifest``) or ``name=MODEL@GALLERY;name=MODEL@GALLERY``; without it and without
CCR_MODEL / CCR_GALLERY, ``assets/models.json`` is read. The first model is the app's main one
(search panes, re-ranking, image-to-text, your own gallery); every gallery must index the same
image ids in the same order as the first. A model path or gallery path given as an argument,
or CCR_MODEL / CCR_GALLERY, means one model, as before the comparison existed.

Model and gallery may also be Hub ids (``owner/name``). A gallery's images must lie inside its
own folder, the test set's folder, or a folder named in ``CCR_IMAGE_ROOT`` (several separated by
``os.pathsep``): an item path anywhere else is a load error, so no gallery file can make the app
read or serve other server files. Server folders as a session gallery source are off unless
``CCR_ALLOW_SERVER_FOLDERS=1`` (a local, single-user run); a public Space never has them.
Nothing here raises for a missing or
broken item: it is recorded in ``AppState.problems`` with how to fix it, so the app still
starts and says what is wrong. The caption index (image-to-text) is the caption gallery
``python -m ccr_demo.gallery build --iglue ... --captions`` writes; without one, the test set's
captions are encoded once, in a background thread started at load time.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import logging
import os
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

from ccr_demo import LANGUAGES

log = logging.getLogger(__name__)

ENV_MODEL, ENV_GALLERY, ENV_TESTSET, ENV_CAPTIONS = "CCR_MODEL", "CCR_GALLERY", "CCR_TESTSET", "CCR_CAPTIONS"
ENV_QUERIES, ENV_MODELS = "CCR_QUERIES", "CCR_MODELS"
ENV_IMAGE_ROOT, ENV_SERVER_FOLDERS = "CCR_IMAGE_ROOT", "CCR_ALLOW_SERVER_FOLDERS"
ASSETS = Path(__file__).resolve().parents[2] / "assets"
DEFAULT_PATHS = {"model": ASSETS / "model", "gallery": ASSETS / "gallery", "testset": ASSETS / "shapes_test"}
MANIFEST_NAME = "models.json"  # beside the default model: assets/models.json
DEFAULT_LANGUAGES = ("en", "de", "fr", "cs", "zh", "ja")
MAX_MODEL_NAME = 40
MAX_MODELS = 4  # each one is a model in memory and a search per query

HOW_TO_MAKE_ASSETS = (
    "Make the embedded default (offline; training takes CPU hours):\n"
    "1. train: `accelerate launch train/pretrain.py --config train/configs/default.yaml` (it generates its "
    "shapes data), then copy `runs/default/model` to `assets/model` and the shapes test split "
    "(`runs/data/shapes-default/test`) to `assets/shapes_test`;\n"
    "2. `python -m ccr_demo.gallery build --model assets/model --iglue assets/shapes_test "
    "--out assets/gallery --captions` (the captions go to `assets/gallery-captions`, for image-to-text).\n"
    "Or point the app elsewhere: `CCR_MODEL=DIR_OR_HUB_ID CCR_GALLERY=DIR_OR_HUB_ID "
    "CCR_TESTSET=DIR python app.py`."
)


@dataclass(frozen=True)
class Limits:
    """Bounds on what one request may make the server do (bad or hostile input)."""

    max_query_chars: int = 1000  # the model reads ~64 tokens; longer text only costs tokenizer time
    max_pixels: int = 40_000_000  # decompression-bomb guard for uploads (load_image max_pixels)
    max_upload_images: int = 200  # per session gallery (encoding is ~30 images/s on 2 cores)
    max_folder_files: int = 2000
    max_k: int = 20
    max_aspect: float = 50.0  # width/height (either way); thinner images are refused before any resize
    session_ttl_s: int = 3600  # a session gallery (gr.State) and uploaded files live this long
    max_cache_bytes: int = 1 << 30  # uploads and served copies kept on disk, oldest deleted first
    max_folder_entries: int = 100_000  # server-folder galleries: directory entries looked at, at most
    max_rerank_k: int = 128  # fusion re-ranking depth per language (ITM pairs = languages x k, one batch)
    image_memory_items: int = 2048  # fusion image memories of gallery images kept (LRU) for re-ranking
    image_memory_bytes: int = 256 << 20  # ...and at most this many bytes of them


# --------------------------------------------------------------------------- gold instances


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


# --------------------------------------------------------------------------- caption index


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
        from ccr_demo.gallery.gallery import Gallery

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
        from ccr_demo.gallery.gallery import Gallery
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


# --------------------------------------------------------------------------- several models


@dataclass(frozen=True)
class ModelSpec:
    """One configured model: its name in the UI and API, and where its model and gallery are."""

    name: str
    model: str
    gallery: str
    how: str  # where the entry came from, for messages


@dataclass
class LoadedModel:
    name: str
    model: object
    gallery: object
    source: str


class ModelsConfigError(ValueError):
    """A models manifest or CCR_MODELS value that cannot be used, naming the entry."""


def _check_names(specs: list[ModelSpec], where: str) -> list[ModelSpec]:
    if len(specs) < 1:
        raise ModelsConfigError(f"{where}: lists no model")
    if len(specs) > MAX_MODELS:
        raise ModelsConfigError(f"{where}: {len(specs)} models; at most {MAX_MODELS} are compared")
    seen = set()
    for spec in specs:
        name = spec.name
        if not name or len(name) > MAX_MODEL_NAME or not name.isprintable() or name != name.strip():
            raise ModelsConfigError(f"{where}: model name {name!r} must be 1-{MAX_MODEL_NAME} printable "
                                    "characters without leading or trailing spaces")
        if name in seen:
            raise ModelsConfigError(f"{where}: model name {name!r} is used twice")
        seen.add(name)
    return specs


def _inside(folder: Path, relative: object, what: str, where: str) -> str:
    """``folder / relative`` resolved (symlinks followed), refused unless it stays inside ``folder``."""
    if not isinstance(relative, str) or not relative.strip():
        raise ModelsConfigError(f"{where}: {what} must be a path relative to {folder}, got {relative!r}")
    if Path(relative).is_absolute() or relative.startswith("~"):
        raise ModelsConfigError(f"{where}: {what} {relative!r} is absolute; paths in a manifest are relative to "
                                f"its folder ({folder}) and must stay inside it")
    base = folder.resolve()
    target = (base / relative).resolve()
    if not target.is_relative_to(base):
        raise ModelsConfigError(f"{where}: {what} {relative!r} resolves to {target}, outside the manifest's "
                                f"folder {base}")
    return str(target)


def read_manifest(path: str | Path) -> list[ModelSpec]:
    """The models of a manifest: ``{"models": [{"name": ..., "model": DIR, "gallery": DIR}, ...]}``.
    Paths are relative to the manifest's folder and must resolve inside it (no absolute path,
    no ``..`` or symlink out), so a manifest can point the app only at files beside it."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelsConfigError(f"models manifest {path} cannot be read: {e}") from None
    entries = data.get("models") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise ModelsConfigError(f"models manifest {path}: expected {{\"models\": [{{\"name\", \"model\", "
                                f"\"gallery\"}}, ...]}}")
    specs = []
    for i, entry in enumerate(entries):
        where = f"models manifest {path}, entry {i}"
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise ModelsConfigError(f"{where}: expected an object with a \"name\" string, got {entry!r}")
        unknown = set(entry) - {"name", "model", "gallery", "about"}
        if unknown:
            raise ModelsConfigError(f"{where}: unknown keys {sorted(unknown)} (known: name, model, gallery, about)")
        specs.append(ModelSpec(entry["name"], _inside(path.parent, entry.get("model"), "model", where),
                               _inside(path.parent, entry.get("gallery"), "gallery", where), how=str(path)))
    return _check_names(specs, f"models manifest {path}")


def parse_models(value: str) -> list[ModelSpec]:
    """``CCR_MODELS``: a manifest file, or ``name=MODEL@GALLERY`` entries separated by ``;``
    (server configuration, like CCR_MODEL: folders or Hub ids, wherever the operator keeps them)."""
    value = value.strip()
    if value.endswith(".json") or Path(value).is_file():
        return read_manifest(value)
    specs = []
    for part in (p.strip() for p in value.split(";")):
        if not part:
            continue
        name, eq, rest = part.partition("=")
        model, at, gallery = rest.partition("@")
        if not eq or not at or not model.strip() or not gallery.strip():
            raise ModelsConfigError(f"${ENV_MODELS}: entry {part!r} is not name=MODEL@GALLERY")
        specs.append(ModelSpec(name.strip(), model.strip(), gallery.strip(), how=f"${ENV_MODELS}"))
    return _check_names(specs, f"${ENV_MODELS}")


def same_images(reference, other, names: tuple[str, str]) -> str | None:
    """None when two galleries index the same image ids in the same order, else what differs
    (comparing models is meaningful only over one image list)."""
    a, b = list(reference.ids), list(other.ids)
    if a == b:
        return None
    first, second = names
    if len(a) != len(b):
        what = f"{len(a)} images in {first}'s gallery, {len(b)} in {second}'s"
    else:
        what = f"both have {len(a)} images"
    in_a, in_b = set(a), set(b)  # once: a set rebuilt per id made this quadratic in the gallery size
    only_a, only_b = [i for i in a if i not in in_b], [i for i in b if i not in in_a]
    parts = [what]
    if only_a:
        parts.append(f"{len(only_a)} only in {first}'s (e.g. {', '.join(map(repr, only_a[:3]))})")
    if only_b:
        parts.append(f"{len(only_b)} only in {second}'s (e.g. {', '.join(map(repr, only_b[:3]))})")
    if not only_a and not only_b:
        pos = next(i for i, (x, y) in enumerate(zip(a, b)) if x != y)
        parts.append(f"the same ids in another order (position {pos}: {a[pos]!r} vs {b[pos]!r})")
    return "; ".join(parts)


# --------------------------------------------------------------------------- the state


@dataclass
class AppState:
    """Loaded once per process and shared read-only by all sessions (requests mutate nothing but the
    bounded, locked ``image_memory`` cache of fusion re-ranking)."""

    model: object | None = None
    gallery: object | None = None
    test_set: object | None = None
    queries: object | None = None  # typed queries over the test set's images (ccr_demo.data.queries.QuerySet)
    instances: GoldInstances | None = None
    sources: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    limits: Limits = field(default_factory=Limits)
    allow_local_paths: bool = False
    caption_cache: Path | None = None  # where encoded test captions are kept between starts
    load_seconds: float = 0.0
    _captions: CaptionIndex | None = None
    _captions_error: str | None = None
    _captions_lock: threading.Lock = field(default_factory=threading.Lock)
    _captions_thread: threading.Thread | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    image_memory: object | None = None  # rerank_view.ImageMemoryCache, made in __post_init__
    # models compared side by side (two or more; the first is ``model``/``gallery``), else empty
    models: list[LoadedModel] = field(default_factory=list)
    _views: dict = field(default_factory=dict)
    _encoder: object | None = None
    _encoder_lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self):
        from ccr_demo.ui.rerank_view import ImageMemoryCache

        if self.image_memory is None:  # a cache, the one thing requests add to (bounded, locked)
            self.image_memory = ImageMemoryCache(self.limits.image_memory_items, self.limits.image_memory_bytes)

    @property
    def can_rerank(self) -> bool:
        """Whether the loaded model has the fusion encoder (ITM re-ranking of search results)."""
        return bool(getattr(self.model, "has_fusion", False))

    @property
    def query_encoder(self):
        """The model's text path with an LRU cache of encoded queries (``ccr_demo.model.query_encoder``),
        made on first use: a query run again, or a language box left unchanged between two
        searches, needs no text-tower pass. Galleries accept it as the model itself (same
        fingerprint); it refuses to serve once the model's weights change."""
        from ccr_demo.model.query_encoder import QueryEncoder

        with self._encoder_lock:
            if self._encoder is None or self._encoder.model is not self.model:
                self._encoder = QueryEncoder(self.model)
            return self._encoder

    @property
    def comparing(self) -> bool:
        """Whether two or more models are loaded over one image list (the comparison UI)."""
        return len(self.models) >= 2

    @property
    def model_names(self) -> list[str]:
        return [m.name for m in self.models]

    def view(self, name: str) -> "AppState":
        """This state as if ``name`` were the only model (its model and gallery; the same test set,
        queries and limits), for the one-model callbacks (search, evaluate). KeyError for a name
        not configured: a request can only pick among the loaded models."""
        if name in self._views:
            return self._views[name]
        entry = next(m for m in self.models if m.name == name) if name in self.model_names else None
        if entry is None:
            raise KeyError(name)
        if entry.model is self.model:
            view = self
        else:
            view = AppState(model=entry.model, gallery=entry.gallery, test_set=self.test_set, queries=self.queries,
                            instances=self.instances, sources={"model": entry.source}, limits=self.limits,
                            _captions_error="image-to-text uses the app's first model")
        self._views[name] = view
        return view

    @property
    def ready(self) -> bool:
        """Search needs a model and a gallery."""
        return self.model is not None and self.gallery is not None

    @property
    def default_languages(self) -> list[str]:
        return list(DEFAULT_LANGUAGES)

    # ---- caption index (image-to-text), built once and lazily
    def captions(self, wait: bool = True) -> CaptionIndex | None:
        """The caption index, built on first use; ``wait=False`` returns None while another thread
        (the start-up one) is building it, instead of blocking."""
        if self._captions is not None or self._captions_error is not None:
            return self._captions
        if not self._captions_lock.acquire(blocking=wait):
            return None  # another thread is building it
        try:
            if self._captions is None and self._captions_error is None:
                self._build_captions()
        finally:
            self._captions_lock.release()
        return self._captions

    @property
    def captions_error(self) -> str | None:
        return self._captions_error

    def _build_captions(self) -> None:
        if self.model is None or self.instances is None:
            self._captions_error = ("image-to-text needs captions to search: no caption gallery and no test set "
                                    f"was loaded (set {ENV_CAPTIONS} or {ENV_TESTSET}).")
            return
        try:
            start = time.perf_counter()
            self._captions = CaptionIndex.build(self.model, self.instances, cache=self.caption_cache,
                                                stop=self._stop)
            log.info("caption index built in %.1f s", time.perf_counter() - start)
        except Exception as e:  # noqa: BLE001 - reported in the UI, the app keeps running
            self._captions_error = f"could not encode the test captions: {e}"

    def start_background_work(self) -> None:
        """Build the caption index off the request path (no-op when it is loaded or impossible)."""
        if self._captions is None and self._captions_error is None and self._captions_thread is None \
                and self.model is not None and self.instances is not None:
            self._captions_thread = threading.Thread(target=self.captions, name="ccr-caption-index", daemon=True)
            self._captions_thread.start()
            atexit.register(self.stop_background_work)

    def stop_background_work(self, timeout: float = 30.0) -> None:
        """Stop the caption encoding after its current chunk and wait for it: a thread killed
        inside torch at interpreter exit aborts the process ("terminate called ...")."""
        self._stop.set()
        if self._captions_thread is not None:
            self._captions_thread.join(timeout)

    def status_markdown(self) -> str:
        """What was loaded from where, and what is missing with how to fix it."""
        lines = []
        if self.problems:
            lines.append("**Not everything could be loaded:**")
            lines += [f"- {p}" for p in self.problems]
            if self.model is None or self.gallery is None:
                lines.append("")
                lines.append(HOW_TO_MAKE_ASSETS)
            lines.append("")
        if self.sources:
            lines.append("Loaded: " + "; ".join(f"{k} from `{v}`" for k, v in self.sources.items())
                         + f" ({self.load_seconds:.1f} s).")
        lines += self.notes
        return "\n".join(lines)


def _choose(arg, env: str, default: Path) -> tuple[str | None, str]:
    """(location, how it was chosen): argument > environment variable > embedded default."""
    if arg:
        return str(arg), "argument"
    if os.environ.get(env):
        return os.environ[env], f"${env}"
    return (str(default), "default") if default.exists() else (None, "default")


def _server_folders_allowed() -> bool:
    return os.environ.get(ENV_SERVER_FOLDERS, "").strip().lower() in ("1", "true", "yes") \
        and "SPACE_ID" not in os.environ


def _image_roots(testset_arg) -> list[Path]:
    """Folders besides its own where the gallery's images may lie: the test set's folder (the
    embedded default's gallery indexes the test images) and those named in CCR_IMAGE_ROOT."""
    where, _ = _choose(testset_arg, ENV_TESTSET, DEFAULT_PATHS["testset"])
    roots = [Path(where)] if where and Path(where).is_dir() else []
    roots += [Path(p) for p in os.environ.get(ENV_IMAGE_ROOT, "").split(os.pathsep) if p.strip()]
    return roots


def _looks_like_hub_id(s: str) -> bool:
    return not Path(s).exists() and s.count("/") == 1 and not s.startswith((".", "/", "~"))


def _hub_folder(repo_id: str) -> Path:
    """A gallery on the Hub: a dataset repo first, else a model repo (downloaded once, cached)."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, repo_type="dataset"))
    except Exception:  # noqa: BLE001 - try the other repo type, then report
        return Path(snapshot_download(repo_id, repo_type="model"))


def _warm_up(model, text_rounds: int = 4) -> None:
    """The first text encodes are 10-50x slower (kernel set-up); pay that at start-up, not per user.
    One image batch too: the first upload then costs no set-up, and the memory the image path
    keeps is part of the at-rest figure rather than growth under load (docs/bench_load.md).
    A model whose text tower another model already warmed needs one round (its projection)."""
    from PIL import Image

    texts = ["a red circle", "ein roter Kreis", "un cercle rouge", "červený kruh", "红色的圆", "赤い丸"]
    for _ in range(text_rounds):
        model.encode_texts(texts)
    model.encode_images([Image.new("RGB", (96, 96), (200, 40, 40)), Image.new("RGB", (120, 80), (20, 90, 200))])


def _model_specs(model_dir, gallery_dir, models) -> list[ModelSpec] | None:
    """The models to compare, or None for one model chosen as before (argument, CCR_MODEL /
    CCR_GALLERY, assets/model): ``models`` argument > a model or gallery argument > CCR_MODELS >
    CCR_MODEL / CCR_GALLERY > assets/models.json. ModelsConfigError for an unusable list."""
    if models is not None:
        if isinstance(models, (str, Path)):
            return read_manifest(models)
        return _check_names([m if isinstance(m, ModelSpec) else ModelSpec(*m, how="argument") for m in models],
                            "models argument")
    if model_dir or gallery_dir:
        return None
    if os.environ.get(ENV_MODELS, "").strip():
        return parse_models(os.environ[ENV_MODELS])
    if os.environ.get(ENV_MODEL) or os.environ.get(ENV_GALLERY):
        return None
    manifest = default_manifest()
    return read_manifest(manifest) if manifest.is_file() else None


def default_manifest() -> Path:
    """The embedded default's models manifest: ``models.json`` in the folder of the default model."""
    return Path(DEFAULT_PATHS["model"]).parent / MANIFEST_NAME


def _load_compared(spec: ModelSpec, state: AppState, roots: list[Path], warm_up: bool) -> LoadedModel | None:
    """One more model and its gallery, kept only if the gallery indexes the first model's images."""
    from ccr_demo.gallery.gallery import Gallery
    from ccr_demo.model.modeling import CCRModel

    label = f"model {spec.name!r} ({spec.how})"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            model = CCRModel.from_pretrained(spec.model)
        if warm_up:
            _warm_up(model, text_rounds=1 if any(m.model.text_tower is model.text_tower for m in state.models) else 4)
    except Exception as e:  # noqa: BLE001
        state.problems.append(f"{label}: `{spec.model}` could not be loaded: {e}")
        return None
    try:
        hub = _looks_like_hub_id(spec.gallery)
        folder = _hub_folder(spec.gallery) if hub else Path(spec.gallery)
        gallery = Gallery.load(folder, model, image_root=roots + ([folder.parent.parent] if hub else []))
        if gallery.kind != "image":
            raise ValueError(f"it is a {gallery.kind} gallery; text-to-image search needs images")
    except Exception as e:  # noqa: BLE001
        state.problems.append(f"{label}: gallery `{spec.gallery}` could not be loaded: {e}")
        return None
    first = state.models[0]
    differs = same_images(first.gallery, gallery, (first.name, spec.name))
    if differs:
        state.problems.append(f"{label} is left out of the comparison: its gallery `{spec.gallery}` does not index "
                              f"the images of {first.name!r}'s gallery in the same order ({differs})")
        return None
    return LoadedModel(spec.name, model, gallery, f"{spec.model} + gallery {spec.gallery} ({spec.how})")


def load_app_state(model_dir: str | Path | None = None, gallery_dir: str | Path | None = None,
                   testset_dir: str | Path | None = None, captions_dir: str | Path | None = None, *,
                   models: Sequence | str | Path | None = None,
                   limits: Limits | None = None, allow_local_paths: bool | None = None,
                   warm_up: bool = True, caption_cache: str | Path | None | bool = True) -> AppState:
    """Load model, gallery, test set and caption gallery; never raises for missing/broken items.

    ``models``: models to compare (``ModelSpec`` or (name, model, gallery) tuples, or a manifest
    path); see ``_model_specs`` for what is used without it. With several, they share one
    instance of an identical offline text tower (``towers.share_offline_text_towers``).

    ``allow_local_paths`` (server folders as a session gallery source) defaults to off: users of a
    public server must not name its paths. ``CCR_ALLOW_SERVER_FOLDERS=1`` turns it on for a local,
    single-user run (never on a Space: ``SPACE_ID`` set keeps it off). Even then only the images
    of the gallery built from the folder are served, never the folder.
    ``caption_cache``: True = ``fileio.cache_dir()/captions`` (``CCR_DEMO_CACHE``), a folder, or False.
    """
    from ccr_demo.utils.fileio import cache_dir

    start = time.perf_counter()
    if caption_cache is True:
        caption_cache = cache_dir() / "captions"
    state = AppState(limits=limits or Limits(),
                     allow_local_paths=_server_folders_allowed() if allow_local_paths is None
                     else allow_local_paths,
                     caption_cache=Path(caption_cache) if caption_cache else None)

    try:
        specs = _model_specs(model_dir, gallery_dir, models)
    except ModelsConfigError as e:
        specs = None
        state.problems.append(f"{e}; loading one model instead")
    sharing = contextlib.ExitStack()
    if specs:
        model_dir, gallery_dir = specs[0].model, specs[0].gallery
        if len(specs) > 1:
            from ccr_demo.model.towers import share_offline_text_towers

            sharing.enter_context(share_offline_text_towers())
    with sharing:
        gallery_dir = _load_main_model(state, specs, model_dir, gallery_dir, testset_dir, warm_up)
        if specs and len(specs) > 1 and state.gallery is not None:
            state.models.append(LoadedModel(specs[0].name, state.model, state.gallery, state.sources["model"]))
            roots = _image_roots(testset_dir)
            for spec in specs[1:]:
                entry = _load_compared(spec, state, roots, warm_up)
                if entry is not None:
                    state.models.append(entry)
                    state.sources[f"model {spec.name!r}"] = entry.source
            if len(state.models) < 2:
                state.models = []
                state.notes.append("Model comparison is off: fewer than two models could be loaded.")

    where, how = _choose(testset_dir, ENV_TESTSET, DEFAULT_PATHS["testset"])
    if where is not None:
        try:
            from ccr_demo.data.formats import ParallelTestSet

            state.test_set = ParallelTestSet.from_iglue(where)
            state.instances = GoldInstances.from_testset(state.test_set)
            state.sources["test set"] = f"{where} ({how}, {len(state.test_set)} instances)"
        except Exception as e:  # noqa: BLE001
            state.problems.append(f"test set `{where}` ({how}) could not be read: {e}")
    if state.test_set is not None:
        _load_queries(state, where)
    else:
        state.notes.append(f"No test set (`{DEFAULT_PATHS['testset']}` missing, {ENV_TESTSET} unset): "
                           "gold mode and evaluation are off.")

    cap = captions_dir or os.environ.get(ENV_CAPTIONS)
    if not cap and gallery_dir is not None and Path(f"{str(gallery_dir).rstrip('/')}-captions").is_dir():
        cap = f"{str(gallery_dir).rstrip('/')}-captions"
    if cap and state.model is not None:
        try:
            from ccr_demo.gallery.gallery import Gallery

            g = Gallery.load(cap, state.model)
            state._captions = CaptionIndex.from_gallery(g, source=f"caption gallery {cap}")
            if state.instances is None:
                state.instances = GoldInstances.from_caption_gallery(g)
            state.sources["captions"] = f"{cap} ({g.count} captions)"
        except Exception as e:  # noqa: BLE001
            state.problems.append(f"caption gallery `{cap}` could not be loaded: {e}")
    if state._captions is None and state.instances is not None and state.model is not None:
        n = sum(len(c) for caps in state.instances.captions.values() for c in caps)
        state.notes.append(f"Image-to-text: the test set's {n} captions are encoded once, in the background "
                           "(minutes on 2 CPU cores for thousands; cached for later starts); "
                           "`python -m ccr_demo.gallery build --iglue ... --captions` writes `<gallery>-captions`, "
                           "which is loaded instead.")
    if state.instances is not None and state.gallery is not None:
        ids = set(state.gallery.ids)
        inside = sum(i in ids for i in state.instances.image_ids)
        if inside == 0:
            state.notes.append("The test set's images are not in the gallery: gold mode cannot mark a gold image.")
    from ccr_demo.ui.memory import drop_clean_weight_pages, release_memory

    release_memory()  # loading freed ~300 MB of temporaries that glibc would otherwise keep
    released = drop_clean_weight_pages()  # the weights hash made every mapped page resident
    log.info("start-up: %.0f MB of clean mapped weight pages released", released / 2**20)
    warmed = set()
    for model in [m.model for m in state.models] or [state.model]:
        if warm_up and model is not None and id(model.text_tower) not in warmed:  # fault back in what every
            model.encode_texts(["a red circle", "红色的圆"])  # query reads (encoder layers), once per tower
            warmed.add(id(model.text_tower))
    state.load_seconds = time.perf_counter() - start
    return state


def _load_main_model(state: AppState, specs, model_dir, gallery_dir, testset_dir, warm_up: bool):
    """The app's main model and its gallery (the first of several), chosen as ``_choose`` says;
    returns the gallery's folder (a Hub gallery's download) for its ``-captions`` sibling."""
    where, how = _choose(model_dir, ENV_MODEL, DEFAULT_PATHS["model"])
    if specs:
        how = f"{specs[0].name!r}, {specs[0].how}"
    if where is None:
        state.problems.append(f"no model: `{DEFAULT_PATHS['model']}` does not exist and {ENV_MODEL} is not set.")
    else:
        try:
            from ccr_demo.model.modeling import CCRModel

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                state.model = CCRModel.from_pretrained(where)
            state.sources["model"] = f"{where} ({how})"
            if warm_up:
                _warm_up(state.model)
        except Exception as e:  # noqa: BLE001
            state.problems.append(f"model `{where}` ({how}) could not be loaded: {e}")

    where, how = _choose(gallery_dir, ENV_GALLERY, DEFAULT_PATHS["gallery"])
    if specs:
        how = f"{specs[0].name!r}, {specs[0].how}"
    if where is None:
        state.problems.append(f"no gallery: `{DEFAULT_PATHS['gallery']}` does not exist and {ENV_GALLERY} is not set.")
    elif state.model is not None:
        try:
            from ccr_demo.gallery.gallery import Gallery

            hub = _looks_like_hub_id(where)
            folder = _hub_folder(where) if hub else Path(where)
            roots = _image_roots(testset_dir)
            if hub:  # a Hub snapshot's files are links into the repo's own blobs/ folder in the cache
                roots.append(folder.parent.parent)
            state.gallery = Gallery.load(folder, state.model, image_root=roots)
            if state.gallery.kind != "image":
                raise ValueError(f"it is a {state.gallery.kind} gallery; text-to-image search needs images")
            state.sources["gallery"] = f"{where} ({how}, {state.gallery.count} images)"
            gallery_dir = folder
        except Exception as e:  # noqa: BLE001
            state.gallery = None
            state.problems.append(f"gallery `{where}` ({how}) could not be loaded: {e}")
    else:
        state.problems.append(f"gallery `{where}` not loaded: it needs the model that built it.")
    return gallery_dir


def _load_queries(state: AppState, testset_where: str) -> None:
    """Typed queries for the Evaluate tab: ``CCR_QUERIES``, else the ``test_queries`` split
    beside the test set (where the shapes world writes it), if any."""
    from ccr_demo.data.queries import QuerySet
    from ccr_demo.eval.evaluate import default_queries

    path = os.environ.get(ENV_QUERIES) or default_queries(testset_where)
    if not path:
        return
    try:
        state.queries = QuerySet.load(path)
        state.sources["typed queries"] = f"{path} ({len(state.queries)} queries)"
    except Exception as e:  # noqa: BLE001
        state.problems.append(f"typed queries `{path}` could not be read: {e}")
