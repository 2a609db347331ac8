# Sourced by start.sh and test.sh: create .venv if missing and install a requirements
# file only when its content (or the files it includes) changed since the last install.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VOICETUNE_VENV:-$ROOT/.venv}"
PY="$VENV/bin/python"

ensure_venv() {
  if [ ! -x "$PY" ]; then
    echo "Creating virtual environment in $VENV"
    "${PYTHON:-python3}" -m venv "$VENV"
    "$PY" -m pip install --quiet --upgrade pip
  fi
  # the checkout on the venv's import path: `import modules` works from bench/, scripts/ and tests
  # without any code editing sys.path (a .pth file, re-written each time in case the checkout moved)
  local site
  site="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  echo "$ROOT" > "$site/voicetune.pth"
}

# install_requirements FILE...: pip install -r each file unless the stamp matches.
install_requirements() {
  local stamp="$VENV/.installed-$(basename "$1").sha256"
  local want
  want="$(cat "$@" "$ROOT/requirements.txt" | sha256sum | cut -d' ' -f1)"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    return 0
  fi
  echo "Installing $(basename "$1") (first run or requirements changed; torch is a large download)"
  local args=()
  for f in "$@"; do args+=(-r "$f"); done
  "$PY" -m pip install --progress-bar off "${args[@]}"
  echo "$want" > "$stamp"
}
