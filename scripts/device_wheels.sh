#!/usr/bin/env bash
# Download, as Python 3.12 manylinux wheels into .whl/ (ignored by git), the few packages the benches import
# that a lent GPU machine's image lacks (it has torch, torchaudio, onnxruntime, pandas, PyYAML, tokenizers,
# TensorBoard, but no soundfile, unidecode or inflect, and it cannot reach a registry).
# scripts/gpu_checks.sh installs them there with --no-index when no .venv travelled.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY="${PY:-.venv/bin/python}"
# the pinned versions from requirements.txt where they are pinned there, plus what they need at import time
# and the image lacks (inflect needs typeguard and more-itertools; soundfile needs cffi and pycparser)
WANT=(
  "soundfile==$(sed -n 's/^soundfile==//p' requirements.txt)"
  "unidecode==$(sed -n 's/^[Uu]nidecode==//p' requirements.txt)"
  "inflect==$(sed -n 's/^inflect==//p' requirements.txt)"
  typeguard==4.6.1 more-itertools==11.2.1 jaraco.functools==4.6.0 cffi==2.1.1 pycparser==3.12
)
for spec in "${WANT[@]}"; do
  case "$spec" in *==) echo "not pinned in requirements.txt: ${spec%==}" >&2; exit 1 ;; esac
done
DEST="${DEST:-.whl}"  # DEST and PYTHON_VERSION: to try the same install on another Python here
rm -rf "$DEST" && mkdir -p "$DEST"
"$PY" -m pip download --quiet --no-deps --only-binary=:all: --python-version "${PYTHON_VERSION:-3.12}" --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform any -d "$DEST" "${WANT[@]}"
ls -l "$DEST"
du -sh "$DEST"
