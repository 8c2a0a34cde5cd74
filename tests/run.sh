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
    # initdb and pg_ctl for the throw-away PostgreSQL cluster of the shared-ledger tests
    compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql)
    # SoftHSM2 for the tests that keep master keys in a PKCS#11 token
    command -v softhsm2-util >/dev/null || missing+=(softhsm2)
    # The PC/SC tier: pcscd, vsmartcard's vpcd driver and ESC's coolkey libraries; pyscard
    # has no Linux wheel and builds with gcc and swig against the PC/SC and Python headers
    command -v pcscd >/dev/null || missing+=(pcscd)
    [ -e /usr/lib/pcsc/drivers/serial/libifdvpcd.so ] || missing+=(vsmartcard-vpcd)
    [ -e /usr/lib/pkcs11/libcoolkeypk11.so ] || missing+=(coolkey)
    [ -e /usr/include/PCSC/winscard.h ] || missing+=(libpcsclite-dev)
    command -v swig >/dev/null || missing+=(swig)
    command -v gcc >/dev/null || missing+=(gcc)
    include="$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["include"])' 2>/dev/null)"
    [ -e "$include/Python.h" ] || missing+=(python3-dev)
    if [ "${#missing[@]}" -gt 0 ]; then
        apt-get update -q
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
    fi
fi

if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
# pyscard builds from source; without its build tools the PC/SC tier skips and says why.
extras=test
if command -v swig >/dev/null && [ -e /usr/include/PCSC/winscard.h ]; then
    extras=test,pcsc
else
    echo "tests/run.sh: no swig or PC/SC headers: pyscard not installed, PC/SC tier skipped" >&2
fi
"$venv/bin/python" -m pip install -q --disable-pip-version-check -e ".[$extras]"

"$venv/bin/ruff" check .
"$venv/bin/ruff" format --check .
"$venv/bin/mypy"
"$venv/bin/pytest" "$@"
