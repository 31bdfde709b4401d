"""What the app loads once, before serving: model, default gallery, test set, caption index.

Why one object: every request path (search, gold, image-to-text, evaluation) reads it and
none re-loads anything. Where things come from, first match wins:

=========  ======================  ==============  ===============================
item       build_demo argument     env var         embedded default (offline)
=========  ======================  ==============  ===============================
model      ``model_dir``           CCR_MODEL       ASSETS/model (a saved CCRModel)
gallery    ``gallery_dir``         CCR_GALLERY     ASSETS/gallery (a saved Gallery)
test set   ``testset_dir``         CCR_TESTSET     ASSETS/shapes_test (IGLUE layout)
captions   ``captions_dir``        CCR_CAPTIONS    ``<gallery>-captions`` if present
queries    (none)                  CCR_QUERIES     ``test_queries/`` beside the test set
models     ``models``              CCR_MODELS      ASSETS/models.json (2 models)
=========  ======================  ==============  ===============================

ASSETS is the folder given as ``build_demo(assets_dir=...)`` / ``load_app_state(assets=...)``:
``app.py`` passes the repository's ``assets/``; the library itself keeps no path, so without
one there is no embedded default. ``loading`` does all of this; this module holds the result.

Several models side by side (``compare_view``): ``CCR_MODELS`` is a manifest file (JSON, see
``read_manifest``) or ``name=MODEL@GALLERY;name=MODEL@GALLERY``; without it and without
CCR_MODEL / CCR_GALLERY, ``ASSETS/models.json`` is read. The first model is the app's main one
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
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from ccr_demo.ui.caption_index import CaptionIndex
from ccr_demo.ui.instances import GoldInstances
from ccr_demo.ui.lanes import Lane
from ccr_demo.utils.paths import hide_absolute_paths

log = logging.getLogger(__name__)


ENV_MODEL, ENV_GALLERY, ENV_TESTSET, ENV_CAPTIONS = "CCR_MODEL", "CCR_GALLERY", "CCR_TESTSET", "CCR_CAPTIONS"


ENV_QUERIES, ENV_MODELS = "CCR_QUERIES", "CCR_MODELS"


ENV_IMAGE_ROOT, ENV_SERVER_FOLDERS = "CCR_IMAGE_ROOT", "CCR_ALLOW_SERVER_FOLDERS"


DEFAULT_LANGUAGES = ("en", "de", "fr", "cs", "zh", "ja")


HOW_TO_MAKE_ASSETS = (
    "Make the embedded default (offline; training takes CPU hours):\n"
    "1. train: `accelerate launch train/pretrain.py --config default` (it generates its "
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
    # sessions Gradio keeps (its config copy and last outputs, ~1.1 MB each, plus a session
    # gallery); beyond it the least recently used are dropped. Gradio's default, 10,000, let
    # memory grow by ~1.1 MB per visitor (issue 23 item 13)
    max_sessions: int = 256
    max_cache_bytes: int = 1 << 30  # uploads and served copies kept on disk, oldest deleted first
    max_folder_entries: int = 100_000  # server-folder galleries: directory entries looked at, at most
    max_rerank_k: int = 128  # fusion re-ranking depth per language (ITM pairs = languages x k, one batch)
    # ITM pairs one request may re-rank: 10 languages x 128 cost ~11 s of CPU with the default
    # fusion model (~9 ms a pair at 64 tokens); over it, the depth per language is lowered and said
    max_rerank_pairs: int = 256
    image_memory_items: int = 2048  # fusion image memories of gallery images kept (LRU) for re-ranking
    image_memory_bytes: int = 256 << 20  # ...and at most this many bytes of them
    # a request that comes while the models are still loading (the page is served first) waits
    # this long for them before it is answered "not loaded yet"
    load_wait_s: float = 300.0
    search_workers: int = 2  # contrastive searches at once (lanes.py): the cores of a small Space
    rerank_workers: int = 1  # fusion re-rankings at once...
    max_rerank_waiting: int = 2  # ...and how many may wait for one; more are refused with a message

    @property
    def search_concurrency(self) -> int:
        """Gradio workers for the search events: the search lane's, plus every request the
        re-ranking lane may hold (running or waiting), so those never take an ordinary search's."""
        return self.search_workers + self.rerank_workers + self.max_rerank_waiting


@dataclass
class LoadedModel:
    """One of the models compared side by side: its name in the UI, the model, its gallery, and
    where both came from (for the status text)."""

    name: str
    model: object
    gallery: object
    source: str


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


