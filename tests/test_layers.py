"""The house's contract: layers import one way, no cycles, no private name crosses modules.

The layers are stated once, in pyproject.toml's [tool.importlinter] (utils <- data <- model <-
(eval | gallery) <- (training | ui); ui never imports training); `lint-imports` checks them.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "ccr_demo"


def lint_imports(cwd: Path) -> subprocess.CompletedProcess:
    exe = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))
    return subprocess.run([exe, "--no-cache"], cwd=cwd, capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(cwd), "PATH": str(Path(sys.executable).parent)})


def test_the_layers_contract_holds():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "BROKEN" not in result.stdout and result.stdout.count("KEPT") >= 3


@pytest.mark.parametrize("module, planted", [
    ("utils/fileio.py", "import ccr_demo.model.modeling"),          # a lower layer importing an upper one
    ("ui/serving.py", "from ccr_demo.training import losses"),      # the UI importing training
    ("eval/tables.py", "import ccr_demo.gallery.storage"),          # eval and gallery are independent
    ("gallery/storage.py", "import ccr_demo.gallery.gallery"),      # a cycle inside a subpackage
])
def test_a_planted_back_import_breaks_the_contract(tmp_path, module, planted):
    shutil.copytree(PACKAGE, tmp_path / "ccr_demo", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / "ccr_demo" / module
    target.write_text(target.read_text() + f"\n{planted}  # planted\n")
    result = lint_imports(tmp_path)
    assert result.returncode != 0 and "BROKEN" in result.stdout, result.stdout[-2000:]


def imported_private_names(path: Path, root: Path = ROOT) -> list[str]:
    """`from ccr_demo.x import _name` lines of a file (dunders like __version__ are public)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("ccr_demo")):
            found += [f"{path.relative_to(root)}:{node.lineno}: {node.module}.{a.name}" for a in node.names
                      if a.name.startswith("_") and not a.name.startswith("__")]
    return found


def test_no_private_name_is_imported_across_modules():
    found = [line for p in sorted(PACKAGE.rglob("*.py")) for line in imported_private_names(p)]
    assert not found, "private names imported across modules:\n" + "\n".join(found)


def test_the_private_name_check_sees_a_planted_import(tmp_path):
    planted = tmp_path / "x.py"
    planted.write_text("from ccr_demo import __version__\nfrom ccr_demo.eval.metrics import _secret, public\n")
    assert imported_private_names(planted, tmp_path) == ["x.py:2: ccr_demo.eval.metrics._secret"]
