"""The demo in a real browser: Debian's chromium driven by Playwright for Python, at 1440 x 900.

Runs the app as `python app.py` does: the embedded default from assets/ (or what CCR_MODEL /
CCR_GALLERY / CCR_TESTSET name), its models loaded behind the served page. Checks what a visitor
sees: the first example already run, a search in Latin and CJK scripts, two searches in a row
showing only the current query's images, an example clicked and Search pressed at once, the
models side by side, every table within 1440 px, and no server path on the page.
Writes no file: README's screenshots are made by `python bench/screenshots.py`.
Needs `apt-get install chromium fonts-noto-cjk` and `pip install playwright` (never
`playwright install`: the system chromium is used). A missing browser FAILS the test, it does
not skip it; `pytest -m "not browser"` leaves it out.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
from pathlib import Path

import pytest

from ccr_demo import LANGUAGES
from ccr_demo.ui import build_demo, launch_options, queue_options

pytestmark = [pytest.mark.browser, pytest.mark.filterwarnings("ignore")]

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("CCR_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
QUERIES = {"en": "a red circle", "de": "ein roter Kreis", "fr": "un cercle rouge", "cs": "červený kruh",
           "zh": "红色的圆", "ja": "赤い丸"}
OTHER = {"en": "two blue squares", "de": "zwei blaue Quadrate", "fr": "deux carrés bleus", "cs": "dva modré čtverce",
         "zh": "两个蓝色的正方形", "ja": "二つの青い四角"}
SCREEN = {"width": 1440, "height": 900}
# the rank table's first column, each language's result captions (their first line: the image id)
TABLE_IMAGES = ("sel => [...document.querySelectorAll(sel + ' .virtual-row')]"
                ".map(r => r.querySelector('[data-col=\"0\"]').innerText.trim())")
PANE_IMAGES = ("sel => [...document.querySelectorAll(sel + ' .caption-label')]"
               ".map(c => c.innerText.split('\\n')[0].replace(/^[★◆ ]+/, '').trim())")


def _require_browser():
    try:
        from playwright.sync_api import sync_playwright  # noqa: F401
    except ImportError:
        pytest.fail("Playwright for Python is not installed: `pip install playwright` (or `pip install -e .[test]`); "
                    "do not run `playwright install`, the system chromium is used", pytrace=False)
    if not (Path(CHROMIUM).is_file() or shutil.which(CHROMIUM)):
        pytest.fail(f"chromium not found at {CHROMIUM}: `apt-get install chromium fonts-noto-cjk` "
                    "(.ci/run does this), or set CCR_CHROMIUM to its path", pytrace=False)


def _browser(p):
    return p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)


def _new_page(browser, **options):
    """A page whose waits (for an element, for an expectation) allow 180 s instead of Playwright's
    30 and 5: on a loaded 2-core machine the models alone can take a minute to load behind the
    page. Nothing passes sooner or later because of it; only a slow machine stops failing."""
    from playwright.sync_api import expect

    page = browser.new_page(**{"viewport": SCREEN, "locale": "en-US", **options})
    page.set_default_timeout(180_000)
    expect.set_options(timeout=180_000)
    return page


def _open(page, url: str) -> None:
    """Open the app and wait for what its page load does: the models loaded, the first example run."""
    from playwright.sync_api import expect

    page.goto(url, wait_until="domcontentloaded")
    expect(page.locator("#search-button")).to_be_enabled()
    expect(page.locator("#mrv")).to_contain_text("Consensus image")


def _type(page, texts: dict[str, str]) -> None:
    for lang, text in texts.items():
        page.locator(f"#query-{lang}").locator("textarea, input").first.fill(text)


def _served(demo):
    """Serve ``demo`` on loopback for the duration of a fixture; yields its URL."""
    demo.queue(**queue_options())
    _, local_url, _ = demo.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True, **launch_options())
    try:
        yield local_url
    finally:
        demo.close()


@pytest.fixture(scope="module")
def default_demo():
    """The app as `python app.py` builds it (the embedded default: two models side by side,
    loaded in the background behind the served page)."""
    return build_demo(assets_dir=ROOT / "assets", background=True)


@pytest.fixture(scope="module")
def url(default_demo):
    yield from _served(default_demo)


@pytest.fixture(scope="module")
def app(default_demo):
    state = default_demo.ccr_state
    state.wait_loaded()
    return state


def _example(app, n: int) -> dict[str, str]:
    from ccr_demo.ui.examples import example_rows

    return {lang: text for lang, text in zip(LANGUAGES, example_rows()[n]) if lang in app.default_languages}


def test_first_screen_shows_a_result_and_search_works_in_latin_and_cjk(url, app):
    """Issue 22: the first screen shows a result (one example run on load) with Search and the
    message above the fold; then a typed search in six scripts fills every language's row."""
    _require_browser()  # in the test, not the fixture: a missing browser is a FAILED test, not an error
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = _browser(p)
        try:
            page = _new_page(browser)
            _open(page, url)
            first = _example(app, 0)
            for lang, text in first.items():  # the first example, in every box and row label
                expect(page.locator(f"#query-{lang}").locator("textarea, input").first).to_have_value(text)
                expect(page.locator(f"#pane-{lang}")).to_contain_text(text)
            fold = SCREEN["height"]
            assert page.locator("#search-button").bounding_box()["y"] + 40 < fold, "Search is below the fold"
            message = page.locator("#compare-verdict" if app.comparing else "#mrv")
            expect(message).not_to_be_empty()
            assert message.bounding_box()["y"] + 20 < fold, "the first screen does not show the result's message"
            assert page.locator("#examples").bounding_box()["height"] < 200  # a line of chips, not a 7 x 10 table

            _type(page, QUERIES)
            page.locator("#search-button").click()
            for lang, text in QUERIES.items():
                pane = page.locator(f"#pane-{lang}")
                expect(pane).to_contain_text(text)  # the label repeats the query, whole, in its script
                expect(pane.locator("img").first).to_be_visible()
                pane.scroll_into_view_if_needed()
                page.wait_for_function(
                    "sel => [...document.querySelectorAll(sel)].every(i => i.complete && i.naturalWidth > 0)",
                    arg=f"#pane-{lang} img")
            expect(page.locator("#rank-table")).to_contain_text("rank zh")
            assert page.locator("#rank-plot").count() == 0  # the plot that went stale is gone (heat-table)
            # clicking a result image asks for its captions in every language (image -> text tab)
            page.locator("#pane-zh img").first.click()
            status = page.locator("#i2t-status")
            expect(status).to_contain_text(re.compile("Query: gallery image|still being encoded"))
            if "Query: gallery image" in status.inner_text():
                expect(page.locator("#i2t-table")).to_contain_text("zh")
        finally:
            browser.close()


