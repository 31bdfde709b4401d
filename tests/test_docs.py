"""The README and docs/ name only things that exist.

Every command of the forms `python -m ccr_demo...`, `ccr-...`, `accelerate launch train/...` (or
`-m ccr_demo...`), `torchrun ... train/...`, `python train/...` and `python bench/...`, in fenced
code blocks and inline code, names a module / script / [project.scripts] entry that exists, and
each of its `--flags` appears in that command's `--help`. Every relative markdown link resolves
to a file, every dotted `ccr_demo.x.y` path is a module (or a name defined in one), and every
repository path of the code (`ccr_demo/...`, `train/...`, `bench/...`, `tests/...`) exists.

The `--help` texts are collected in one subprocess (heavy imports paid once), each call under
an alarm, so the whole file takes seconds rather than a minute.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shlex
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
FENCE = re.compile(r"^(```|~~~)([^\n`]*)\n(.*?)^\1[ \t]*$", re.M | re.S)
INLINE = re.compile(r"`([^`\n]+(?:\n[^`\n]+)*)`")
LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
DOTTED = re.compile(r"(?<![\w/.])ccr_demo(?:\.[A-Za-z_]\w*)+")
# a file (with its extension) or a folder (with its trailing slash); `train/itm` is a logged key, not a path
REPO_PATH = re.compile(r"(?<![\w/.~-])((?:ccr_demo|train|bench|tests)/(?:[\w.-]+/)*(?:[\w-]+\.\w+)?)(?![\w/])")
SCRIPT = re.compile(r"^(?:train|bench)/[\w/-]+\.py$")
ENTRY = re.compile(r"^ccr-[a-z][\w-]*$")
SUBCOMMAND = re.compile(r"^[a-z][a-z_]*$")
ENV = re.compile(r"^[A-Z_][A-Z0-9_]*=")


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def split_code(text: str) -> tuple[str, list[tuple[str, str]]]:
    """(prose with fenced blocks blanked, [(language, block body)])."""
    blocks = [(m[2].strip().lower(), m[3]) for m in FENCE.finditer(text)]
    return FENCE.sub(lambda m: "\n" * m[0].count("\n"), text), blocks


@lru_cache(maxsize=None)
def parsed(path: Path) -> tuple[str, tuple[tuple[str, str], ...]]:
    prose, blocks = split_code(path.read_text(encoding="utf-8"))
    return prose, tuple(blocks)


def command_strings(path: Path) -> list[str]:
    prose, blocks = parsed(path)
    out = []
    for lang, body in blocks:
        if lang in ("python", "py", "json", "yaml", "toml"):
            continue
        for line in body.splitlines():
            out.append(line)
    out += [" ".join(m[1].split()) for m in INLINE.finditer(prose)]
    pieces = []
    for s in out:
        s = re.sub(r"(^|\s)#.*$", "", s)  # a shell comment
        pieces += [p.strip() for p in re.split(r"&&|;", s) if p.strip()]
    return pieces


def tokens(command: str) -> list[str]:
    try:
        return shlex.split(command)
    except ValueError:
        return command.split()


def parse(command: str):
    """(kind, target, subcommand, flags) of a documented command, or None if it is none of ours.

    kind: "module" (python -m / -m under a launcher), "script" (train/*.py, bench/*.py) or "entry"."""
    t = tokens(command)
    while t and ENV.match(t[0]):
        t = t[1:]
    if not t:
        return None
    kind = target = None
    rest: list[str] = []
    if ENTRY.match(t[0]):
        kind, target, rest = "entry", t[0], t[1:]
    for i, tok in enumerate(t):
        if kind:
            break
        if tok == "python" and i + 1 < len(t):
            if t[i + 1] == "-m" and i + 2 < len(t) and t[i + 2].startswith("ccr_demo"):
                kind, target, rest = "module", t[i + 2], t[i + 3:]
            elif SCRIPT.match(t[i + 1]):
                kind, target, rest = "script", t[i + 1], t[i + 2:]
        elif tok in ("accelerate", "torchrun") and (tok == "torchrun" or t[i + 1:i + 2] == ["launch"]):
            for j in range(i + 1, len(t)):
                if t[j] == "-m" and j + 1 < len(t):
                    if t[j + 1].startswith("ccr_demo"):
                        kind, target, rest = "module", t[j + 1], t[j + 2:]
                    break
                if SCRIPT.match(t[j]):
                    kind, target, rest = "script", t[j], t[j + 1:]
                    break
            else:
                return None
    if not kind:
        return None
    sub = rest[0] if rest and SUBCOMMAND.match(rest[0]) else None
    flags = sorted({a.split("=", 1)[0] for a in rest if a.startswith("--") and len(a) > 2})
    return kind, target, sub or "", tuple(flags)


def documented_commands():
    seen = {}
    for path in DOCS:
        for c in command_strings(path):
            p = parse(c)
            if p:
                seen.setdefault(p, (rel(path), c))
    return seen


COMMANDS = documented_commands()


@lru_cache(maxsize=None)
def project_scripts() -> dict[str, str]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]


def module_exists(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def defined_in(module: str, name: str) -> bool:
    """Whether module's source defines (or imports) `name`, read without importing it."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return False
    src = Path(spec.origin).read_text(encoding="utf-8")
    return re.search(rf"(^|\n)\s*(def|class|async def)\s+{re.escape(name)}\b|\b{re.escape(name)}\s*[:=]"
                     rf"|import[^\n]*\b{re.escape(name)}\b", src) is not None


def test_documents_exist():
    assert (ROOT / "README.md").is_file() and len(DOCS) > 10
    assert COMMANDS, "no commands found in the docs: the extraction is broken"


@pytest.mark.parametrize("cmd", sorted(COMMANDS), ids=lambda c: f"{c[0]}:{c[1]}:{c[2] or ''}")
def test_command_target_exists(cmd):
    kind, target, _, _ = cmd
    where, text = COMMANDS[cmd]
    if kind == "script":
        assert (ROOT / target).is_file(), f"{where}: `{text}` runs {target}, which does not exist"
    elif kind == "module":
        assert module_exists(target), f"{where}: `{text}`: no module {target}"
        if (ROOT / target.replace(".", "/")).is_dir():
            assert module_exists(target + ".__main__"), f"{where}: `{text}`: {target} has no __main__"
    else:
        scripts = project_scripts()
        assert target in scripts, f"{where}: `{text}`: {target} is not in pyproject's [project.scripts]"
        module, func = scripts[target].split(":")
        assert module_exists(module) and defined_in(module, func), \
            f"{where}: `{text}`: {target} = {scripts[target]}, which does not exist"


HELPER = r"""
import contextlib, io, json, os, runpy, signal, sys
sys.path.insert(0, os.getcwd())
class Slow(Exception): pass
def alarm(*_): raise Slow()
signal.signal(signal.SIGALRM, alarm)
out = {}
for key, kind, target, argv in json.loads(sys.stdin.read()):
    buf, err = io.StringIO(), io.StringIO()
    saved_argv, saved_path = sys.argv[:], sys.path[:]
    signal.alarm(30)
    try:
        with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(err):
            if kind == "module":
                sys.argv = [target] + argv
                runpy.run_module(target, run_name="__main__", alter_sys=True)
            elif kind == "script":
                sys.argv = [target] + argv
                sys.path.insert(0, os.path.dirname(os.path.abspath(target)))
                runpy.run_path(target, run_name="__main__")
            else:
                module, func = target.split(":")
                sys.argv = [key.split()[0]] + argv
                fn = getattr(__import__(module, fromlist=[func]), func)
                fn()
        status = "returned without SystemExit"
    except SystemExit as e:
        status = f"exit {e.code}"
    except Slow:
        status = "still running after 30 s"
    except BaseException as e:
        status = f"{type(e).__name__}: {e}"
    finally:
        signal.alarm(0)
        sys.argv, sys.path[:] = saved_argv, saved_path
    out[key] = {"status": status, "help": buf.getvalue() + err.getvalue()}
sys.__stdout__.write("\n@@JSON@@" + json.dumps(out))
"""


@lru_cache(maxsize=None)
def help_texts() -> dict[str, dict]:
    """`--help` of every distinct (target, subcommand) that a documented command passes flags to."""
    calls, scripts = {}, project_scripts()
    for kind, target, sub, flags in COMMANDS:
        if not flags:
            continue
        if kind == "script" and not (ROOT / target).is_file():
            continue
        if kind == "module" and not module_exists(target):
            continue
        if kind == "entry" and target not in scripts:
            continue
        key = f"{target} {sub or ''}".strip()
        argv = ([sub] if sub else []) + ["--help"]
        calls[key] = [key, kind, scripts[target] if kind == "entry" else target, argv]
    if not calls:
        return {}
    proc = subprocess.run([sys.executable, "-c", HELPER], input=json.dumps(list(calls.values())), cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert "@@JSON@@" in proc.stdout, f"the --help collector failed:\n{proc.stderr[-3000:]}"
    return json.loads(proc.stdout.rsplit("@@JSON@@", 1)[1])


@pytest.mark.parametrize("cmd", sorted(c for c in COMMANDS if c[3]), ids=lambda c: f"{c[1]}:{c[2] or ''}")
def test_command_flags_in_help(cmd):
    kind, target, sub, flags = cmd
    where, text = COMMANDS[cmd]
    key = f"{target} {sub or ''}".strip()
    got = help_texts().get(key)
    if got is None:
        pytest.fail(f"{where}: `{text}`: {target} does not exist (see test_command_target_exists)")
    assert got["status"] == "exit 0", f"`{key} --help`: {got['status']}\n{got['help'][-2000:]}"
    missing = [f for f in flags if not re.search(rf"(?<![\w-]){re.escape(f)}(?![\w-])", got["help"])]
    assert not missing, f"{where}: `{text}`: {missing} not in `{key} --help`"


def test_relative_links_resolve():
    bad = []
    for path in DOCS:
        prose, _ = parsed(path)
        for m in LINK.finditer(prose):
            url = m[1]
            if re.match(r"^[a-z][a-z0-9+.-]*:", url) or url.startswith("#"):
                continue
            target = (path.parent / url.split("#", 1)[0]).resolve()
            if not target.exists():
                bad.append(f"{rel(path)}: ({url})")
    assert not bad, "links to nothing:\n" + "\n".join(bad)


def test_dotted_module_paths_exist():
    bad = []
    for path in DOCS:
        for name in sorted(set(DOTTED.findall(path.read_text(encoding="utf-8")))):
            parts = name.split(".")
            # the longest prefix that is a module; what follows must be one name defined in it
            for n in range(len(parts), 1, -1):
                if module_exists(".".join(parts[:n])):
                    break
            else:
                bad.append(f"{rel(path)}: {name} (no such module)")
                continue
            rest = parts[n:]
            if len(rest) > 1 or (rest and not defined_in(".".join(parts[:n]), rest[0])):
                bad.append(f"{rel(path)}: {name} ({'.'.join(rest)} is not defined in {'.'.join(parts[:n])})")
    assert not bad, "dotted paths to nothing:\n" + "\n".join(bad)


def test_repository_paths_exist():
    bad = []
    for path in DOCS:
        prose, blocks = parsed(path)
        text = prose + "\n".join(b for lang, b in blocks if lang not in ("python", "py"))
        for m in REPO_PATH.finditer(text):
            p = m[1]
            if p.endswith("/") is False and "." not in p.rsplit("/", 1)[-1]:
                continue
            if "*" in p or not (ROOT / p).exists():
                if "*" in p and list(ROOT.glob(p)):
                    continue
                bad.append(f"{rel(path)}: {p}")
    assert not bad, "paths that do not exist:\n" + "\n".join(sorted(set(bad)))
