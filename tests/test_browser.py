"""The demo in a real browser: Debian's chromium driven by Playwright for Python.

Types queries in Latin and CJK scripts, presses Search, checks that every language's pane
shows loaded images and that the MRV panel appears, and saves docs/app_screenshot.png; with two
models (the embedded default), checks the side-by-side view and saves docs/app_compare.png
(`python -m pytest tests/test_browser.py -k side_by_side` remakes it).
Needs `apt-get install chromium fonts-noto-cjk` and `pip install playwright` (never
`playwright install`: the system chromium is used). A missing browser FAILS the test, it does
not skip it; `pytest -m "not browser"` leaves it out.

It runs the app exactly as `python app.py` does: the embedded default from assets/ (or what
CCR_MODEL / CCR_GALLERY / CCR_TESTSET name), so the screenshot shows the trained model.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from ccr_demo.ui import build_demo, launch_options, queue_options

pytestmark = [pytest.mark.browser, pytest.mark.filterwarnings("ignore")]

CHROMIUM = os.environ.get("CCR_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
SCREENSHOT = Path(__file__).resolve().parents[1] / "docs" / "app_screenshot.png"
COMPARE_SCREENSHOT = SCREENSHOT.with_name("app_compare.png")
QUERIES = {"en": "a red circle", "de": "ein roter Kreis", "fr": "un cercle rouge", "cs": "červený kruh",
           "zh": "红色的圆", "ja": "赤い丸"}


def _require_browser():
    try:
        from playwright.sync_api import sync_playwright  # noqa: F401
    except ImportError:
        pytest.fail("Playwright for Python is not installed: `pip install playwright` (or `pip install -e .[test]`); "
                    "do not run `playwright install`, the system chromium is used", pytrace=False)
    if not (Path(CHROMIUM).is_file() or shutil.which(CHROMIUM)):
        pytest.fail(f"chromium not found at {CHROMIUM}: `apt-get install chromium fonts-noto-cjk` "
                    "(.ci/run does this), or set CCR_CHROMIUM to its path", pytrace=False)


def _new_page(browser, **options):
    """A page whose waits (for an element to render, to become editable) allow 90 s instead of
    Playwright's 30: on a loaded 2-core machine the app's first render alone can take longer.
    Nothing passes sooner or later because of it; only a slow machine stops failing."""
    page = browser.new_page(**options)
    page.set_default_timeout(90_000)
    return page


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
    """The app as `python app.py` builds it (the embedded default: two models side by side)."""
    return build_demo(assets_dir=Path(__file__).resolve().parents[1] / "assets")


@pytest.fixture(scope="module")
def url(default_demo):
    yield from _served(default_demo)


def test_search_in_latin_and_cjk_scripts(url):
    _require_browser()  # in the test, not the fixture: a missing browser is a FAILED test, not an error
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = _new_page(browser, viewport={"width": 1600, "height": 1000}, locale="en-US")
            page.goto(url, wait_until="domcontentloaded")
            for lang, text in QUERIES.items():
                box = page.locator(f"#query-{lang}").locator("textarea, input").first
                box.fill(text)
            page.locator("#search-button").click()
            mrv = page.locator("#mrv")
            expect(mrv).to_contain_text("Query MRV", timeout=60_000)
            expect(mrv).to_contain_text("Consensus image")
            for lang, text in QUERIES.items():
                pane = page.locator(f"#pane-{lang}")
                expect(pane).to_contain_text(text)  # the label repeats the query, in its script
                images = pane.locator("img")
                expect(images.first).to_be_visible(timeout=30_000)
                assert images.count() >= 1
                page.wait_for_function(
                    "sel => [...document.querySelectorAll(sel)].every(i => i.complete && i.naturalWidth > 0)",
                    arg=f"#pane-{lang} img", timeout=30_000)
            expect(page.locator("#rank-table")).to_contain_text("rank zh")
            assert page.locator("#overlap").is_visible() and page.locator("#rank-plot").is_visible()
            page.wait_for_timeout(2000)  # let the plot draw its legend
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOT), full_page=True)
            assert SCREENSHOT.stat().st_size > 20_000
            # clicking a result image asks for its captions in every language (image -> text tab);
            # with real assets the captions may still be encoding: the app says so
            page.locator("#pane-zh img").first.click()
            status = page.locator("#i2t-status")
            expect(status).to_contain_text(re.compile("Query: gallery image|still being encoded"), timeout=30_000)
            if "Query: gallery image" in status.inner_text():
                expect(page.locator("#i2t-table")).to_contain_text("zh", timeout=30_000)
        finally:
            browser.close()


def _loaded(page, selector: str) -> None:
    page.wait_for_function(
        "sel => [...document.querySelectorAll(sel)].every(i => i.complete && i.naturalWidth > 0)",
        arg=f"{selector} img", timeout=30_000)


def test_models_side_by_side(url, default_demo):
    """Issue 9: with two or more models (the embedded default ships two), Search fills the
    side-by-side view (each model's MRV, the ranks it comes from, its top k per language, the
    verdict) with the numbers compare_view computes; gold mode shows each model's gold ranks.
    Saves docs/app_compare.png (the comparison)."""
    _require_browser()
    from playwright.sync_api import expect, sync_playwright

    from ccr_demo.ui import compare_view

    app = default_demo.ccr_state
    if not app.comparing:
        pytest.skip("one model configured (CCR_MODEL / CCR_GALLERY): no comparison to show")
    langs = list(app.default_languages)
    typed = compare_view.compare(app, {lg: QUERIES[lg] for lg in langs}, 5)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = _new_page(browser, viewport={"width": 1500, "height": 1000}, locale="en-US")
            page.goto(url, wait_until="domcontentloaded")
            for lang in langs:
                page.locator(f"#query-{lang}").locator("textarea, input").first.fill(QUERIES[lang])
            page.locator("#search-button").click()
            verdict = page.locator("#compare-verdict")
            expect(verdict).to_contain_text(typed.verdict, timeout=60_000)
            for i, name in enumerate(app.model_names):
                expect(page.locator(f"#compare-head-{i}")).to_contain_text(f"{name}: MRV {typed.mrv(name):.3f}")
                pane = page.locator(f"#compare-pane-{i}")
                expect(pane.locator("img")).to_have_count(5 * len(langs), timeout=30_000)
                expect(pane).to_contain_text(typed.results[name].hits["zh"][0]["image"])
                _loaded(page, f"#compare-pane-{i}")
                # every language's row shows, none hidden behind the pane's own scrollbar
                assert pane.locator(".grid-wrap").first.evaluate("e => e.scrollHeight <= e.clientHeight + 1"), \
                    f"{name}'s pane hides rows behind a scrollbar"
            expect(page.locator("#compare-table")).to_contain_text("MRV (std)")
            page.wait_for_timeout(1000)
            page.locator("#compare").first.screenshot(path=str(COMPARE_SCREENSHOT))
            assert COMPARE_SCREENSHOT.stat().st_size > 20_000
            # gold mode: one test instance for every model, each model's gold ranks and MRV
            gold, _ = compare_view.compare_gold(app, langs, 5, 3)
            page.get_by_label("Instance # (-1 = random)").fill("3")
            page.locator("#gold-button").click()
            expect(verdict).to_contain_text(gold.verdict, timeout=60_000)
            for i, name in enumerate(app.model_names):
                ranks = " · ".join(f"{lg} {r}" for lg, r in gold.ranks(name).items())
                expect(page.locator(f"#compare-head-{i}")).to_contain_text(f"★ gold image {gold.gold_id}: {ranks}")
        finally:
            browser.close()


def test_hidden_languages_and_empty_search_message(url):
    _require_browser()
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = _new_page(browser, viewport={"width": 1400, "height": 900})
            page.goto(url, wait_until="domcontentloaded")
            expect(page.locator("#query-ru")).to_be_hidden()
            page.locator("#languages").get_by_label("ru").check()
            expect(page.locator("#query-ru")).to_be_visible()
            page.locator("#search-button").click()  # every box empty
            expect(page.locator("#search-status")).to_contain_text("at least one language", timeout=30_000)
        finally:
            browser.close()


@pytest.fixture(scope="module")
def fusion_url(tmp_path_factory):
    """The demo of a tiny random model WITH the fusion encoder (generated, not assets/)."""
    from test_ui_callbacks import build_tiny_assets, load_state
    from test_ui_rerank import fusion_config

    state = load_state(build_tiny_assets(tmp_path_factory.mktemp("browser_fusion"), config=fusion_config()))
    yield from _served(build_demo(state=state))


def test_rerank_switch_shows_reranked_results(fusion_url):
    """Issue 12: turn on "re-rank top-k with the fusion encoder", search, and see the re-ranked
    panes and MRV "contrastive → re-ranked"; turned off, the plain search again."""
    _require_browser()
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = _new_page(browser, viewport={"width": 1400, "height": 1000}, locale="en-US")
            page.goto(fusion_url, wait_until="domcontentloaded")
            for lang in ("en", "de", "zh"):
                page.locator(f"#query-{lang}").locator("textarea, input").first.fill(QUERIES[lang])
            switch = page.locator("#rerank input[type=checkbox]")
            expect(switch).to_be_enabled(timeout=30_000)
            switch.check()
            page.locator("#search-button").click()
            mrv = page.locator("#mrv")
            expect(mrv).to_contain_text("re-ranked top 16", timeout=60_000)
            expect(mrv).to_contain_text(re.compile(r"Query MRV: \d+\.\d{3} → \d+\.\d{3}"))
            pane = page.locator("#pane-en")
            expect(pane).to_contain_text("re-ranked top 16")  # the pane's label
            expect(pane).to_contain_text("re-ranked (contrastive #")  # each result's caption
            expect(page.locator("#rank-table")).to_contain_text("→")
            switch.uncheck()
            page.locator("#search-button").click()
            expect(mrv).not_to_contain_text("re-ranked", timeout=60_000)
            expect(mrv).to_contain_text("Query MRV")
            expect(pane).not_to_contain_text("re-ranked")
        finally:
            browser.close()
