"""Issue 23 (hardening, second pass), the app's part, as plain Python (no server; the same
defects over HTTP are in test_app_client.py):

- item 4: the work one request may cause is bounded (re-ranked pairs per request, the query
  cut to what the text tower reads before any work) and re-ranking has its own lane, so it
  cannot hold an ordinary search's;
- item 5: a CCR_MODELS value over 255 characters, with a NUL byte, or naming a folder that does
  not exist starts the app with one line saying so: no exception, no Hub retries;
- item 7: file inputs refuse what is not an uploaded file, naming the input;
- item 8: k, instance and re-rank depth are refused alike by every callback and input.

Fixtures: a tiny model with the fusion encoder ("A") and a tiny dual encoder ("B") over the
same generated test images (see test_ui_callbacks.build_tiny_assets).
"""

from __future__ import annotations

import dataclasses
import threading
import time

import gradio as gr
import pytest
from test_ui_callbacks import build_tiny_assets
from test_ui_compare import add_model, load_pair
from test_ui_rerank import fusion_config

from ccr_demo import LANGUAGES
from ccr_demo.ui import callbacks as cb
from ccr_demo.ui import compare_view, inputs
from ccr_demo.ui import loading as ui_loading
from ccr_demo.ui.lanes import Lane, LaneFull
from ccr_demo.ui.loading import load_app_state
from ccr_demo.ui.manifest import parse_models

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

QUERIES = {"en": "a red circle", "de": "ein roter Kreis", "zh": "红色的圆", "ja": "赤い丸"}


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """"A" (fusion encoder, the main model) and "B" (dual encoder) over the same images."""
    root = tmp_path_factory.mktemp("hardening")
    assets = build_tiny_assets(root, n_test=16, config=fusion_config())
    state = load_pair(assets, add_model(assets, root, "b", seed=1))
    assert state.comparing and state.can_rerank and not state.problems, state.problems
    return state


def _counting_pairs(monkeypatch, model) -> list[int]:
    """Record how many (query, image) pairs each ITM call scores."""
    calls, original = [], model.match_scores

    def match_scores(memory, *args, **kwargs):
        calls.append(int(memory.shape[0]))
        return original(memory, *args, **kwargs)

    monkeypatch.setattr(model, "match_scores", match_scores)
    return calls


# --------------------------------------------------------------------------- item 4: bounded work, lanes


def test_reranked_pairs_per_request_are_bounded(pair, monkeypatch):
    """10 languages x re-rank k 128 scored 1280 pairs in one request (~11 s of CPU on the default
    fusion model); the depth per language is now lowered to fit Limits.max_rerank_pairs, and said."""
    monkeypatch.setattr(pair, "limits", dataclasses.replace(pair.limits, max_rerank_pairs=24))
    calls = _counting_pairs(monkeypatch, pair.model)
    texts = {lang: f"a red circle ({lang})" for lang in LANGUAGES}
    res = cb.search(pair, texts, 5, rerank=True, rerank_k=16)
    assert res.ok and sum(calls) <= 24 and res.rerank["k"] == 2  # 24 // 10 languages
    assert "re-ranked the top 2 per language, not 16" in res.message and "at most 24" in res.message
    assert all(len(hits) == 5 for hits in res.rerank["results"].values())  # k shown is unchanged
    calls.clear()
    res = cb.search(pair, {"en": "a red circle"}, 5, rerank=True, rerank_k=16)  # within the budget: as asked
    assert res.ok and res.rerank["k"] == 16 and sum(calls) == 16 and "per language, not" not in res.message


def test_a_long_query_is_cut_to_what_the_tower_reads(pair, monkeypatch):
    """A 1000-character query was tokenized, cached and carried through fusion whole, though the
    tower reads its first text_max_length tokens; it is cut to them first, tokens unchanged."""
    model = pair.model
    long = ("a red circle above a blue square " * 40)[:1000]
    res = cb.search(pair, {"en": long, "de": "ein roter Kreis"}, 5, rerank=True, rerank_k=4)
    used = res.queries["en"]
    assert res.ok and len(used) < 300 and long.startswith(used)
    assert model.tokenize([used])["input_ids"].tolist() == model.tokenize([long])["input_ids"].tolist()
    assert "1,000 characters; only the first" in res.message and "(what the model reads)" in res.message
    assert res.queries["de"] == "ein roter Kreis"  # a query that fits is left alone
    # the same embedding as the whole text: nothing the model computes changes
    assert cb.search(pair, {"en": long}, 5).hits == cb.search(pair, {"en": used}, 5).hits
    # and gold mode still recognises its own (cut) caption as unedited
    inst = cb.random_instance(pair, ["en", "de"], 2)
    assert cb.search(pair, inst.texts, 5, gold=inst.gold).gold is not None


