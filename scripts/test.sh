#!/usr/bin/env bash
# The one test command (README, .ci/run): install what the suite needs, run pytest, then
# every notebook under nbmake. Arguments go to the first pytest run, e.g. -m "not postgres".
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Debian keeps these off a normal user's PATH: mosquitto in /usr/sbin, initdb in
# /usr/lib/postgresql/<version>/bin. The harness (tests/services.py) looks in the same places.
have_mosquitto() {
    command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || [ -x /usr/local/sbin/mosquitto ]
}
have_initdb() {
    command -v initdb >/dev/null 2>&1 || compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null
}

missing=()
have_mosquitto || missing+=(mosquitto)
have_initdb || missing+=(postgresql)
# The browser smoke test drives Debian's chromium with Playwright (never `playwright install`).
[ -x /usr/bin/chromium ] || missing+=(chromium fonts-dejavu-core)

if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "test.sh: installing ${missing[*]}" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${missing[@]}"
    else
        echo "test.sh: missing system packages: ${missing[*]}" >&2
        echo "  install them with: sudo apt-get install -y ${missing[*]}" >&2
        exit 1
    fi
fi

PIP_ROOT_USER_ACTION=ignore python3 -m pip install -q -e '.[dev]'

python3 -m pytest "$@"

# The tools agree with the code: lint and strict typing are part of the suite.
python3 -m ruff check mocksim tests bench
python3 -m ruff format --check mocksim tests bench
python3 -m mypy

if [ -n "$(find notebooks -name '*.ipynb' -not -path '*/.ipynb_checkpoints/*' -print -quit 2>/dev/null)" ]; then
    MOCKSIM_FAST=1 python3 -m pytest --nbmake notebooks/
fi