def _shows(page, app, texts: dict[str, str]) -> None:
    """The page shows ``texts``' results and nothing of another query: the rank table's images,
    each language's row of results and (side by side) each model's row are this query's."""
    from playwright.sync_api import expect

    from ccr_demo.ui import callbacks as cb
    from ccr_demo.ui import compare_view

    res = cb.search(app, texts, 5)
    expect(page.locator("#pane-en")).to_contain_text(texts["en"])
    page.wait_for_function(f"([sel, want]) => JSON.stringify(({TABLE_IMAGES})(sel)) === JSON.stringify(want)",
                           arg=["#rank-table", list(res.table["image"])])
    for lang in texts:
        assert page.evaluate(PANE_IMAGES, f"#pane-{lang}") == [h["image"] for h in res.hits[lang]], lang
    if app.comparing:
        c = compare_view.compare(app, texts, 5)
        expect(page.locator("#compare-verdict")).to_contain_text(c.verdict)
        for name in app.model_names:
            for lang in texts:
                cell = page.locator(f'#compare-grid .cell[data-model="{name}"][data-lang="{lang}"] img')
                assert [cell.nth(i).get_attribute("alt") for i in range(cell.count())] == \
                    [h["image"] for h in c.results[name].hits[lang]], (name, lang)


def test_two_searches_in_a_row_show_only_the_current_query(url, app):
    """Issue 22, broken: from the second search on, the "Rank per language" plot showed an earlier
    query's images while the table above it was right. The plot is replaced by the rank table
    coloured as a heat map; every view must show the current query's images, search after search."""
    _require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = _browser(p)
        try:
            page = _new_page(browser)
            _open(page, url)
            for texts in (QUERIES, OTHER, QUERIES):
                _type(page, texts)
                page.locator("#search-button").click()
                _shows(page, app, texts)
        finally:
            browser.close()