def test_a_lane_holds_its_slots_in_order_and_refuses_past_its_waiting_room():
    lane = Lane("re-ranking", slots=1, max_waiting=1)
    order = []

    def worker(name):
        with lane.enter():
            order.append(name)

    with lane.enter():
        waiter = threading.Thread(target=worker, args=("second",))
        waiter.start()
        deadline = time.monotonic() + 5
        while lane.waiting < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert lane.inside == 1 and lane.waiting == 1
        with pytest.raises(LaneFull, match="re-ranking is busy: 1 request.* and 1 waiting"), lane.enter():
            pass
    waiter.join(5)
    assert order == ["second"] and lane.inside == 0 and lane.waiting == 0


def test_a_full_rerank_lane_refuses_at_once_and_leaves_ordinary_searches_alone(pair, monkeypatch):
    monkeypatch.setattr(pair, "rerank_lane", Lane("re-ranking", slots=1, max_waiting=0))
    with pair.rerank_lane.enter():  # another request is re-ranking
        start = time.perf_counter()
        res = cb.search(pair, QUERIES, 5, rerank=True, rerank_k=4)
        assert not res.ok and "re-ranking is busy" in res.message and "without re-ranking" in res.message
        assert time.perf_counter() - start < 5  # refused, not queued
        assert cb.search(pair, QUERIES, 5).ok  # the search lane is not the re-ranking lane


def test_search_events_have_workers_for_ordinary_searches_beyond_the_rerank_lane(pair):
    from ccr_demo.ui import build_demo

    demo = build_demo(state=pair)
    fns = {fn.api_name: fn for fn in demo.fns.values() if fn.api_name}
    lim = pair.limits
    for name in ("search", "gold"):
        assert fns[name].concurrency_id == "search"
        assert fns[name].concurrency_limit == lim.search_workers + lim.rerank_workers + lim.max_rerank_waiting


# --------------------------------------------------------------------------- item 5: CCR_MODELS at start


@pytest.fixture
def no_ccr_env(monkeypatch):
    for var in ("CCR_MODEL", "CCR_GALLERY", "CCR_TESTSET", "CCR_CAPTIONS", "CCR_MODELS"):
        monkeypatch.delenv(var, raising=False)
    return monkeypatch


@pytest.fixture
def hub_calls(monkeypatch):
    """Every Hub download the loading asks for (none reaches the network)."""
    import huggingface_hub

    calls = []

    def download(repo_id, *args, **kwargs):
        calls.append(repo_id)
        raise OSError("no network in tests")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", download)
    monkeypatch.setattr(huggingface_hub.hub_mixin, "hf_hub_download", download)  # CCRModel.from_pretrained's
    monkeypatch.setattr(ui_loading, "snapshot_download", download)
    return calls


def test_a_ccr_models_value_too_long_starts_with_one_line(no_ccr_env, hub_calls):
    """OSError: [Errno 36] File name too long ended the app with a traceback."""
    no_ccr_env.setenv("CCR_MODELS", "a=" + "x" * 300 + "@" + "y" * 300)
    state = load_app_state(warm_up=False, caption_cache=False)
    assert state.model is None and len(state.problems) == 2
    assert "File name too long" in state.problems[0] and "at most 255 bytes" in state.problems[0]
    assert "x" * 100 not in state.problems[0]  # the value is shown cut, not echoed whole
    assert hub_calls == []
    no_ccr_env.setenv("CCR_MODELS", "/" + "z" * 300 + ".json")  # a manifest path that long
    state = load_app_state(warm_up=False, caption_cache=False)
    assert "cannot be read: File name too long" in state.problems[0]


def test_a_nul_byte_in_the_models_setting_starts_with_one_line(no_ccr_env, hub_calls, tmp_path):
    """ValueError: embedded null byte ended the app (a manifest path, or an entry's path)."""
    state = load_app_state(warm_up=False, caption_cache=False, models=str(tmp_path / "mod\0els.json"))
    assert "models manifest" in state.problems[0] and "cannot be read" in state.problems[0]
    specs = parse_models("a=/srv/mo\0del@/srv/gallery")
    state = load_app_state(warm_up=False, caption_cache=False, models=specs)
    assert "control character (a NUL byte?)" in state.problems[0] and "\\x00" in state.problems[0]
    assert hub_calls == []


def test_a_missing_folder_is_not_retried_on_the_hub(no_ccr_env, hub_calls, tmp_path):
    """A CCR_MODELS folder that does not exist was taken for a Hub id: 5 retries, 23 s, and a
    message about repo ids. When it looks like a path, or HF_HUB_OFFLINE is set, it is "not found"."""
    no_ccr_env.delenv("HF_HUB_OFFLINE", raising=False)
    no_ccr_env.delenv("TRANSFORMERS_OFFLINE", raising=False)
    (tmp_path / "models").mkdir()
    no_ccr_env.chdir(tmp_path)
    for model in ("./nope/model", "/nonexistent/model", "models/typo", "a/b/c", "~/model"):
        state = load_app_state(warm_up=False, caption_cache=False, models=[("a", model, model + "-gallery")])
        assert "folder not found" in state.problems[0], (model, state.problems)
    assert hub_calls == []
    # owner/name may be a Hub repo: asked for online, only the local cache offline
    state = load_app_state(warm_up=False, caption_cache=False, models=[("a", "owner/model", "owner/gallery")])
    assert set(hub_calls) == {"owner/model"} and "not fetched from the Hub: no network in tests" in state.problems[0]
    no_ccr_env.setenv("HF_HUB_OFFLINE", "1")
    hub_calls.clear()
    state = load_app_state(warm_up=False, caption_cache=False, models=[("a", "owner/model", "owner/gallery")])
    assert "not in the local cache (HF_HUB_OFFLINE is set, so the Hub was not asked)" in state.problems[0]


