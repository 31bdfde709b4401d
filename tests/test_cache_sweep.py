"""Issue 23 item 11: the app's cache sweep leaves no empty hash folders or stale zero-byte
temporaries behind, and removes nothing else."""

from __future__ import annotations

import os
import time

from PIL import Image

from ccr_demo.ui import serving


def _age(path, seconds: float) -> None:
    t = time.time() - seconds
    os.utime(path, (t, t), follow_symlinks=False)


def test_the_sweep_removes_emptied_hash_folders_and_stale_temporaries_only(tmp_path, monkeypatch):
    cache = tmp_path / "gradio"
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(cache))  # what serving.cache_folder() reads
    served = [serving.serve_image(Image.new("RGB", (8, 8), (i, 0, 0)), cache) for i in range(4)]
    folders = [os.path.dirname(p) for p in served]
    for p in served[:3]:  # Gradio's own sweep (delete_cache) deleted these files, not their folders
        os.remove(p)
    killed = os.path.join(folders[3], ".image.png.k1ll3d_x")  # a copy killed before it was written
    aborted = cache / "tmpab12cd34"  # an upload whose client went away
    fresh = os.path.join(folders[3], ".image.png.inflight")  # a write in progress now
    for p in (killed, aborted, fresh):
        open(p, "wb").close()
    # not the sweep's: a user's files and folders, a zero-byte file with another name, a link
    mine = cache / "notes"
    mine.mkdir()
    (cache / ("0" * 64)).mkdir()
    (cache / ("0" * 64) / "empty.png").touch()
    (cache / ("e" * 32)).symlink_to(mine)
    for p in (*folders, killed, aborted, mine, cache / ("0" * 64), cache / ("0" * 64) / "empty.png",
              cache / ("e" * 32)):
        _age(p, 3600)
    tracked = {served[3]}

    serving.enforce_disk_budget([tracked], max_bytes=10**9)

    assert all(not os.path.exists(f) for f in folders[:3])  # the emptied hash folders
    assert not os.path.exists(killed) and not aborted.exists()  # stale zero-byte temporaries
    assert os.path.isfile(served[3]) and os.path.exists(fresh)  # live files stay
    assert mine.is_dir() and (cache / ("0" * 64) / "empty.png").exists() and (cache / ("e" * 32)).is_symlink()
    assert serving.prune_leftovers(cache) == (0, 0)  # nothing left to remove
