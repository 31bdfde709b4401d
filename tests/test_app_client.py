"""The launched app driven over HTTP with gradio_client: the named endpoints search, gold,
image_to_text and evaluate answer with what the callbacks compute, and bad input leaves the
app working. Uses generated tiny fixtures (see test_ui_callbacks.build_tiny_assets)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_ui_callbacks import build_tiny_assets, load_state

from ccr_demo.ui import build_demo, launch_options, queue_options
from ccr_demo.ui import callbacks as cb
from ccr_demo.ui import eval_callbacks as eval_cb

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore")]

QUERIES = {"en": "a red circle", "de": "ein roter Kreis", "zh": "红色的圆", "ja": "赤い丸"}
SUMMARY = 4  # /search answers status, MRV, rank table, overlap, then the numbers (JSON), then the panes
GOLD_SUMMARY = 10 + SUMMARY  # /gold answers the 10 boxes first


def _value(out):
    """An output's value, whether Gradio sent it plain or as an update (``{"__type__": "update", ...}``)."""
    return out["value"] if isinstance(out, dict) and out.get("__type__") == "update" else out


def _client_of(state):
    """Serve the demo of ``state`` on 127.0.0.1 (a free port), queued as app.py queues it, and
    yield (gradio_client, state) until the fixture closes it."""
    from gradio_client import Client

    demo = build_demo(state=state)
    demo.queue(**queue_options())
    _, url, _ = demo.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True, **launch_options())
    try:
        yield Client(url, verbose=False), state
    finally:
        demo.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(client, app state, assets folder): the demo of the tiny default."""
    assets = build_tiny_assets(tmp_path_factory.mktemp("client_assets"))
    for client, state in _client_of(load_state(assets)):
        yield client, state, assets


def _search(client, **texts):
    return client.predict(languages=list(texts), k=5, gallery="default gallery", **texts, api_name="/search")


def test_search_in_four_languages(served):
    client, state, _ = served
    out = _search(client, **QUERIES)
    status, mrv_md, table, overlap, summary, *panes = out
    expect = cb.search(state, QUERIES, 5)
    assert summary["mrv"] == pytest.approx(expect.mrv) and summary["consensus"] == expect.consensus
    assert f"Query MRV: {expect.mrv:.3f}" in mrv_md
    assert table["headers"] == ["image", "role", *[f"rank {lg}" for lg in QUERIES], "mean rank", "std"]
    assert [row[0] for row in table["data"]] == list(expect.table["image"])
    assert overlap["headers"] == ["top-5 overlap", *QUERIES]
    assert len(panes) == 10
    by_lang = dict(zip(["en", "de", "fr", "cs", "zh", "ja", "id", "es", "ru", "tr"], panes))
    for lang in QUERIES:
        items = by_lang[lang]["value"] if isinstance(by_lang[lang], dict) else by_lang[lang]
        assert len(items) == 5
        assert Path(items[0]["image"]).is_file()  # the image file itself was served
        assert items[0]["caption"].split("\n")[0] == expect.panes[lang][0][1].split("\n")[0]
    assert [h["image"] for h in summary["results"]["en"]] == [h["image"] for h in expect.hits["en"]]


def test_gold_mode(served):
    client, state, _ = served
    out = client.predict(languages=["en", "de", "zh"], k=5, instance=2, api_name="/gold")
    texts, (status, mrv_md, _table, _overlap, summary) = out[:10], out[10:15]
    ts = state.test_set
    assert texts[0] == ts.instance_captions("en")[2][0] and texts[4] == ts.instance_captions("zh")[2][0]
    assert summary["gold"]["image_id"] == ts.image_ids[2]
    expect = cb.search(state, {lg: ts.instance_captions(lg)[2][0] for lg in ["en", "de", "zh"]}, 5,
                       gold={"image_id": ts.image_ids[2],
                             "captions": {lg: ts.instance_captions(lg)[2][0] for lg in ["en", "de", "zh"]}})
    assert summary["gold"]["ranks"] == expect.gold["ranks"]
    assert summary["gold"]["mrv"] == pytest.approx(expect.gold["mrv"])
    assert "★ Gold image" in mrv_md and f"instance 2 of {len(ts)}" in status


def test_evaluate_small_slice(served):
    client, state, _ = served
    status, head, table, chart, md, report, query_head, query_table = client.predict(
        max_instances=6, languages=["en", "de"], api_name="/evaluate")
    table, query_table = _value(table), _value(query_table)
    assert report["n_instances"] == 6 and report["languages"] == ["en", "de"]
    assert "MRV: text-to-image" in head and "| en |" in md
    assert "6 instances ranked among their 6 images" in head and 'data-group="de"' in chart
    assert [row[0] for row in table["data"]] == ["en", "de"]
    expect = eval_cb.evaluate(state, 6, ["en", "de"])
    assert report["mrv"] == pytest.approx(expect.report["mrv"])
    if state.queries is not None:  # typed queries over the same 6 images, beside R@K and MRV
        for lang in ("en", "de"):
            assert report["queries"]["per_language"][lang] == pytest.approx(
                expect.report["queries"]["per_language"][lang])
        assert "Typed queries" in query_head and [row[0] for row in query_table["data"]] == ["en", "de"]


def test_image_to_text_and_bad_files(served, tmp_path):
    from gradio_client import handle_file

    client, state, assets = served
    image = sorted((assets["testset"] / "images").glob("*.png"))[0]
    shown, md, table, summary = client.predict(image=handle_file(str(image)), languages=["en", "ja"], k=2,
                                               api_name="/image_to_text")
    assert len(table["data"]) == 4 and {r[0] for r in table["data"]} == {"en", "ja"}
    assert Path(shown).is_file()
    fake = tmp_path / "fake.png"
    fake.write_bytes(b"this is not a png")
    shown, md, table, summary = client.predict(image=handle_file(str(fake)), languages=["en"], k=2,
                                               api_name="/image_to_text")
    assert "cannot be used as an image" in md and not table["data"]
    notes = tmp_path / "notes.txt"
    notes.write_text("not an image")
    _, md, table, _ = client.predict(image=handle_file(str(notes)), languages=["en"], k=2, api_name="/image_to_text")
    assert "not an image" in md and not table["data"]
    cmyk = tmp_path / "cmyk.jpg"
    Image.fromarray(np.full((20, 30, 3), 200, np.uint8)).convert("CMYK").save(cmyk)
    _, md, table, _ = client.predict(image=handle_file(str(cmyk)), languages=["en"], k=1, api_name="/image_to_text")
    assert len(table["data"]) == 1


def test_bad_queries_leave_the_app_working(served):
    client, _, _ = served
    status, mrv_md, table, *_ = _search(client, en="", de="   ")
    assert "at least one language" in status and not table["data"]
    status, *_ = _search(client, en="🔴🔴🔴", de="?!")
    assert "no letters or digits" in status
    status, mrv_md, *_ = _search(client, en="a red circle " * 800, zh="红色的圆 red 圆")
    assert "10,400 characters; only the first" in status and "(what the model reads)" in status
    assert "Query MRV" in mrv_md
    out = _search(client, **QUERIES)  # still answers normally
    assert out[SUMMARY]["mrv"] is not None


def test_session_gallery_is_per_client(served, tmp_path):
    from gradio_client import Client, handle_file

    client, state, assets = served
    images = sorted((assets["testset"] / "images").glob("*.png"))[:3]
    notes = tmp_path / "notes.txt"
    notes.write_text("not an image")
    status, choice = client.predict(files=[handle_file(str(p)) for p in images] + [handle_file(str(notes))],
                                    folder="", api_name="/build_gallery")
    assert "**3 images**" in status and "notes.txt" in status and choice == "my gallery"
    out = client.predict(languages=["en", "zh"], k=2, gallery="my gallery", en="a red circle", zh="红色的圆",
                         api_name="/search")
    assert {row[0] for row in out[2]["data"]} <= {p.name for p in images}
    # another client (another session) has no gallery of its own: it gets the default one, and is told so
    other = Client(client.src, verbose=False)
    out = other.predict(languages=["en", "zh"], k=2, gallery="my gallery", en="a red circle", zh="红色的圆",
                        api_name="/search")
    assert "not built a gallery yet" in out[0]
    assert {row[0] for row in out[2]["data"]} <= set(state.gallery.ids)


# --------------------------------------------------------------------------- issue 11 regressions


def _get(client, path: str):
    import httpx

    return httpx.get(f"{client.src.rstrip('/')}/gradio_api/file={path}", timeout=30)


def test_only_returned_gallery_images_are_served(served, tmp_path):
    """Items 1 and 2: after one /build_gallery with a server folder, every file under it (and with
    an absolute item path, the whole disk) downloaded through /gradio_api/file=."""
    client, state, assets = served
    out = _search(client, **QUERIES)
    shown = out[6 + 0]["value"] if isinstance(out[6], dict) else out[6]  # the en pane
    assert shown  # results are served...
    images = assets["testset"] / "images"
    for path in ["/etc/passwd", str(assets["testset"] / "annotations" / "en" / "test.jsonl"),
                 str(sorted(images.glob("*.png"))[-1]), str(assets["model"] / "config.json")]:
        assert _get(client, path).status_code in (403, 404), path  # ...but never a folder
    folder = tmp_path / "mine"
    folder.mkdir()
    Image.new("RGB", (20, 20), (9, 9, 9)).save(folder / "a.png")
    (folder / "secret.txt").write_text("private")
    state.allow_local_paths = True  # CCR_ALLOW_SERVER_FOLDERS=1: a local single-user run
    try:
        status, _ = client.predict(files=[], folder=str(folder), api_name="/build_gallery")
    finally:
        state.allow_local_paths = False
    assert "**1 images**" in status
    assert _get(client, str(folder / "secret.txt")).status_code in (403, 404)
    assert _get(client, str(folder / "a.png")).status_code in (403, 404)  # served only as a copy, when shown


def test_bad_api_inputs_get_clear_messages(served):
    """Item 12: these gave Gradio's generic error (and a traceback in the log). (NaN, which JSON
    cannot carry from gradio_client, is covered in test_ui_callbacks.)"""
    from gradio_client.exceptions import AppError

    client, _, _ = served
    cases = [
        (dict(languages=None, k=5, gallery="default gallery", en="a red circle"), "/search", None),
        (dict(languages=["en"], k="abc", gallery="default gallery", en="a red circle"), "/search", "Top k: got 'abc'"),
        (dict(languages=["en"], k=None, gallery="default gallery", en="a red circle"), "/search", "Top k: got None"),
        (dict(languages=["en"], k=5, instance="abc"), "/gold", "Instance # (-1 = random): got 'abc'"),
        (dict(max_instances="abc", languages=["en"]), "/evaluate", "Max instances: got 'abc'"),
    ]
    for kwargs, api, expect in cases:
        if expect is None:
            status = client.predict(**kwargs, api_name=api)[0]
            assert "Choose at least one language" in status
            continue
        with pytest.raises(AppError) as err:
            client.predict(**kwargs, api_name=api)
        assert expect in str(err.value), (api, kwargs, str(err.value))
    assert _search(client, **QUERIES)[SUMMARY]["mrv"] is not None  # still serving


def test_concurrent_identical_image_to_text_requests_all_succeed(served):
    """Item 15: 2 of 150 identical concurrent requests failed with RemoteProtocolError (a cached
    file rewritten while it was being served). Bounded: 30 requests from 10 threads, loopback."""
    from concurrent.futures import ThreadPoolExecutor

    import httpx
    from gradio_client import Client, handle_file

    client, _, assets = served
    image = str(sorted((assets["testset"] / "images").glob("*.png"))[0])

    def one(_):
        c = Client(client.src, verbose=False, download_files=False)
        shown, md, table, _ = c.predict(image=handle_file(image), languages=["en"], k=1, api_name="/image_to_text")
        r = httpx.get(shown["url"], timeout=30)
        r.raise_for_status()
        return len(r.content)

    with ThreadPoolExecutor(10) as pool:
        sizes = list(pool.map(one, range(30)))
    assert len(set(sizes)) == 1 and sizes[0] > 0


# --------------------------------------------------------------------------- issue 12: fusion re-ranking


@pytest.fixture(scope="module")
def served_fusion(tmp_path_factory):
    """(client, app state): the demo of a tiny model WITH the fusion encoder."""
    from test_ui_rerank import fusion_config

    assets = build_tiny_assets(tmp_path_factory.mktemp("client_fusion_assets"), config=fusion_config())
    state = load_state(assets)
    yield from _client_of(state)


def test_search_and_gold_rerank_over_the_api(served_fusion):
    from gradio_client.exceptions import AppError

    client, state = served_fusion
    status, mrv_md, table, overlap, summary, *panes = client.predict(
        languages=list(QUERIES), k=5, gallery="default gallery", **QUERIES, rerank=True, rerank_k=8,
        api_name="/search")
    expect = cb.search(state, QUERIES, 5, rerank=True, rerank_k=8)
    assert summary["rerank"]["k"] == 8 and summary["rerank"]["results"] == expect.rerank["results"]
    assert summary["mrv"] == pytest.approx(expect.mrv)  # the contrastive figure stays beside it
    assert summary["rerank"]["mrv"] == pytest.approx(expect.rerank["mrv"])
    assert f"Query MRV: {expect.mrv:.3f} → {expect.rerank['mrv']:.3f}" in mrv_md
    assert " → " in table["data"][0][3]  # rank en: contrastive → re-ranked
    by_lang = dict(zip(["en", "de", "fr", "cs", "zh", "ja", "id", "es", "ru", "tr"], panes))
    items = by_lang["en"]["value"] if isinstance(by_lang["en"], dict) else by_lang["en"]
    assert [it["caption"].split("\n")[0].lstrip("★◆ ") for it in items] == \
        [h["image"] for h in expect.rerank["results"]["en"]]
    assert "re-ranked (contrastive #" in items[0]["caption"]
    # without the new parameters: the contrastive search, as before
    plain = client.predict(languages=["en", "de"], k=5, gallery="default gallery", en=QUERIES["en"],
                           de=QUERIES["de"], api_name="/search")
    assert "rerank" not in plain[SUMMARY] and plain[SUMMARY]["mrv"] is not None
    # gold mode re-ranked: the gold image's ranks and MRV both ways
    out = client.predict(languages=["en", "de", "zh"], k=5, instance=2, rerank=True, rerank_k=24, api_name="/gold")
    summary = out[GOLD_SUMMARY]
    assert summary["rerank"]["gold"]["image_id"] == summary["gold"]["image_id"] == state.test_set.image_ids[2]
    assert "★ Gold image" in out[11] and "gold MRV **" in out[11] and " → " in out[11]
    # bad re-rank parameters: a clear message, the app keeps serving
    for bad, expect_msg in ((0, "Re-rank k: got 0"), (500, "Re-rank k: got 500"), ("yes", "Re-rank k: got 'yes'")):
        with pytest.raises(AppError) as err:
            client.predict(languages=["en"], k=5, gallery="default gallery", en="a red circle", rerank=True,
                           rerank_k=bad, api_name="/search")
        assert expect_msg in str(err.value)
    with pytest.raises(AppError, match="got 'on'"):
        client.predict(languages=["en"], k=5, gallery="default gallery", en="a red circle", rerank="on",
                       api_name="/search")
    assert client.predict(languages=["en"], k=5, gallery="default gallery", en="a red circle", rerank=True,
                          api_name="/search")[SUMMARY]["rerank"]["k"] == 16  # the default depth


def test_rerank_on_a_dual_encoder_says_why(served):
    client, _, _ = served
    status, mrv_md, table, *_ = client.predict(languages=["en"], k=5, gallery="default gallery",
                                               en="a red circle", rerank=True, api_name="/search")
    assert "dual encoder" in status and not table["data"]
    assert _search(client, **QUERIES)[SUMMARY]["mrv"] is not None


# --------------------------------------------------------------------------- issue 9: two models side by side


@pytest.fixture(scope="module")
def served_pair(tmp_path_factory):
    """(client, app state): the demo comparing two tiny random models "A" and "B" over the same images."""
    from test_ui_compare import add_model, load_pair

    root = tmp_path_factory.mktemp("client_pair")
    assets = build_tiny_assets(root)
    state = load_pair(assets, add_model(assets, root, "b", seed=1))
    assert state.comparing, state.problems
    yield from _client_of(state)


def test_compare_over_the_api(served_pair):
    from gradio_client.exceptions import AppError

    from ccr_demo.ui import compare_view

    client, state = served_pair
    got = client.predict(languages=list(QUERIES), k=5, **QUERIES, api_name="/compare")
    expect = compare_view.compare(state, QUERIES, 5)
    assert got["verdict"] == expect.verdict and got["languages"] == list(QUERIES)
    for name in ("A", "B"):
        assert got["models"][name]["mrv"] == pytest.approx(expect.mrv(name))
        assert got["models"][name]["ranks"] == expect.ranks(name)
        assert got["models"][name]["results"] == expect.results[name].hits
    # one model chosen by name; a path or an unknown name is refused naming the input
    got = client.predict(languages=["en", "de"], k=3, en=QUERIES["en"], de=QUERIES["de"], models=["B"],
                         api_name="/compare")
    assert list(got["models"]) == ["B"]
    for bad in (["/etc/passwd"], ["C"], "A"):
        with pytest.raises(AppError, match=r"models: got"):
            client.predict(languages=["en"], k=3, en="a red circle", models=bad, api_name="/compare")
    # /search fills both views from one request (issue 22): the detail view's numbers, then the
    # verdict and the side-by-side grid of the same query
    out = _search(client, **QUERIES)
    assert out[SUMMARY]["mrv"] == pytest.approx(expect.results["A"].mrv)
    verdict, grid, summary = out[-3:]
    assert expect.verdict in verdict and summary["verdict"] == expect.verdict
    assert grid.count("data:image/png;base64,") == 2 * 5 * len(QUERIES)


def test_compare_gold_over_the_api(served_pair):
    from gradio_client.exceptions import AppError

    from ccr_demo.ui import compare_view

    client, state = served_pair
    langs = ["en", "de", "zh"]
    got = client.predict(languages=langs, k=5, instance=2, api_name="/compare_gold")
    expect, inst = compare_view.compare_gold(state, langs, 5, 2)
    assert got["gold"] == state.test_set.image_ids[2] == expect.gold_id and got["instance"] == 2
    assert got["texts"] == inst.texts and got["verdict"] == expect.verdict
    for name in ("A", "B"):
        assert got["models"][name]["ranks"] == expect.ranks(name)
        assert got["models"][name]["mrv"] == pytest.approx(expect.mrv(name))
    for kwargs, message in ((dict(instance="abc"), "instance: got 'abc'"), (dict(models=["../b"]), "models: got"),
                            (dict(k="x"), "k: got 'x'"), (dict(instance=10_000), "instance: got 10000")):
        with pytest.raises(AppError, match=message):
            client.predict(**{"languages": langs, "k": 5, "instance": 2, **kwargs}, api_name="/compare_gold")
    out = client.predict(languages=langs, k=5, instance=2, api_name="/gold")  # unchanged
    assert out[GOLD_SUMMARY]["gold"]["image_id"] == state.test_set.image_ids[2]


def test_evaluate_compare_over_the_api(served_pair):
    from ccr_demo.ui import compare_view

    client, state = served_pair
    status, head, table, chart, reports = client.predict(max_instances=6, languages=["en", "de"],
                                                         api_name="/evaluate_compare")
    expect = compare_view.evaluate(state, 6, ["en", "de"])
    assert [row[0] for row in _value(table)["data"]] == ["en", "de"] and head == expect.headline
    assert 'data-series="B" data-group="de"' in chart
    for name in ("A", "B"):
        assert reports[name]["mrv"] == pytest.approx(expect.reports[name]["mrv"])
        assert reports[name]["t2i"]["de"]["1"] == pytest.approx(expect.reports[name]["t2i"]["de"]["1"])


# --------------------------------------------------------------------------- issue 23: hardening, second pass


def test_file_inputs_of_the_wrong_type_get_a_message(served, capfd):
    """Item 7: /image_to_text image = 5, "x", a dict and /build_gallery files = 5 got {"error": null}
    and a pydantic traceback in the server log."""
    from gradio_client.exceptions import AppError

    client, _, _ = served
    capfd.readouterr()
    cases = [(dict(image=5, languages=["en"], k=1), "/image_to_text", "Image: got 5"),
             (dict(image="x", languages=["en"], k=1), "/image_to_text", "Image: got 'x'"),
             (dict(image={"a": 1}, languages=["en"], k=1), "/image_to_text", "Image: got {'a': 1}"),
             (dict(files=5, folder=""), "/build_gallery", "Images: got 5"),
             (dict(files=[5], folder=""), "/build_gallery", "Images: got [5]")]
    for kwargs, api, expect in cases:
        with pytest.raises(AppError) as err:
            client.predict(**kwargs, api_name=api)
        assert expect in str(err.value) and "uploaded file" in str(err.value), (api, kwargs, str(err.value))
    assert "Traceback" not in capfd.readouterr().err  # a bad request is not a server fault
    assert _search(client, **QUERIES)[SUMMARY]["mrv"] is not None  # still serving


def test_ranges_are_refused_alike_over_the_api(served_pair):
    """Item 8: /compare_gold clamped k = 0, -1, 1e9 and took instance -5 as random where /search
    and /gold refused them; /search took k = 1.5 as 1."""
    from gradio_client.exceptions import AppError

    client, _ = served_pair
    langs = ["en", "de"]
    for kwargs, message in ((dict(k=0), "k: got 0"), (dict(k=-1), "k: got -1"), (dict(k=1e9), "k: got 1000000000"),
                            (dict(k=1.5), "k: got 1.5"), (dict(instance=-5), "instance: got -5")):
        with pytest.raises(AppError, match=message):
            client.predict(**{"languages": langs, "k": 5, "instance": 2, **kwargs}, api_name="/compare_gold")
    with pytest.raises(AppError, match=r"Top k: got 1.5; expected a whole number from 1 to 20"):
        client.predict(languages=["en"], k=1.5, gallery="default gallery", en="a red circle", api_name="/search")
    with pytest.raises(AppError, match=r"Instance # \(-1 = random\): got -5"):
        client.predict(languages=langs, k=5, instance=-5, api_name="/gold")
    assert client.predict(languages=langs, k=5, instance=-1, api_name="/compare_gold")["gold"]  # -1: random


def test_an_ordinary_search_does_not_wait_behind_reranking(served_fusion, monkeypatch):
    """Item 4: two re-ranking requests at the input limits (~11 s of CPU each) filled both of
    /search's workers and an ordinary search waited 15 s. Here each re-ranking takes 3 s (a slowed
    ITM): an ordinary search sent while two of them run answers at once."""
    from concurrent.futures import ThreadPoolExecutor

    from gradio_client import Client

    client, state = served_fusion
    original, reranking = state.model.match_scores, threading.Event()

    def slow_match_scores(*args, **kwargs):
        reranking.set()
        time.sleep(3.0)
        return original(*args, **kwargs)

    monkeypatch.setattr(state.model, "match_scores", slow_match_scores)
    heavy_clients = [Client(client.src, verbose=False) for _ in range(2)]
    plain = Client(client.src, verbose=False)

    def heavy(c):
        return c.predict(languages=list(QUERIES), k=5, gallery="default gallery", **QUERIES, rerank=True,
                         rerank_k=8, api_name="/search")[SUMMARY]

    with ThreadPoolExecutor(2) as pool:
        running = [pool.submit(heavy, c) for c in heavy_clients]
        assert reranking.wait(30)
        time.sleep(0.3)  # the second one is in by now: waiting for its turn, or (today's main) re-ranking too
        start = time.perf_counter()
        out = plain.predict(languages=["en", "de"], k=5, gallery="default gallery", en=QUERIES["en"],
                            de=QUERIES["de"], api_name="/search")
        waited = time.perf_counter() - start
        results = [f.result(timeout=60) for f in running]
    assert out[SUMMARY]["mrv"] is not None and waited < 2.0, f"an ordinary search waited {waited:.1f} s"
    assert all(r["rerank"]["k"] == 8 for r in results)  # the re-ranking requests were served too


# --------------------------------------------------------------------------- issue 22: no server path in any answer


def _paths_in(answer) -> list[str]:
    """Every absolute path in an API answer's text, leaving out Gradio's own file references
    (FileData: where a served copy is fetched from, inside Gradio's cache, not the app's files)."""
    from ccr_demo.utils.paths import ABSOLUTE_PATH

    if isinstance(answer, dict):
        if (answer.get("meta") or {}).get("_type") == "gradio.FileData":
            return []
        return [p for v in answer.values() for p in _paths_in(v)]
    if isinstance(answer, (list, tuple)):
        return [p for v in answer for p in _paths_in(v)]
    return ABSOLUTE_PATH.findall(answer) if isinstance(answer, str) else []


def test_no_absolute_server_path_in_any_answer(served, served_pair, tmp_path):
    """A public Space must not tell strangers its file layout: the load line, messages, reports
    and numbers name files relative to the app's folder (or by their last part), never in full.
    Every endpoint is asked, with good and bad input; the fixtures' assets lie in a temporary
    folder, outside the app's folder, where a full path would show."""
    from gradio_client import Client, handle_file

    client, state, assets = served
    raw = Client(client.src, verbose=False, download_files=False)
    image = str(sorted((assets["testset"] / "images").glob("*.png"))[0])
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    answers = {
        "/search": raw.predict(languages=["en", "de"], k=3, gallery="default gallery", **QUERIES, api_name="/search"),
        "/search (bad)": raw.predict(languages=["en"], k=3, gallery="my gallery", en="", api_name="/search"),
        "/gold": raw.predict(languages=["en", "de"], k=3, instance=1, api_name="/gold"),
        "/image_to_text": raw.predict(image=handle_file(image), languages=["en"], k=2, api_name="/image_to_text"),
        "/image_to_text (bad)": raw.predict(image=handle_file(str(bad)), languages=["en"], k=2,
                                            api_name="/image_to_text"),
        "/evaluate": raw.predict(max_instances=4, languages=["en", "de"], api_name="/evaluate"),
        "/build_gallery": raw.predict(files=[handle_file(image), handle_file(str(bad))], folder="",
                                      api_name="/build_gallery"),
    }
    pair_client, _ = served_pair
    pair = Client(pair_client.src, verbose=False, download_files=False)
    answers.update({
        "/search (pair)": pair.predict(languages=["en", "de"], k=3, gallery="default gallery", **QUERIES,
                                       api_name="/search"),
        "/compare": pair.predict(languages=["en", "de"], k=3, **QUERIES, api_name="/compare"),
        "/compare_gold": pair.predict(languages=["en", "de"], k=3, instance=1, api_name="/compare_gold"),
        "/evaluate_compare": pair.predict(max_instances=4, languages=["en"], api_name="/evaluate_compare"),
    })
    found = {api: _paths_in(answer) for api, answer in answers.items()}
    assert not any(found.values()), {api: paths for api, paths in found.items() if paths}
    assert str(assets["testset"]) not in repr(answers) and str(Path.cwd()) not in repr(answers)
    # the load line still says what was loaded, by name and size
    assert "Loaded one model (dual encoder) over a gallery of 24 images" in state.status_markdown()
    assert not _paths_in(state.status_markdown()) and not _paths_in(state.sources_markdown())