def test_locate_says_what_a_location_is():
    assert ui_loading.locate(".") is not None
    for bad, says in (("x" * 300, "File name too long"), ("a\0b", "control character"), (__file__, "is a file"),
                      ("/nonexistent/folder", "folder not found")):
        with pytest.raises(ui_loading.LocationError, match=says):
            ui_loading.locate(bad)
    assert ui_loading.locate("owner/name") == "owner/name"  # a Hub id, left to the download


# --------------------------------------------------------------------------- item 7: file inputs


@pytest.mark.parametrize("multiple, bad", [(False, 5), (False, "x"), (False, {"a": 1}), (True, 5), (True, [5]),
                                           (True, "x"), (True, {"path": 1})])
def test_file_inputs_refuse_what_is_not_an_upload(multiple, bad):
    """gr.File answered these with {"error": null} and a pydantic traceback in the server log."""
    component = inputs.File(label="Images" if multiple else "Image", file_count="multiple" if multiple else "single")
    with pytest.raises(gr.Error) as err:
        component.data_model.model_validate(bad, context={"validate_meta": True})
    label = "Images" if multiple else "Image"
    assert err.value.message.startswith(f"{label}: got ") and "uploaded file" in err.value.message
    assert err.value.print_exception is False
    good = {"path": "/tmp/x.png", "meta": {"_type": "gradio.FileData"}}
    assert component.data_model.model_validate([good] if multiple else good, context={"validate_meta": True})
    assert component.api_info() == gr.File(file_count=component.file_count).api_info()  # schema unchanged


# --------------------------------------------------------------------------- item 8: ranges alike


@pytest.mark.parametrize("k", [0, -1, 1e9, 1.5, "5", None, True])
def test_k_is_refused_alike_by_search_and_compare_gold(pair, k):
    """/compare_gold clamped k = 0, -1, 1e9 silently where /search refused; k = 1.5 passed as 1."""
    res = cb.search(pair, QUERIES, k)
    assert not res.ok and res.message.startswith("k: got") and "a whole number from 1 to 20" in res.message
    with pytest.raises(ValueError, match=r"k: got .*; expected a whole number from 1 to 20"):
        compare_view.compare_gold(pair, ["en", "de"], k, instance=2)
    assert not compare_view.compare(pair, QUERIES, k).ok


@pytest.mark.parametrize("instance", [-5, -2, 16, 2.5, "x", True])
def test_instance_is_refused_alike_by_gold_and_compare_gold(pair, instance):
    """/compare_gold took instance -5 as "random" where /gold refused it."""
    with pytest.raises(ValueError, match=r"instance: got .*; expected a whole number from -1 to 15 \(-1 = random"):
        compare_view.compare_gold(pair, ["en", "de"], 5, instance=instance)
    inst = cb.random_instance(pair, ["en", "de"], instance)
    assert inst.gold is None and inst.message.startswith("instance: got")
    for ok in (-1, None, 3, 3.0):
        assert cb.random_instance(pair, ["en"], ok).gold is not None


@pytest.mark.parametrize("rerank_k", [0, 129, 2.5, "16", None, True])
def test_rerank_depth_is_refused_with_the_same_message(pair, rerank_k):
    res = cb.search(pair, QUERIES, 5, rerank=True, rerank_k=rerank_k)
    assert not res.ok and res.message.startswith("re-rank k: got") and "from 1 to 128" in res.message


def test_whole_number_inputs_refuse_fractions_as_the_callbacks_do():
    k = inputs.Slider(1, 20, value=5, step=1, label="Top k")
    for bad in (1.5, 0, 21, float("nan"), "3", True):
        with pytest.raises(gr.Error, match=r"Top k: got .*; expected a whole number from 1 to 20"):
            k.preprocess(bad)
    assert k.preprocess(3.0) == 3 and isinstance(k.preprocess(3.0), int)
    n = inputs.Number(-1, precision=0, label="Instance # (-1 = random)", minimum=-1, maximum=9)
    for bad in (-5, 2.5, 10):
        with pytest.raises(gr.Error, match="Instance # \\(-1 = random\\): got"):
            n.preprocess(bad)
    assert n.preprocess(None) is None and n.preprocess(-1) == -1
    free = inputs.Slider(0.0, 1.0, value=0.5, step=0.1, label="Weight")  # not a whole-number input
    assert free.preprocess(0.25) == 0.25