@dataclass
class AppState:
    """Loaded once per process and shared read-only by all sessions (requests mutate nothing but the
    bounded, locked ``image_memory`` cache of fusion re-ranking and the lanes' counters)."""

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
    # the app's folder: paths are shown relative to it, and none outside it in full (a public
    # page must not tell strangers the server's file layout); None: the working directory
    root: Path | None = None
    # set once loading is over (at once for a state made whole; ``loading`` clears it while the
    # models load behind a served page); requests wait for it (``wait_loaded``)
    loaded: threading.Event = field(default_factory=threading.Event)
    loading_since: float | None = None  # perf_counter() when loading began (``loading.plan_app_state``)
    plan: object | None = None  # what ``loading.finish_loading`` is to load (``loading.LoadPlan``)
    # what the models' files say before loading (``model_info``), by configured name, in order
    infos: dict = field(default_factory=dict)
    main_name: str = "model"  # the main model's name (its configured one when several are compared)
    no_match: float | None = None  # this state's model's "no good match" threshold (model_info)
    _captions: CaptionIndex | None = None
    _captions_error: str | None = None
    _captions_lock: threading.Lock = field(default_factory=threading.Lock)
    _captions_thread: threading.Thread | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    image_memory: object | None = None  # rerank_view.ImageMemoryCache, made in __post_init__
    search_lane: Lane | None = None  # contrastive searches at once (lanes.py), made in __post_init__
    rerank_lane: Lane | None = None  # fusion re-rankings at once and waiting, made in __post_init__
    # models compared side by side (two or more; the first is ``model``/``gallery``), else empty
    models: list[LoadedModel] = field(default_factory=list)
    _views: dict = field(default_factory=dict)
    _encoder: object | None = None
    _encoder_lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self):
        # query_encoder below imports torch (~2 s): kept out of ``import ccr_demo.ui``
        from ccr_demo.ui.rerank_view import ImageMemoryCache

        if self.loading_since is None:
            self.loaded.set()  # made whole (tests, benchmarks): nothing to wait for
        if self.image_memory is None:  # a cache, the one thing requests add to (bounded, locked)
            self.image_memory = ImageMemoryCache(self.limits.image_memory_items, self.limits.image_memory_bytes)
        if self.search_lane is None:
            self.search_lane = Lane("search", self.limits.search_workers)  # Gradio bounds the waiting
        if self.rerank_lane is None:
            self.rerank_lane = Lane("re-ranking", self.limits.rerank_workers, self.limits.max_rerank_waiting)

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
        from ccr_demo.model.query_encoder import QueryEncoder  # torch: see __post_init__

        with self._encoder_lock:
            if self._encoder is None or self._encoder.model is not self.model:
                self._encoder = QueryEncoder(self.model)
            return self._encoder

    @property
    def comparing(self) -> bool:
        """Whether two or more models are loaded over one image list (the comparison UI); while
        they load, whether two or more are configured (the page is built before they are loaded)."""
        return len(self.model_names) >= 2

    @property
    def model_names(self) -> list[str]:
        """The compared models' names: those loaded, or while loading those configured."""
        if self.loaded.is_set():
            return [m.name for m in self.models]
        return list(self.infos) if len(self.infos) >= 2 else []

    def wait_loaded(self) -> bool:
        """Wait (at most ``Limits.load_wait_s``) for the background loading; whether it is over."""
        return self.loaded.wait(self.limits.load_wait_s)

    def info(self, name: str | None = None):
        """The ``model_info.ModelInfo`` of a configured model (the main one by default), or None."""
        return self.infos.get(self.main_name if name is None else name)

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
            info = self.infos.get(name)
            view = AppState(model=entry.model, gallery=entry.gallery, test_set=self.test_set, queries=self.queries,
                            instances=self.instances, sources={"model": entry.source}, limits=self.limits,
                            root=self.root, infos=self.infos, main_name=name,
                            no_match=info.no_match if info is not None else None,
                            search_lane=self.search_lane, rerank_lane=self.rerank_lane,  # one set per process
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

    @property
    def has_caption_index(self) -> bool:
        """Whether the caption index is there (loaded or built), without building it."""
        return self._captions is not None

    def use_caption_index(self, index: CaptionIndex) -> None:
        """Use an already made caption index (a loaded caption gallery) instead of building one."""
        self._captions = index

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

    def shown(self, text: str) -> str:
        """``text`` as the page and the API may show it: no absolute server path (``utils.paths``)."""
        return hide_absolute_paths(text, self.root if self.root is not None else Path.cwd())

    def shown_json(self, value):
        """``value`` (JSON: dicts, lists, strings) with every string as ``shown`` writes it."""
        if isinstance(value, str):
            return self.shown(value)
        if isinstance(value, dict):
            return {k: self.shown_json(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.shown_json(v) for v in value]
        return value

    def status_markdown(self) -> str:
        """The load line: while loading, that the page waits for the models; then what was loaded,
        by name and size, and what is missing with how to fix it. No server path: where each
        piece came from is ``sources_markdown`` (relative paths, shown folded)."""
        if not self.loaded.is_set():
            names = list(self.infos) or ["the model"]
            return (f"**Loading {', '.join(names)} and {'their galleries' if len(names) > 1 else 'its gallery'}…** "
                    "Search is ready in a few seconds; the first example then runs by itself.")
        lines = []
        if self.problems:
            lines.append("**Not everything could be loaded:**")
            lines += [f"- {self.shown(p)}" for p in self.problems]
            if self.model is None or self.gallery is None:
                lines.append("")
                lines.append(HOW_TO_MAKE_ASSETS)
            lines.append("")
        parts = []
        names = [m.name for m in self.models] or ([self.main_name] if self.model is not None else [])
        if names and self.gallery is not None:
            kind = "dual encoder" if not self.can_rerank else "with a fusion encoder (re-ranking)"
            what = (f"{len(names)} models, {' and '.join(names)}, each over the same gallery" if len(names) > 1
                    else f"{'one model' if names[0] == 'model' else 'model ' + names[0]} ({kind}) over a gallery")
            parts.append(f"{what} of {self.gallery.count:,} images")
        if self.test_set is not None:
            parts.append(f"test set: {len(self.test_set):,} instances in {len(self.test_set.languages)} languages"
                         + (f", {len(self.queries):,} typed queries" if self.queries is not None else ""))
        if self.has_caption_index:
            n = sum(g.count for g in self._captions.per_language.values())
            parts.append(f"image to text: {n:,} captions")
        if parts:
            lines.append("Loaded " + " · ".join(parts) + f" ({self.load_seconds:.1f} s).")
        lines += [self.shown(n) for n in self.notes]
        return "\n".join(lines)

    def sources_markdown(self) -> str:
        """Where each piece came from, paths relative to the app's folder (``shown``)."""
        if not self.sources:
            return "Nothing was loaded."
        return "\n".join(f"- {k}: `{self.shown(v)}`" for k, v in self.sources.items())
