"""Loading the app's state once, before serving: ``load_app_state`` and where each piece comes from.

Chooses every item (model, gallery, test set, caption gallery, typed queries, the models to
compare) as the table in ``state`` says: argument > environment variable > the embedded default
in the ``assets`` folder the caller names (``app.py`` passes its own ``assets/``; the library
keeps no path of its own, so without ``assets`` there is no default). Then loads them, warms
the model up and releases the memory loading left behind. Nothing here raises for a missing or
broken item: it goes to ``AppState.problems`` / ``notes``, so the app starts and says what is
wrong. A gallery's images are read only inside the roots ``image_roots`` names (the gallery
itself checks each item against them when it loads, ``utils.paths``). A model or gallery
location is checked before anything is read (``locate``): a name the OS refuses (over 255
bytes, a NUL byte) or a folder that does not exist is one line in ``problems``, and only a
location that can be a Hub id is ever fetched from the Hub (from its local cache alone when
HF_HUB_OFFLINE is set). Each problem is also logged once, as a ``start-up:`` warning.

Model, gallery and towers (``ccr_demo.model`` / ``ccr_demo.gallery``, and ``eval.evaluate``)
are imported inside the functions that load them: they import torch (~2 s), and
``import ccr_demo.ui`` stays light for what needs only ``state`` or ``memory`` (``app.py``
limits malloc arenas before anything is loaded).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import stat
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from huggingface_hub import snapshot_download
from PIL import Image

from ccr_demo.data.queries import QuerySet
from ccr_demo.data.testset import ParallelTestSet
from ccr_demo.ui.caption_index import CaptionIndex
from ccr_demo.ui.manifest import MANIFEST_NAME, ModelsConfigError, ModelSpec, check_names, parse_models, read_manifest
from ccr_demo.ui.memory import drop_clean_weight_pages, release_memory
from ccr_demo.ui.model_info import describe
from ccr_demo.ui.ranges import shown_text
from ccr_demo.ui.state import (
    ENV_CAPTIONS,
    ENV_GALLERY,
    ENV_IMAGE_ROOT,
    ENV_MODEL,
    ENV_MODELS,
    ENV_QUERIES,
    ENV_SERVER_FOLDERS,
    ENV_TESTSET,
    AppState,
    GoldInstances,
    Limits,
    LoadedModel,
    same_images,
)
from ccr_demo.utils.fileio import cache_dir

log = logging.getLogger(__name__)


def default_paths(assets: str | Path | None) -> dict[str, Path | None]:
    """The embedded default's pieces inside an ``assets`` folder (None for each without one)."""
    folder = Path(assets) if assets is not None else None
    return {"model": folder / "model" if folder else None, "gallery": folder / "gallery" if folder else None,
            "testset": folder / "shapes_test" if folder else None}


def default_manifest(assets: str | Path | None) -> Path | None:
    """The embedded default's models manifest, ``models.json`` in ``assets`` (None without one)."""
    return Path(assets) / MANIFEST_NAME if assets is not None else None


def _missing(default: Path | None, env: str) -> str:
    """Why an item has no location, for the app's status text."""
    if default is None:
        return f"no assets folder was given and {env} is not set"
    return f"`{default}` does not exist and {env} is not set"


def _is_dir(path: str | Path) -> bool:
    """``Path.is_dir`` that is False, not an exception, for a name the OS refuses (longer than
    255 bytes: OSError; a NUL byte: ValueError): a bad setting must not end the app at start."""
    try:
        return Path(path).is_dir()
    except (OSError, ValueError):
        return False


def _choose(arg, env: str, default: Path | None) -> tuple[str | None, str]:
    """(location, how it was chosen): argument > environment variable > embedded default."""
    if arg:
        return str(arg), "argument"
    if os.environ.get(env):
        return os.environ[env], f"${env}"
    return (str(default), "default") if default is not None and default.exists() else (None, "default")


