"""Outputs are written with the umask's modes, as ordinary tools write them (issue 23 item 10):
the atomic writers build in tempfile's private 0600 / 0700 temporaries, which an app running as
another user could not read once renamed into place."""

import os
import stat

import pytest

from ccr_demo.utils.fileio import atomic_directory, atomic_write_bytes, atomic_write_json


@pytest.fixture
def umask():
    """Run the test under a given umask, then put the old one back."""
    old = os.umask(0o022)
    yield lambda mask: os.umask(mask)
    os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_files_and_folders_get_the_umask_modes(tmp_path, umask):
    umask(0o022)
    atomic_write_bytes(tmp_path / "a.bin", b"x")
    atomic_write_bytes(tmp_path / "thumb.png", b"x", fsync=False)
    atomic_write_json(tmp_path / "summary.json", {"a": 1})
    with atomic_directory(tmp_path / "model") as tmp:
        (tmp / "config.json").write_text("{}")
    assert [_mode(tmp_path / n) for n in ("a.bin", "thumb.png", "summary.json")] == [0o644] * 3
    assert _mode(tmp_path / "model") == 0o755 and _mode(tmp_path / "model" / "config.json") == 0o644


def test_a_stricter_umask_is_kept(tmp_path, umask):
    umask(0o077)
    atomic_write_json(tmp_path / "summary.json", {"a": 1})
    with atomic_directory(tmp_path / "gallery"):
        pass
    assert _mode(tmp_path / "summary.json") == 0o600 and _mode(tmp_path / "gallery") == 0o700


def test_a_saved_model_folder_is_readable_by_others(tiny_model, tmp_path, umask):
    umask(0o022)
    tiny_model.save_pretrained(tmp_path / "model")
    paths = [tmp_path / "model", *(tmp_path / "model").rglob("*")]
    assert all(_mode(p) & stat.S_IROTH for p in paths), {str(p): oct(_mode(p)) for p in paths}
    assert all(_mode(p) & stat.S_IXOTH for p in paths if p.is_dir())