def test_an_example_then_search_at_once_fills_both_views(url, app):
    """Issue 22, broken: clicking an example and pressing Search within the ~1.3 s the boxes took
    to fill left the detail view at "no query" with an empty MRV while the side-by-side view
    filled. Now the example's text is in the boxes at the click (in the browser), and one
    handler fills both views from one request."""
    _require_browser()
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = _browser(p)
        try:
            page = _new_page(browser)
            _open(page, url)
            for n in (1, 3):  # two examples, each clicked and searched at once
                texts = _example(app, n)
                page.locator("#examples button.gallery-item").nth(n).click()
                page.locator("#search-button").click()  # no wait: while the example is still searching
                for lang, text in texts.items():
                    expect(page.locator(f"#query-{lang}").locator("textarea, input").first).to_have_value(text)
                expect(page.locator("#search-status")).not_to_contain_text("Type a query")
                _shows(page, app, texts)
                expect(page.locator("#pane-en")).not_to_contain_text("no query")
                expect(page.locator("#mrv")).to_contain_text("Consensus image")
        finally:
            browser.close()


def test_models_side_by_side(url, app):
    """Issue 9 and 22: Search fills the side-by-side view: a header per model with its MRV, large,
    and mean rank (said once), then a row per language, labelled, with each model's top k; the
    verdict names the more consistent model or says "about equally"; gold mode shows each
    model's gold ranks."""
    _require_browser()
    from playwright.sync_api import expect, sync_playwright

    from ccr_demo.ui import compare_view

    if not app.comparing:
        pytest.skip("one model configured (CCR_MODEL / CCR_GALLERY): no comparison to show")
    langs = list(app.default_languages)
    typed = compare_view.compare(app, {lg: QUERIES[lg] for lg in langs}, 5)
    with sync_playwright() as p:
        browser = _browser(p)
        try:
            page = _new_page(browser)
            _open(page, url)
            _type(page, {lg: QUERIES[lg] for lg in langs})
            page.locator("#search-button").click()
            verdict = page.locator("#compare-verdict")
            expect(verdict).to_contain_text(typed.verdict)
            grid = page.locator("#compare-grid")
            for i, name in enumerate(app.model_names):
                head = page.locator(f"#compare-head-{i}")
                expect(head).to_contain_text(name)
                expect(head).to_contain_text(f"MRV {typed.mrv(name):.3f}")
                expect(head).to_contain_text(f"mean rank {compare_view.mean_rank(typed, name):.1f}")
                expect(grid.locator(f'.cell[data-model="{name}"] img')).to_have_count(5 * len(langs))
            assert [grid.locator(".lang").nth(i).get_attribute("data-lang") for i in range(len(langs))] == langs
            expect(grid.locator(".lang").first).to_contain_text("English")  # the row label
            # the MRV is said once per model: not in the verdict, nor the detail view below
            assert not re.search(r"MRV \d+\.\d{3}", verdict.inner_text())
            assert "Query MRV" not in page.locator("#mrv").inner_text()
            # gold mode: one test instance for every model, each model's gold ranks
            gold, _ = compare_view.compare_gold(app, langs, 5, 3)
            page.get_by_label("Instance # (-1 = random)").fill("3")
            page.locator("#gold-button").click()
            expect(verdict).to_contain_text(gold.verdict)
            for i, name in enumerate(app.model_names):
                expect(page.locator(f"#compare-head-{i}")).to_contain_text(f"★ gold image {gold.gold_id}")
        finally:
            browser.close()