def _server_folders_allowed() -> bool:
    return os.environ.get(ENV_SERVER_FOLDERS, "").strip().lower() in ("1", "true", "yes") \
        and "SPACE_ID" not in os.environ


def image_roots(testset_arg, assets: str | Path | None = None) -> list[Path]:
    """Folders besides its own where the gallery's images may lie: the test set's folder (the
    embedded default's gallery indexes the test images) and those named in CCR_IMAGE_ROOT."""
    where, _ = _choose(testset_arg, ENV_TESTSET, default_paths(assets)["testset"])
    roots = [Path(where)] if where and _is_dir(where) else []
    roots += [Path(p) for p in os.environ.get(ENV_IMAGE_ROOT, "").split(os.pathsep) if p.strip()]
    return roots


# A Hub repo id: owner/name in the characters the Hub allows, at most 96 each.
HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}")


def looks_like_hub_id(s: str) -> bool:
    """Whether a model or gallery location that is no local folder may name a Hub repo:
    ``owner/name`` in the Hub's characters, whose ``owner`` is no local folder either
    (``models/new`` beside a ``models/`` folder is a path with a typo, not a repo)."""
    return bool(HUB_ID.fullmatch(s)) and ".." not in s and not _is_dir(s.split("/")[0])


def hub_offline() -> bool:
    """Whether the Hub must not be asked (HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE true), read
    now, with the values huggingface_hub takes for true."""
    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return value.strip().upper() in {"1", "ON", "YES", "TRUE"}


class LocationError(ValueError):
    """A model or gallery location that names no folder and no Hub repo, in one line."""


def locate(location: str) -> Path | str:
    """Where to load a model or gallery from: an existing local folder (a Path), or a Hub repo id
    (a str) to download. LocationError naming the problem otherwise, before anything is read:
    a control character (a NUL byte), a name the OS refuses (over 255 bytes), a file where a
    folder is needed, or no such folder when the location cannot be a Hub id (it looks like a
    path: ``/``, ``./``, ``~``, several ``/``, a local first part), so a typo in a path is said
    at once instead of being retried on the Hub (5 tries, 23 s without a network)."""
    if not location.isprintable():
        raise LocationError("it contains a control character (a NUL byte?): it is neither a folder nor a Hub id")
    try:
        st = os.stat(location)
    except (FileNotFoundError, NotADirectoryError):
        st = None
    except OSError as e:  # ENAMETOOLONG, EACCES, ELOOP...
        raise LocationError(f"not a usable path: {e.strerror}" + (" (a file or folder name may have at most 255 "
                                                                   "bytes)" if e.errno == errno.ENAMETOOLONG else "")
                            ) from None
    if st is not None:
        if stat.S_ISDIR(st.st_mode):
            return Path(location)
        raise LocationError("it is a file; a folder is needed")
    if looks_like_hub_id(location):
        return location
    raise LocationError("folder not found (and it is no Hub id, owner/name, either)")


def hub_problem(repo_id: str, error: Exception) -> str:
    """One line for a Hub id that could not be fetched (huggingface_hub's own messages run to
    several lines); offline, it says that only the local cache was looked at."""
    if hub_offline():
        return (f"no such folder, and Hub repo {repo_id} is not in the local cache (HF_HUB_OFFLINE is set, "
                "so the Hub was not asked)")
    return f"no such folder, and not fetched from the Hub: {str(error).strip().splitlines()[0]}"


def hub_folder(repo_id: str) -> Path:
    """A gallery on the Hub: a dataset repo first, else a model repo (downloaded once, cached)."""
    try:
        return Path(snapshot_download(repo_id, repo_type="dataset"))
    except Exception:  # noqa: BLE001 - try the other repo type, then report
        return Path(snapshot_download(repo_id, repo_type="model"))


