"""`pip install .` (not editable) gives a working library: everything it reads ships inside the package.

The library reads nothing outside its package (shipped configs and tower architectures are
package data; the app passes its assets folder in), so a normal install into a fresh
virtualenv, used from a folder that has no checkout in it, must find its shipped configs and
run its command lines.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_a_normal_install_in_a_fresh_virtualenv_works_outside_the_checkout(tmp_path):
    # the build sees a copy (it writes build/ and egg-info beside the sources)
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "requirements.txt"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "ccr_demo", src / "ccr_demo", ignore=shutil.ignore_patterns("__pycache__"))
    venv = tmp_path / "venv"
    # the dependencies (torch, faiss, ...) come from this interpreter's site-packages; ccr_demo
    # itself is installed into the venv, which comes first on its sys.path
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    py, bin_dir = venv / "bin" / "python", venv / "bin"
    # `pip install .` is "build a wheel, install it": the wheel is built with this interpreter's
    # build tools (a new venv's bundled setuptools may lack bdist_wheel), then installed into the venv
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(wheels),
                    str(src)], check=True, cwd=tmp_path, timeout=600)
    (wheel,) = wheels.glob("ccr_demo-*.whl")
    subprocess.run([py, "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
                   check=True, cwd=tmp_path, timeout=600)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    probe = (
        "import ccr_demo, sys\n"
        "from pathlib import Path\n"
        "from ccr_demo.training.config import ExperimentConfig\n"
        "from ccr_demo.training.configs import resolve_config\n"
        "from ccr_demo.utils.config import load_yaml\n"
        "from ccr_demo.model.towers import read_arch_file\n"
        "print(Path(ccr_demo.__file__).resolve())\n"
        "cfg = load_yaml(ExperimentConfig, resolve_config('default'))\n"
        "print(cfg.model.image_tower)\n"
        "print(read_arch_file('xlm-roberta-large')['config']['num_hidden_layers'])\n"
    )
    out = subprocess.run([py, "-c", probe], cwd=elsewhere, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    where, tower, layers = out.stdout.split()
    assert Path(where).is_relative_to(venv.resolve()), f"ccr_demo imported from {where}, not the fresh install"
    assert tower and int(layers) == 24
    for command in ("ccr-gallery", "ccr-evaluate", "ccr-pretrain", "ccr-ablation", "ccr-shapes", "ccr-finetune"):
        run = subprocess.run([bin_dir / command, "--help"], cwd=elsewhere, capture_output=True, text=True,
                             timeout=300)
        assert run.returncode == 0 and "usage" in run.stdout.lower(), (command, run.stderr[-2000:])