def test_every_table_fits_the_page_and_labels_are_whole(url, app):
    """Issue 22: at 1440 px, tables hid columns behind a horizontal scrollbar and row labels were
    cut ("a green squa"). With all ten languages and the longest example, none scrolls sideways."""
    _require_browser()
    from playwright.sync_api import expect, sync_playwright

    fits = ("sel => [...document.querySelectorAll(sel + ' .table-wrap, ' + sel + ' .virtual-table-viewport')]"
            ".every(e => e.scrollWidth <= e.clientWidth + 1)")
    with sync_playwright() as p:
        browser = _browser(p)
        try:
            page = _new_page(browser)
            _open(page, url)
            for lang in LANGUAGES:
                page.locator("#languages").get_by_label(lang, exact=True).check()
            page.locator("#examples button.gallery-item").nth(4).click()  # a long sentence
            expect(page.locator("#pane-tr")).to_contain_text("“")
            page.wait_for_timeout(1000)
            for sel in ("#rank-table", "#overlap"):
                expect(page.locator(sel)).to_contain_text("tr")
                assert page.evaluate(fits, sel), f"{sel} scrolls sideways at 1440 px"
            for lang in LANGUAGES:  # the whole label: no ellipsis, nothing cut
                label = page.locator(f"#pane-{lang} label").first
                assert label.evaluate("e => e.scrollWidth <= e.clientWidth + 1"), f"{lang}'s label is cut"
            page.locator("#pane-en img").first.click()  # image -> text: its table too
            expect(page.locator("#i2t-status")).to_contain_text(re.compile("Query: gallery image|still being encoded"))
            if "Query: gallery image" in page.locator("#i2t-status").inner_text():
                expect(page.locator("#i2t-table")).to_contain_text("match")
                assert page.evaluate(fits, "#i2t-table"), "the image-to-text table scrolls sideways at 1440 px"
        finally:
            browser.close()


def test_no_absolute_path_on_the_page(url, app):
    """Issue 22: the first screen opened with six lines of absolute server paths. The load line
    names models and galleries by name and size; where they came from is folded away, relative
    to the app's folder. No tab's text names a path from the server's root."""
    _require_browser()
    from playwright.sync_api import sync_playwright

    from ccr_demo.utils.paths import ABSOLUTE_PATH

    with sync_playwright() as p:
        browser = _browser(p)
        try:
            page = _new_page(browser)
            _open(page, url)
            load = page.locator("#load-status").inner_text()
            assert "Loaded" in load and "1,000 images" in load
            page.locator("#load-sources").get_by_text("Where the models and data come from").click()
            sources = page.locator("#load-sources").inner_text()
            assert "assets/model" in sources and "assets/gallery" in sources
            texts = {"search": page.locator("body").inner_text()}
            for tab in ("Image → text", "Your own gallery", "Evaluate", "About"):
                page.get_by_role("tab", name=tab).click()
                page.wait_for_timeout(300)
                texts[tab] = page.locator("body").inner_text()
            found = {tab: ABSOLUTE_PATH.findall(text) for tab, text in texts.items()}
            assert not any(found.values()), {tab: paths for tab, paths in found.items() if paths}
            html = page.content()  # hidden text and the page's config too (Gradio's file URLs aside)
            assert str(ROOT) not in html and str(ROOT / "assets") not in html
        finally:
            browser.close()


def test_hidden_languages_and_empty_search_message(url):
    _require_browser()
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = _browser(p)
        try:
            page = _new_page(browser)
            _open(page, url)
            expect(page.locator("#query-ru")).to_be_hidden()
            page.locator("#languages").get_by_label("ru").check()
            expect(page.locator("#query-ru")).to_be_visible()
            _type(page, {lang: "" for lang in [*QUERIES, "ru"]})  # the first example filled them all
            page.locator("#search-button").click()  # every box empty
            expect(page.locator("#search-status")).to_contain_text("at least one language")
        finally:
            browser.close()


