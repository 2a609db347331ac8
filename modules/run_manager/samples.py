"""Validation audio a run saved: ``samples/step_XXXXXXXX/NAME.wav`` beside ``NAME_ref.wav``."""

from __future__ import annotations

import json
import re
from pathlib import Path

_STEP_RE = re.compile(r"^step_(\d+)$")


def list_sample_steps(run_dir: Path) -> list[int]:
    """Steps that have validation audio, newest first."""
    root = Path(run_dir) / "samples"
    if not root.is_dir():
        return []
    steps = []
    for p in root.iterdir():
        m = _STEP_RE.match(p.name)
        if m and p.is_dir() and any(p.glob("*.wav")):
            steps.append(int(m.group(1)))
    return sorted(steps, reverse=True)


def sample_dir(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / "samples" / f"step_{int(step):08d}"


def sample_clips(run_dir: Path, step: int) -> list[tuple[str, Path, Path | None]]:
    """``(name, generated wav, reference wav or None)`` for one validation step, sorted by name."""
    folder = sample_dir(run_dir, step)
    if not folder.is_dir():
        return []
    out = []
    for wav in sorted(folder.glob("*.wav")):
        if wav.stem.endswith("_ref") or wav.name.startswith("."):
            continue
        ref = wav.with_name(wav.stem + "_ref.wav")
        out.append((wav.stem, wav, ref if ref.is_file() else None))
    return out


def sample_info(run_dir: Path, step: int) -> dict[str, dict]:
    """``samples.json`` of a validation step: name -> {"rendered_by", "sample_rate"} ({} when absent)."""
    try:
        data = json.loads((sample_dir(run_dir, step) / "samples.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
