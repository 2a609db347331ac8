"""Validation audio a run saved: ``samples/step_XXXXXXXX/NAME.wav`` beside ``NAME_ref.wav``."""

from __future__ import annotations

import re
from pathlib import Path

from modules.fileutil import read_json_dict
from modules.trainer.runfolder import RunPaths

_STEP_RE = re.compile(r"^step_(\d+)$")


def list_sample_steps(run_dir: Path) -> list[int]:
    """Steps that have validation audio, newest first."""
    root = RunPaths(Path(run_dir)).samples
    if not root.is_dir():
        return []
    steps = []
    for p in root.iterdir():
        m = _STEP_RE.match(p.name)
        if m and p.is_dir() and any(p.glob("*.wav")):
            steps.append(int(m.group(1)))
    return sorted(steps, reverse=True)


def sample_dir(run_dir: Path, step: int) -> Path:
    return RunPaths(Path(run_dir)).sample_dir(step)


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
    return read_json_dict(RunPaths(Path(run_dir)).sample_info(step)) or {}
