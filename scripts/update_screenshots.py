"""Copy the screenshots the browser tests took (test-artifacts/) into docs/screenshots/ for the README.

Run by hand after ./test.sh when the UI changed: the tests never write tracked files themselves.

    .venv/bin/python scripts/update_screenshots.py
"""

from __future__ import annotations

import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHOTS = {"prepare_tab.png": "prepare.png", "configure.png": "configure.png", "train.png": "train.png",
         "evaluation.png": "evaluation.png", "quickstart.png": "quickstart.png",
         "train_hifidecoder.png": "hifidecoder.png"}


def main() -> int:
    src, dst = REPO / "test-artifacts", REPO / "docs" / "screenshots"
    missing = [name for name in SHOTS if not (src / name).is_file()]
    if missing:
        print(f"missing in {src}: {', '.join(missing)}; run ./test.sh tests/app first")
        return 1
    dst.mkdir(parents=True, exist_ok=True)
    for name, target in SHOTS.items():
        shutil.copyfile(src / name, dst / target)
        print(f"{src / name} -> {dst / target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
