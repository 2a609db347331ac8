#!/usr/bin/env bash
# Set up (first run only) and launch the Voicetune web UI on http://127.0.0.1:7860.
# Extra arguments pass through: --port N, --listen (bind 0.0.0.0), --workspace DIR.
source "$(dirname "${BASH_SOURCE[0]}")/scripts/venv.sh"
ensure_venv
install_requirements "$ROOT/requirements.txt"
cd "$ROOT"
exec "$PY" -m app "$@"