def _warm_up(model, text_rounds: int = 4) -> None:
    """The first text encodes are 10-50x slower (kernel set-up); pay that at start-up, not per user.
    One image batch too: the first upload then costs no set-up, and the memory the image path
    keeps is part of the at-rest figure rather than growth under load (docs/bench/bench_load.md).
    A model whose text tower another model already warmed needs one round (its projection)."""
    texts = ["a red circle", "ein roter Kreis", "un cercle rouge", "červený kruh", "红色的圆", "赤い丸"]
    for _ in range(text_rounds):
        model.encode_texts(texts)
    model.encode_images([Image.new("RGB", (96, 96), (200, 40, 40)), Image.new("RGB", (120, 80), (20, 90, 200))])


def model_specs(model_dir, gallery_dir, models, assets: str | Path | None = None) -> list[ModelSpec] | None:
    """The models to compare, or None for one model chosen as before (argument, CCR_MODEL /
    CCR_GALLERY, ``assets``/model): ``models`` argument > a model or gallery argument > CCR_MODELS >
    CCR_MODEL / CCR_GALLERY > ``assets``/models.json. ModelsConfigError for an unusable list."""
    if models is not None:
        if isinstance(models, (str, Path)):
            return read_manifest(models)
        return check_names([m if isinstance(m, ModelSpec) else ModelSpec(*m, how="argument") for m in models],
                            "models argument")
    if model_dir or gallery_dir:
        return None
    if os.environ.get(ENV_MODELS, "").strip():
        return parse_models(os.environ[ENV_MODELS])
    if os.environ.get(ENV_MODEL) or os.environ.get(ENV_GALLERY):
        return None
    manifest = default_manifest(assets)
    return read_manifest(manifest) if manifest is not None and manifest.is_file() else None


def _load_compared(spec: ModelSpec, state: AppState, roots: list[Path], warm_up: bool) -> LoadedModel | None:
    """One more model and its gallery, kept only if the gallery indexes the first model's images."""
    from ccr_demo.gallery.gallery import Gallery  # torch: see the module's docstring

    label = f"model {spec.name!r} ({spec.how})"

    def warm(model) -> None:
        if warm_up:
            _warm_up(model, text_rounds=1 if any(m.model.text_tower is model.text_tower for m in state.models) else 4)

    model = _load_model(state, spec.model, f"{label}: `{shown_text(spec.model)}`", warm)
    if model is None:
        return None
    try:
        source = locate(spec.gallery)
        folder = _hub_download(spec.gallery, hub_folder) if isinstance(source, str) else source
        hub = isinstance(source, str)
        gallery = Gallery.load(folder, model, image_root=roots + ([folder.parent.parent] if hub else []))
        if gallery.kind != "image":
            raise ValueError(f"it is a {gallery.kind} gallery; text-to-image search needs images")
    except Exception as e:  # noqa: BLE001
        state.problems.append(f"{label}: gallery `{shown_text(spec.gallery)}` could not be loaded: {e}")
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
                   warm_up: bool = True, caption_cache: str | Path | None | bool = True,
                   assets: str | Path | None = None, root: str | Path | None = None) -> AppState:
    """Load model, gallery, test set and caption gallery; never raises for missing/broken items.

    ``models``: models to compare (``ModelSpec`` or (name, model, gallery) tuples, or a manifest
    path); see ``model_specs`` for what is used without it. ``assets``: the folder of the embedded
    default (``model``, ``gallery``, ``shapes_test``, ``models.json``), used for what no argument
    or variable names; None: no default (``app.py`` passes its ``assets/``). With several, they share one
    instance of an identical offline text tower (``towers.share_offline_text_towers``).

    ``allow_local_paths`` (server folders as a session gallery source) defaults to off: users of a
    public server must not name its paths. ``CCR_ALLOW_SERVER_FOLDERS=1`` turns it on for a local,
    single-user run (never on a Space: ``SPACE_ID`` set keeps it off). Even then only the images
    of the gallery built from the folder are served, never the folder.
    ``caption_cache``: True = ``fileio.cache_dir()/captions`` (``CCR_DEMO_CACHE``), a folder, or False.
    ``root``: the app's folder, paths are shown relative to it (default: the one above ``assets``).

    The same as ``plan_app_state`` then ``finish_loading``, which ``build_demo(background=True)``
    runs apart: the page is served after the first, the second runs behind it.
    """
    state = plan_app_state(model_dir, gallery_dir, testset_dir, captions_dir, models=models, limits=limits,
                           allow_local_paths=allow_local_paths, warm_up=warm_up, caption_cache=caption_cache,
                           assets=assets, root=root)
    finish_loading(state)
    return state


