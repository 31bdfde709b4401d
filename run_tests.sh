#!/usr/bin/env bash
# README's test command: makes a fresh machine ready, then runs the whole test suite
# (slow and real-browser tests included). Extra arguments go to pytest, e.g.
#   ./run_tests.sh -m "not slow and not browser"
#   ./run_tests.sh --dry-run     # say which Python and system packages it would use, change nothing
# 1. the Python to install into: the active environment (a virtualenv or conda env), else a
#    `python` / `python3` on PATH whose pip may install (not "externally managed", PEP 668, as
#    Debian's and Ubuntu's system Python is), else a virtual environment it makes in .venv
#    (CCR_TEST_VENV names another folder); it says which;
# 2. system packages the browser test needs (Debian's chromium + CJK fonts), and python3-venv
#    where .venv has to be made without it, only when missing;
# 3. the Python packages, as README's install line; 4. pytest.
set -euo pipefail
cd "$(dirname "$0")"

dry_run=0
if [ "${1:-}" = "--dry-run" ]; then dry_run=1; shift; fi
venv="${CCR_TEST_VENV:-.venv}"

# What a Python can do, as two words: "ok" when `pip install` works there (else too-old,
# no-pip or externally-managed), and "venv" when it can make a virtual environment with pip in
# it (Debian's python3 cannot until python3-venv is installed: its ensurepip is missing).
probe='
import importlib.util, os, sys, sysconfig
in_env = sys.prefix != sys.base_prefix
managed = os.path.isfile(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED"))
if sys.version_info < (3, 10):
    state = "too-old"
elif importlib.util.find_spec("pip") is None:
    state = "no-pip"
elif managed and not in_env:
    state = "externally-managed"
else:
    state = "ok"
print(state, "venv" if importlib.util.find_spec("ensurepip") and importlib.util.find_spec("venv") else "no-venv")
'
probe_python() { "$1" -c "$probe" 2>/dev/null || echo "broken no-venv"; }

py="" why="" base="" base_state="" make_venv=0
active="${VIRTUAL_ENV:-${CONDA_PREFIX:-}}"
if [ -n "$active" ] && [ -x "$active/bin/python" ]; then
  read -r state _ < <(probe_python "$active/bin/python")
  if [ "$state" = ok ]; then
    py="$active/bin/python" why="the active environment $active"
  else
    echo "run_tests.sh: the active environment $active cannot pip install ($state): not using it" >&2
  fi
fi
if [ -z "$py" ]; then
  for candidate in python python3; do
    command -v "$candidate" >/dev/null 2>&1 || continue
    read -r state can_venv < <(probe_python "$candidate")
    if [ "$state" = ok ]; then
      py="$candidate" why="$candidate on PATH ($(command -v "$candidate")), whose pip may install"
      break
    fi
    if [ -z "$base" ] && [ "$state" != too-old ] && [ "$state" != broken ]; then
      base="$candidate" base_state="$state" base_venv="$can_venv"
    fi
  done
fi
if [ -z "$py" ] && [ -x "$venv/bin/python" ]; then
  read -r state _ < <(probe_python "$venv/bin/python")
  if [ "$state" = ok ]; then py="$venv/bin/python" why="the virtual environment $venv (made by an earlier run)"; fi
fi

missing=()
if [ -z "$py" ]; then
  make_venv=1
  if [ -z "$base" ]; then  # no usable Python at all: the OS's python3 and venv
    missing+=(python3 python3-venv)
    base=python3 why="a new virtual environment $venv, made with the system's python3 (none found)"
  else
    why="a new virtual environment $venv, made with $base ($(command -v "$base"): $base_state)"
    [ "$base_venv" = venv ] || missing+=(python3-venv)
  fi
fi

command -v chromium >/dev/null 2>&1 || missing+=(chromium)
fc-list 2>/dev/null | grep -qi "noto.*cjk" || missing+=(fonts-noto-cjk)

echo "run_tests.sh: Python: $why" >&2
if ((dry_run)); then
  echo "run_tests.sh: system packages to install: ${missing[*]:-none}" >&2
  echo "run_tests.sh: --dry-run: nothing installed, no tests run" >&2
  exit 0
fi

if ((${#missing[@]})); then
  echo "run_tests.sh: installing system packages: ${missing[*]}" >&2
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "run_tests.sh: no apt-get here: install ${missing[*]} with your package manager," \
         "or skip the browser test: ./run_tests.sh -m 'not browser'" >&2
    exit 2
  fi
  as_root=()
  if [ "$(id -u)" != 0 ]; then as_root=(sudo); fi
  "${as_root[@]}" apt-get update -qq
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi

if ((make_venv)); then
  if [ -e "$venv" ] && [ ! -f "$venv/pyvenv.cfg" ]; then
    echo "run_tests.sh: $venv exists and is not a virtual environment: move it, or set CCR_TEST_VENV" >&2
    exit 2
  fi
  echo "run_tests.sh: making the virtual environment $venv with $base" >&2
  "$base" -m venv --clear "$venv"
  read -r state _ < <(probe_python "$venv/bin/python")
  if [ "$state" != ok ]; then
    echo "run_tests.sh: the new virtual environment $venv cannot pip install ($state)" >&2
    exit 2
  fi
  py="$venv/bin/python"
fi
if [ "$py" = "$venv/bin/python" ]; then  # as `activate` does: its console scripts come first on PATH
  VIRTUAL_ENV="$(cd "$venv" && pwd)"
  export VIRTUAL_ENV PATH="$VIRTUAL_ENV/bin:$PATH"
fi

"$py" -m pip install -q -r requirements.txt -e ".[test]"
exec "$py" -m pytest "$@"
