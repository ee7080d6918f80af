# Sourced by scripts/run and scripts/test: create .venv (Python >= 3.11) and
# install the project into it, editable in "compat" mode so twistd finds
# twisted/plugins/gateway_plugin.py in the checkout.
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
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".${EXTRAS:-}" --config-settings editable_mode=compat