@dataclass
class LoadPlan:
    """What ``plan_app_state`` chose and ``finish_loading`` loads."""

    specs: list | None
    model_dir: str | Path | None
    gallery_dir: str | Path | None
    testset_dir: str | Path | None
    captions_dir: str | Path | None
    warm_up: bool
    assets: str | Path | None
    testset_where: str | None  # the test set's folder as chosen, for its typed queries beside it


def plan_app_state(model_dir: str | Path | None = None, gallery_dir: str | Path | None = None,
                   testset_dir: str | Path | None = None, captions_dir: str | Path | None = None, *,
                   models: Sequence | str | Path | None = None,
                   limits: Limits | None = None, allow_local_paths: bool | None = None,
                   warm_up: bool = True, caption_cache: str | Path | None | bool = True,
                   assets: str | Path | None = None, root: str | Path | None = None) -> AppState:
    """Everything that needs no torch (arguments as ``load_app_state``): which models, the test set,
    its typed queries, and what the models' files say (``model_info``: gallery sizes, saved
    evaluations, calibrations). About a second: the page can be built and served from it while
    ``finish_loading`` loads the models. The state's ``loaded`` event is clear until then."""
    start = time.perf_counter()
    if caption_cache is True:
        caption_cache = cache_dir() / "captions"
    if root is None:
        root = Path(assets).resolve().parent if assets is not None else Path.cwd()
    state = AppState(limits=limits or Limits(),
                     allow_local_paths=_server_folders_allowed() if allow_local_paths is None
                     else allow_local_paths,
                     caption_cache=Path(caption_cache) if caption_cache else None,
                     root=Path(root), loading_since=start)
    state.loaded.clear()
    try:
        specs = model_specs(model_dir, gallery_dir, models, assets)
    except ModelsConfigError as e:
        specs = None
        state.problems.append(f"{e}; loading one model instead")
    state.plan = LoadPlan(specs, model_dir, gallery_dir, testset_dir, captions_dir, warm_up, assets, None)
    _describe_models(state)

    default_testset = default_paths(assets)["testset"]
    where, how = _choose(testset_dir, ENV_TESTSET, default_testset)
    if where is not None:
        try:
            state.test_set = ParallelTestSet.from_iglue(where)
            state.instances = GoldInstances.from_testset(state.test_set)
            state.plan.testset_where = where
            state.sources["test set"] = f"{where} ({how}, {len(state.test_set)} instances)"
        except Exception as e:  # noqa: BLE001
            state.problems.append(f"test set `{where}` ({how}) could not be read: {e}")
    if state.test_set is None:
        state.notes.append(f"No test set ({_missing(default_testset, ENV_TESTSET)}): "
                           "gold mode and evaluation are off.")
    state.load_seconds = time.perf_counter() - start
    return state


