#!/usr/bin/env bash
# Install what the test suite needs and run it: lint, type checks, then pytest.
#
# Run from anywhere inside the repository. As root on Debian or Ubuntu it installs the
# Debian packages it needs first; as another user it expects them to be there already.
set -euo pipefail

cd "$(dirname "$0")/.."
venv="${VENV:-.venv}"

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    missing=()
    command -v python3 >/dev/null || missing+=(python3)
    python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
    if [ "${#missing[@]}" -gt 0 ]; then
        apt-get update -q
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
    fi
fi

if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install -q --disable-pip-version-check -e '.[test]'

"$venv/bin/ruff" check .
"$venv/bin/ruff" format --check .
"$venv/bin/mypy"
"$venv/bin/pytest" "$@"
