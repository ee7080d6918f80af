# Sourced by scripts/run and scripts/test: create .venv (Python >= 3.11) and
# install into it, as a user would (a regular, not editable, install, which
# prints no deprecation warning and puts twisted/plugins/gateway_plugin.py
# where twistd looks), the checkout's kafka-gateway with $EXTRAS, the
# development broker tools/devkafka, and any $PACKAGES given. Every run
# reinstalls them, so .venv always runs the checkout's code.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "kafka-gateway needs Python >= 3.11 (tried '$PYTHON'; set PYTHON=...)" >&2
    exit 1
fi
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
# setuptools builds in the source tree and never empties build/: a module
# deleted from the checkout would live on in the installed copy.
rm -rf build tools/devkafka/build
# shellcheck disable=SC2086  # $PACKAGES is a list of paths
.venv/bin/python -m pip install -q --disable-pip-version-check \
    ".${EXTRAS:-}" ./tools/devkafka ${PACKAGES:-}
# The unit tests import the checkout's gateway: give it the optional C
# extension the installed copy has (setup.py; without a compiler this only
# warns, and both copies run the pure-Python produce path).
.venv/bin/python setup.py -q build_ext --inplace 2>&1 | grep -v "^running\|^copying" || true
rm -rf build