def _describe_models(state: AppState) -> None:
    """``state.infos``: each configured model as its files describe it (``model_info.describe``)."""
    plan = state.plan
    if plan.specs:
        named = [(spec.name, spec.model, spec.gallery) for spec in plan.specs]
    else:
        defaults = default_paths(plan.assets)
        model, _ = _choose(plan.model_dir, ENV_MODEL, defaults["model"])
        gallery, _ = _choose(plan.gallery_dir, ENV_GALLERY, defaults["gallery"])
        named = [("model", model, gallery)] if model else []
    state.infos = {name: describe(name, str(model), str(gallery) if gallery else None)
                   for name, model, gallery in named}
    if named:
        state.main_name = named[0][0]
        state.no_match = state.infos[state.main_name].no_match


def finish_loading(state: AppState) -> None:
    """Load what ``plan_app_state`` chose: models, galleries, caption gallery, warm-up; then set
    ``state.loaded``, whatever happened (problems are recorded, never raised)."""
    try:
        _load_models(state)
    except Exception as e:  # noqa: BLE001 - the page is up: it must say what went wrong, not hang
        log.exception("loading failed")
        state.problems.append(f"loading failed: {e}")
    finally:
        state.load_seconds = time.perf_counter() - state.loading_since
        for problem in state.problems:  # one line each for the operator's log; the app shows them too
            log.warning("start-up: %s", problem)
        state.loaded.set()


def _load_models(state: AppState) -> None:
    plan = state.plan
    if state.test_set is not None:  # the typed queries' default location is in eval (torch)
        _load_queries(state, plan.testset_where)
    specs, model_dir, gallery_dir, testset_dir, warm_up, assets = (plan.specs, plan.model_dir, plan.gallery_dir,
                                                                   plan.testset_dir, plan.warm_up, plan.assets)
    sharing = contextlib.ExitStack()
    if specs:
        model_dir, gallery_dir = specs[0].model, specs[0].gallery
        if len(specs) > 1:
            from ccr_demo.model.towers import share_offline_text_towers  # torch: see the module's docstring

            sharing.enter_context(share_offline_text_towers())
    with sharing:
        gallery_dir = _load_main_model(state, specs, model_dir, gallery_dir, testset_dir, warm_up, assets)
        if specs and len(specs) > 1 and state.gallery is not None:
            state.models.append(LoadedModel(specs[0].name, state.model, state.gallery, state.sources["model"]))
            roots = image_roots(testset_dir, assets)
            for spec in specs[1:]:
                entry = _load_compared(spec, state, roots, warm_up)
                if entry is not None:
                    state.models.append(entry)
                    state.sources[f"model {spec.name!r}"] = entry.source
            if len(state.models) < 2:
                state.models = []
                state.notes.append("Model comparison is off: fewer than two models could be loaded.")

    cap = plan.captions_dir or os.environ.get(ENV_CAPTIONS)
    if not cap and gallery_dir is not None and _is_dir(f"{str(gallery_dir).rstrip('/')}-captions"):
        cap = f"{str(gallery_dir).rstrip('/')}-captions"
    if cap and state.model is not None:
        try:
            from ccr_demo.gallery.gallery import Gallery  # torch: see the module's docstring

            g = Gallery.load(cap, state.model)
            state.use_caption_index(CaptionIndex.from_gallery(g, source=f"caption gallery {state.shown(str(cap))}"))
            if state.instances is None:
                state.instances = GoldInstances.from_caption_gallery(g)
            state.sources["captions"] = f"{cap} ({g.count} captions)"
        except Exception as e:  # noqa: BLE001
            state.problems.append(f"caption gallery `{cap}` could not be loaded: {e}")
    if not state.has_caption_index and state.instances is not None and state.model is not None:
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
    release_memory()  # loading freed ~300 MB of temporaries that glibc would otherwise keep
    released = drop_clean_weight_pages()  # the weights hash made every mapped page resident
    log.info("start-up: %.0f MB of clean mapped weight pages released", released / 2**20)
    warmed = set()
    for model in [m.model for m in state.models] or [state.model]:
        if warm_up and model is not None and id(model.text_tower) not in warmed:  # fault back in what every
            model.encode_texts(["a red circle", "红色的圆"])  # query reads (encoder layers), once per tower
            warmed.add(id(model.text_tower))


