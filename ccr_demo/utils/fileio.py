"""Atomic file writes: a reader never sees a half-written file.

Write to a temporary file in the same folder, fsync, then ``os.replace`` (atomic on POSIX).
For folders, build the whole tree beside the target and swap it in. What is swapped in gets the
modes an ordinary ``open`` / ``mkdir`` would give (0666 / 0777 less the umask), not the private
0600 / 0700 of the temporary it was built as: an app running as another user reads it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator


def current_umask() -> int:
    """The process's umask, read without changing it where Linux shows it (/proc/self/status):
    the portable way, setting it and putting it back, races with threads creating files meanwhile."""
    try:
        with open("/proc/self/status", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def apply_default_modes(path: str | Path) -> None:
    """Give ``path`` (a file, or a folder and everything in it) the modes open() / mkdir() give
    under the current umask: 0666 (0777 for a folder, or a file with an execute bit) less the
    umask. For what tempfile made (0600 / 0700, private by design) and libraries that write
    through it (safetensors' model.safetensors), before it is renamed into place; links are left."""
    mask = current_umask()

    def fix(p: str, executable: bool) -> None:
        os.chmod(p, (0o777 if executable else 0o666) & ~mask)

    if not os.path.isdir(path):
        fix(str(path), bool(os.stat(path).st_mode & 0o111))
        return
    for folder, _, names in os.walk(path):
        fix(folder, True)
        for name in names:
            p = os.path.join(folder, name)
            if not os.path.islink(p):
                fix(p, bool(os.lstat(p).st_mode & 0o111))


def atomic_write_bytes(path: str | Path, data: bytes, fsync: bool = True) -> None:
    """``fsync=False``: still whole or absent after a killed process (the rename comes last), but
    not forced to disk: for many small files that can be rewritten (a gallery's thumbnails)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            apply_default_modes(tmp)
            f.write(data)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


@contextlib.contextmanager
def atomic_directory(target: str | Path, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary folder next to ``target``; on success it replaces ``target``.

    On an exception the temporary folder is removed and ``target`` is left as it was.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} exists (pass overwrite=True to replace it)")
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        yield tmp
        apply_default_modes(tmp)
        old = None
        if target.exists():
            old = target.parent / f".{target.name}.old.{os.getpid()}"
            os.replace(target, old)
        os.replace(tmp, target)
        if old is not None:  # the replaced target: a folder, or a file / link the caller chose to replace
            if old.is_dir() and not old.is_symlink():
                shutil.rmtree(old, ignore_errors=True)
            else:
                old.unlink(missing_ok=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def cache_dir() -> Path:
    """Where rebuilt offline towers and other derived files are cached.

    ``CCR_DEMO_CACHE`` overrides; default ``~/.cache/ccr_demo``.
    """
    root = os.environ.get("CCR_DEMO_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "ccr_demo")
    return Path(root)
