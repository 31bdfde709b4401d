"""README's screenshots, made by a command of their own (never by the tests):

    python bench/screenshots.py            # docs/app_screenshot.png and docs/app_compare.png
    python bench/screenshots.py --out /tmp/shots --prefix after_   # all four views, elsewhere

It starts the app as ``python app.py`` does (the embedded default in assets/, models loaded behind
the served page), opens it in Debian's chromium (Playwright for Python, the system browser) at
1440 x 900, waits for the first example the page runs by itself, and saves:

- ``first_screen``: what a visitor sees first (the viewport; README's ``docs/app_screenshot.png``);
- ``search``: the whole page after searching another example (one click on it);
- ``side_by_side``: the models side by side (README's ``docs/app_compare.png``);
- ``evaluate``: the Evaluate tab (each model's saved full-test-set figures).

Needs `apt-get install chromium fonts-noto-cjk` and `pip install playwright` (never
`playwright install`).
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("CCR_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]


def load_lazy_images(page) -> None:
    """Scroll through the page: Gradio's result images load lazily, only near the viewport, and a
    full-page screenshot does not scroll (an image further down would show its previous query's
    picture, or none)."""
    height = page.evaluate("document.body.scrollHeight")
    for y in range(0, height, 600):
        page.evaluate(f"window.scrollTo(0, {y})")
        page.wait_for_timeout(150)
    page.evaluate("window.scrollTo(0, 0)")
    page.wait_for_function("[...document.images].every(i => i.complete)")
    page.wait_for_timeout(500)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="", help="write all four views here (default: README's two, in docs/)")
    p.add_argument("--prefix", default="", help="file name prefix with --out (e.g. after_)")
    p.add_argument("--width", type=int, default=1440)
    p.add_argument("--height", type=int, default=900)
    args = p.parse_args(argv)
    warnings.simplefilter("ignore")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.path.insert(0, str(ROOT))
    from playwright.sync_api import expect, sync_playwright

    from ccr_demo.ui import build_demo, launch_options, queue_options

    if args.out:
        out = Path(args.out)
        names = {v: out / f"{args.prefix}{v}.png" for v in ("first_screen", "search", "side_by_side", "evaluate")}
    else:
        names = {"first_screen": ROOT / "docs" / "app_screenshot.png",
                 "side_by_side": ROOT / "docs" / "app_compare.png"}
    for path in names.values():
        path.parent.mkdir(parents=True, exist_ok=True)

    demo = build_demo(assets_dir=ROOT / "assets", background=True)
    demo.queue(**queue_options())
    _, url, _ = demo.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True, **launch_options())
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            page = browser.new_page(viewport={"width": args.width, "height": args.height}, locale="en-US")
            page.set_default_timeout(180_000)
            expect.set_options(timeout=180_000)  # the models load behind the page: minutes on a busy machine
            page.goto(url, wait_until="domcontentloaded")
            expect(page.locator("#search-button")).to_be_enabled()  # the models are loaded
            expect(page.locator("#mrv")).to_contain_text("Consensus image")  # the first example ran
            page.wait_for_timeout(1500)  # images decoded
            page.screenshot(path=str(names["first_screen"]))
            print(f"wrote {names['first_screen']}")
            if "search" in names:
                before = page.locator("#mrv").inner_text()
                page.locator("#examples button, #examples .gallery-item").nth(2).click()
                expect(page.locator("#mrv")).not_to_have_text(before)
                load_lazy_images(page)
                page.screenshot(path=str(names["search"]), full_page=True)
                print(f"wrote {names['search']}")
            if page.locator("#compare").count():
                page.locator("#compare").first.screenshot(path=str(names["side_by_side"]))
                print(f"wrote {names['side_by_side']}")
            if "evaluate" in names:
                page.get_by_role("tab", name="Evaluate").click()
                page.wait_for_timeout(1500)
                page.screenshot(path=str(names["evaluate"]), full_page=True)
                print(f"wrote {names['evaluate']}")
            browser.close()
    finally:
        demo.close()
    os._exit(0)  # do not wait for the background caption work of the app's threads


if __name__ == "__main__":
    sys.exit(main())
