"""The real data the tests read is part of the repository (issue 23 item 14): a clean clone runs
every real-data test, and none reads a path of one machine (``/work/shared``, ``../shared``) or
skips for want of it."""

import json
import re
from pathlib import Path

from conftest import XFLICKRCO

ROOT = Path(__file__).resolve().parents[1]
XFLICKRCO_LANGUAGES = ["de", "en", "es", "id", "ja", "ru", "tr", "zh"]


def test_the_real_xflickrco_annotations_are_in_the_repository_with_their_licence():
    assert XFLICKRCO.is_relative_to(ROOT / "tests" / "data")
    for lang in XFLICKRCO_LANGUAGES:
        lines = (XFLICKRCO / "annotations" / lang / "test.jsonl").read_text(encoding="utf-8").splitlines()
        assert len(lines) == 2000 and {"id", "img_path", "sentences"} <= set(json.loads(lines[0])), lang
    licence = (XFLICKRCO / "LICENSE-IGLUE").read_text(encoding="utf-8")
    assert licence.startswith("MIT License") and "Emanuele Bugliarello" in licence
    readme = (XFLICKRCO / "README.md").read_text(encoding="utf-8")
    assert "e-bug/iglue" in readme and "LICENSE-IGLUE" in readme and "MIT" in readme


# A path outside the checkout, as the real-data tests used to read it.
OUTSIDE = re.compile(r"""["']/work/|["']/home/|parents\[[2-9]\]|["']shared["']|\.\./shared""")


def test_no_test_reads_data_from_outside_the_repository():
    found = [f"{path.name}:{n}: {line.strip()}"
             for path in sorted((ROOT / "tests").glob("*.py")) if path.name != Path(__file__).name
             for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if OUTSIDE.search(line)]
    assert not found, "\n".join(found)
