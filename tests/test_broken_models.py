"""Broken model folders reach the command-line tools as one line naming the file and the
problem, exit code 2, never a traceback (issue 11 item 11)."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ccr_demo.eval import evaluate as evaluate_cli
from ccr_demo.gallery import cli as index_cli

ROOT = Path(__file__).resolve().parents[1]


def _edit_config(edit):
    def apply(folder):
        meta = json.loads((folder / "config.json").read_text())
        (folder / "config.json").write_text(json.dumps(edit(meta)))
    return apply


def _truncate(keep):
    def apply(folder):
        p = folder / "model.safetensors"
        data = p.read_bytes()
        p.write_bytes(data[:keep(len(data))])
    return apply


def _set(path, value):
    def edit(meta):
        d = meta
        for key in path[:-1]:
            d = d[key]
        d[path[-1]] = value
        return meta
    return edit


# name -> (breakage, the file named in the message, words the message must contain)
CASES = {
    "truncated_header": (_truncate(lambda n: 20), "model.safetensors", "safetensors"),
    "truncated_data": (_truncate(lambda n: n - 100), "model.safetensors", "safetensors"),
    "config_is_a_list": (_edit_config(lambda meta: [meta]), "config.json", "list"),
    "embed_dim_edited": (_edit_config(lambda m: _set(["embed_dim"], 64)(_set(["model", "embed_dim"], 64)(m))),
                         "model.safetensors", "shape"),
    "top_level_embed_dim_edited": (_edit_config(_set(["embed_dim"], 64)), "config.json", "embed_dim"),
    "hidden_size_string": (_edit_config(_set(["text_config", "hidden_size"], "32")), "config.json", "hidden_size"),
    "format_version_string": (_edit_config(_set(["format_version"], "1")), "config.json", "format_version"),
    "model_section_a_string": (_edit_config(_set(["model"], "resnet")), "config.json", "'model'"),
}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    import torch
    from conftest import tiny_config

    from ccr_demo.model.modeling import CCRModel

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("good") / "model"
    CCRModel(tiny_config()).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def test_set(tmp_path_factory):
    from ccr_demo.data.shapes import generate_dataset

    out = tmp_path_factory.mktemp("shapes") / "d"
    generate_dataset(out, n_train=8, n_val=0, n_test=4, n_test_compositional=0, image_size=32, seed=1,
                     workers=1, progress=False)
    return out / "test"


def _broken(saved, tmp_path, case):
    folder = tmp_path / case
    shutil.copytree(saved, folder)
    CASES[case][0](folder)
    return folder


def _check_message(err: str, folder: Path, case: str):
    _, named, words = CASES[case]
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert str(folder / named) in lines[0], lines[0]
    assert words in lines[0], lines[0]


@pytest.mark.parametrize("case", sorted(CASES))
def test_broken_model_is_one_line_exit_2_in_the_clis(saved, test_set, tmp_path, case, capsys):
    folder = _broken(saved, tmp_path, case)
    (tmp_path / "images").mkdir()
    rc = index_cli.main(["build", "--model", str(folder), "--images", str(tmp_path / "images"),
                         "--out", str(tmp_path / "gallery")])
    captured = capsys.readouterr()
    assert rc == 2
    _check_message(captured.err, folder, case)
    assert not (tmp_path / "gallery").exists()
    rc = evaluate_cli.main(["--model", str(folder), "--data", str(test_set)])
    captured = capsys.readouterr()
    assert rc == 2
    _check_message(captured.err, folder, case)


def test_broken_model_exit_code_through_python_m(saved, test_set, tmp_path):
    folder = _broken(saved, tmp_path, "format_version_string")
    proc = subprocess.run([sys.executable, "-m", "ccr_demo.eval.evaluate", "--model", str(folder), "--data", str(test_set)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    _check_message(proc.stderr, folder, "format_version_string")


def test_the_intact_model_still_loads(saved):
    from ccr_demo.model.modeling import CCRModel

    assert CCRModel.from_pretrained(saved).encode_texts(["a red circle"]).shape == (1, 32)
