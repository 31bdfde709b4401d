#!/usr/bin/env bash
# README's test command: makes a fresh machine ready, then runs the whole test suite
# (slow and real-browser tests included). Extra arguments go to pytest, e.g.
#   ./run_tests.sh -m "not slow and not browser"
# 1. system packages the browser test needs (Debian's chromium + CJK fonts), only when missing;
# 2. the Python packages, as README's install line; 3. pytest.
set -euo pipefail
cd "$(dirname "$0")"

missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
fc-list 2>/dev/null | grep -qi "noto.*cjk" || missing+=(fonts-noto-cjk)
if ((${#missing[@]})); then
  echo "run_tests.sh: installing system packages for the browser test: ${missing[*]}" >&2
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

python -m pip install -q -r requirements.txt -e ".[test]"
exec python -m pytest "$@"