@pytest.fixture(scope="module")
def fusion_assets(tmp_path_factory):
    from test_ui_callbacks import build_tiny_assets
    from test_ui_rerank import fusion_config

    return build_tiny_assets(tmp_path_factory.mktemp("browser_fusion"), config=fusion_config())


@pytest.fixture(scope="module")
def fusion_url(fusion_assets):
    """The demo of a tiny random model WITH the fusion encoder (generated, not assets/)."""
    from test_ui_callbacks import load_state

    yield from _served(build_demo(state=load_state(fusion_assets)))


def test_rerank_switch_shows_reranked_results(fusion_url):
    """Issue 12: turn on "re-rank top-k with the fusion encoder", search, and see the re-ranked
    panes and MRV "contrastive → re-ranked"; turned off, the plain search again. Issue 22: the
    switch says what re-ranking measurably does for the model (this one: not measured)."""
    _require_browser()
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = _browser(p)
        try:
            page = _new_page(browser)
            _open(page, fusion_url)
            _type(page, {lang: QUERIES[lang] for lang in ("en", "de", "zh")})
            switch = page.locator("#rerank input[type=checkbox]")
            expect(switch).to_be_enabled()
            expect(page.locator("#rerank")).to_contain_text("For this model")
            switch.check()
            page.locator("#search-button").click()
            mrv = page.locator("#mrv")
            expect(mrv).to_contain_text("re-ranked top 16")
            expect(mrv).to_contain_text(re.compile(r"Query MRV: \d+\.\d{3} → \d+\.\d{3}"))
            pane = page.locator("#pane-en")
            expect(pane).to_contain_text("re-ranked top 16")  # the pane's label
            expect(pane).to_contain_text("re-ranked (contrastive #")  # each result's caption
            expect(page.locator("#rank-table")).to_contain_text("→")
            switch.uncheck()
            page.locator("#search-button").click()
            expect(mrv).not_to_contain_text("re-ranked")
            expect(mrv).to_contain_text("Query MRV")
            expect(pane).not_to_contain_text("re-ranked")
        finally:
            browser.close()


def test_the_page_is_served_while_the_models_load(fusion_assets, monkeypatch):
    """Issue 22, start-up: the page is served first and says the models are loading, with Search
    disabled; once they are loaded the first example runs by itself. (How fast: bench/bench_startup.py.)"""
    _require_browser()
    from playwright.sync_api import expect, sync_playwright

    from ccr_demo.ui import loading

    gate = threading.Event()
    load_models = loading._load_models

    def held(state):  # the models load only when the test says so
        gate.wait(120)
        load_models(state)

    monkeypatch.setattr(loading, "_load_models", held)
    for var in ("CCR_MODEL", "CCR_GALLERY", "CCR_TESTSET", "CCR_CAPTIONS", "CCR_MODELS"):
        monkeypatch.delenv(var, raising=False)
    demo = build_demo(fusion_assets["model"], fusion_assets["gallery"], fusion_assets["testset"], background=True,
                      warm_up=False, caption_cache=False)
    for served_url in _served(demo):
        with sync_playwright() as p:
            browser = _browser(p)
            try:
                page = _new_page(browser)
                page.goto(served_url, wait_until="domcontentloaded")
                expect(page.locator("#load-status")).to_contain_text("Loading")
                expect(page.locator("#search-button")).to_be_disabled()
                expect(page.locator("#results")).to_be_hidden()  # no empty frames or tables headed "1 2 3"
                gate.set()
                expect(page.locator("#search-button")).to_be_enabled()
                expect(page.locator("#load-status")).to_contain_text("Loaded")
                expect(page.locator("#mrv")).to_contain_text("Consensus image")  # the first example ran
            finally:
                gate.set()
                browser.close()