def _load_main_model(state: AppState, specs, model_dir, gallery_dir, testset_dir, warm_up: bool, assets):
    """The app's main model and its gallery (the first of several), chosen as ``_choose`` says;
    returns the gallery's folder (a Hub gallery's download) for its ``-captions`` sibling."""
    from ccr_demo.gallery.gallery import Gallery  # torch: see the module's docstring

    defaults = default_paths(assets)
    where, how = _choose(model_dir, ENV_MODEL, defaults["model"])
    if specs:
        how = f"{specs[0].name!r}, {specs[0].how}"
    if where is None:
        state.problems.append(f"no model: {_missing(defaults['model'], ENV_MODEL)}.")
    else:
        state.model = _load_model(state, where, f"model `{shown_text(where)}` ({how})",
                                  _warm_up if warm_up else None)
        if state.model is not None:
            state.sources["model"] = f"{where} ({how})"

    where, how = _choose(gallery_dir, ENV_GALLERY, defaults["gallery"])
    if specs:
        how = f"{specs[0].name!r}, {specs[0].how}"
    if where is None:
        state.problems.append(f"no gallery: {_missing(defaults['gallery'], ENV_GALLERY)}.")
    elif state.model is not None:
        try:
            source = locate(where)
            hub = isinstance(source, str)
            folder = _hub_download(where, hub_folder) if hub else source
            roots = image_roots(testset_dir, assets)
            if hub:  # a Hub snapshot's files are links into the repo's own blobs/ folder in the cache
                roots.append(folder.parent.parent)
            state.gallery = Gallery.load(folder, state.model, image_root=roots)
            if state.gallery.kind != "image":
                raise ValueError(f"it is a {state.gallery.kind} gallery; text-to-image search needs images")
            state.sources["gallery"] = f"{where} ({how}, {state.gallery.count} images)"
            gallery_dir = folder
        except Exception as e:  # noqa: BLE001
            state.gallery = None
            state.problems.append(f"gallery `{shown_text(where)}` ({how}) could not be loaded: {e}")
    else:
        state.problems.append(f"gallery `{shown_text(where)}` not loaded: it needs the model that built it.")
    return gallery_dir


def _hub_download(repo_id: str, download):
    """``download(repo_id)``, its failure as one LocationError line (``hub_problem``)."""
    try:
        return download(repo_id)
    except Exception as e:  # noqa: BLE001 - huggingface_hub raises many types; all mean "not fetched"
        raise LocationError(hub_problem(repo_id, e)) from None


def _load_model(state: AppState, where: str, label: str, warm: Callable | None = None):
    """The model at ``where`` (a folder or Hub id, ``locate``) after ``warm(model)``, or None
    with the problem recorded."""
    from ccr_demo.model.modeling import CCRModel  # torch: see the module's docstring

    try:
        source = locate(where)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            if isinstance(source, str):
                model = _hub_download(source, CCRModel.from_pretrained)
            else:
                model = CCRModel.from_pretrained(source)
        if warm is not None:
            warm(model)
        return model
    except Exception as e:  # noqa: BLE001
        state.problems.append(f"{label} could not be loaded: {e}")
        return None


def _load_queries(state: AppState, testset_where: str) -> None:
    """Typed queries for the Evaluate tab: ``CCR_QUERIES``, else the ``test_queries`` split
    beside the test set (where the shapes world writes it), if any."""
    from ccr_demo.eval.evaluate import default_queries  # torch: see the module's docstring

    path = os.environ.get(ENV_QUERIES) or default_queries(testset_where)
    if not path:
        return
    try:
        state.queries = QuerySet.load(path)
        state.sources["typed queries"] = f"{path} ({len(state.queries)} queries)"
    except Exception as e:  # noqa: BLE001
        state.problems.append(f"typed queries `{path}` could not be read: {e}")
