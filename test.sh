#!/usr/bin/env bash
# Install the test extras (first run only), lint with ruff, and run the whole test suite.
# Extra arguments pass through to pytest, e.g. ./test.sh -k hifigan -x
source "$(dirname "${BASH_SOURCE[0]}")/scripts/venv.sh"
ensure_venv
install_requirements "$ROOT/requirements-dev.txt"
cd "$ROOT"
export PYTHONUNBUFFERED=1
"$PY" -m ruff check .
exec "$PY" -m pytest tests -rs "$@"  # -rs: the skip list (in CI a skip fails)
