"""Where scores live in a run folder, and reading them back.

- ``samples/step_X/scores.json``: per-sample cache ``{name: {"sha1", "wer", "speaker_sim",
  "transcript", "whisper"}}``, so scoring a step again costs nothing;
- ``metrics.jsonl``: one validation record per scored step (``val_wer``, ``val_speaker_sim``,
  ``val_score``), appended beside the trainer's own validation record of that step;
- ``evaluation/references.json``: the reference clips, their mean embedding, the ceiling
  (references against their own mean) and the floor (whisper's WER on the references);
- ``evaluation/status.json``: what the scorer is doing, or why a scorer is off;
- ``states/step_X.json`` (the state's sidecar) gains the step's scores.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

from modules.fileutil import atomic_write_json, read_json_dict
from modules.trainer.metrics import read_metrics
from modules.trainer.runfolder import RunPaths

SCORE_KEYS = ("val_wer", "val_speaker_sim")
_SAMPLE_RE = re.compile(r"^sample(\d+)$")


def evaluation_dir(run_dir: Path) -> Path:
    return Path(run_dir) / "evaluation"


def status_path(run_dir: Path) -> Path:
    return evaluation_dir(run_dir) / "status.json"


def references_path(run_dir: Path) -> Path:
    return evaluation_dir(run_dir) / "references.json"


def cache_path(run_dir: Path, step: int) -> Path:
    return RunPaths(Path(run_dir)).sample_dir(step) / "scores.json"


def read_status(run_dir: Path) -> dict[str, Any]:
    return read_json_dict(status_path(run_dir)) or {}


def write_status(run_dir: Path, **values: Any) -> None:
    data = read_status(run_dir)
    data.update(values)
    atomic_write_json(status_path(run_dir), data)


def file_digest(path: Path) -> str:
    return hashlib.sha1(Path(path).read_bytes()).hexdigest()


def validation_records(run_dir: Path) -> list[dict[str, Any]]:
    return [r for r in read_metrics(RunPaths(Path(run_dir)).metrics) if r.get("validation")]


def scored_steps(run_dir: Path) -> dict[int, dict[str, Any]]:
    """step -> the newest record holding a score (``val_wer`` or ``val_speaker_sim``) of that step."""
    out: dict[int, dict[str, Any]] = {}
    for rec in validation_records(run_dir):
        if any(k in rec for k in SCORE_KEYS):
            out[int(rec["step"])] = rec
    return out


def validated_steps(run_dir: Path) -> set[int]:
    """Steps the trainer validated (its own record, without scores) in the current timeline."""
    return {int(r["step"]) for r in validation_records(run_dir) if not any(k in r for k in SCORE_KEYS)}


def sample_steps(run_dir: Path) -> list[int]:
    """Steps whose samples are complete (``samples.json`` is written after the audio), oldest first."""
    root = RunPaths(Path(run_dir)).samples
    if not root.is_dir():
        return []
    steps = []
    for info in root.glob("step_*/samples.json"):
        try:
            steps.append(int(info.parent.name.split("_", 1)[1]))
        except ValueError:
            continue
    return sorted(steps)


def pending_steps(run_dir: Path, wanted: list[int] | None = None) -> list[int]:
    """Steps with complete samples and no complete score yet (both parts), oldest first: those the
    trainer validated in the current timeline, or exactly ``wanted``."""
    done = {s for s, rec in scored_steps(run_dir).items() if all(k in rec for k in SCORE_KEYS)}
    allowed = set(wanted) if wanted is not None else validated_steps(run_dir)
    return [s for s in sample_steps(run_dir) if s not in done and s in allowed]


def sample_texts(run_dir: Path, step: int, dataset_dir: Path | None) -> dict[str, str]:
    """name -> intended text of each generated clip of ``step``.

    ``samples.json`` holds it for runs made since scoring exists; older HiFi-GAN runs fall back to
    the dataset's ``validation.txt`` (their clips are named after their file). Older autoregressive
    ``sampleNN`` clips get no text (their numbering skipped unusable lines, so a guess could be
    another sentence): they are scored for likeness only."""
    info = read_json_dict(RunPaths(Path(run_dir)).sample_info(step)) or {}
    texts = {name: str(v.get("text")) for name, v in info.items() if isinstance(v, dict) and v.get("text")}
    missing = [n for n in info if n not in texts]
    if missing and dataset_dir is not None:
        from modules.prepare.manifest import read_list

        rows = read_list(Path(dataset_dir) / "validation.txt")
        by_stem = {Path(f).stem: t for f, t in rows}
        for name in missing:
            if name in by_stem and not _SAMPLE_RE.match(name):
                texts[name] = by_stem[name]
    return texts


def sample_names(run_dir: Path, step: int) -> list[str]:
    """The generated clips of a step (``NAME.wav`` without the ``_ref`` references and without the
    comparison renderings ``samples.json`` marks, e.g. the base decoder's), sorted."""
    paths = RunPaths(Path(run_dir))
    info = read_json_dict(paths.sample_info(step)) or {}
    skip = {name for name, v in info.items() if isinstance(v, dict) and v.get("comparison")}
    return sorted(p.stem for p in paths.sample_dir(step).glob("*.wav")
                  if not p.stem.endswith("_ref") and not p.name.startswith(".") and p.stem not in skip)


def update_sidecar(run_dir: Path, step: int, scores: dict[str, float]) -> bool:
    """Add ``scores`` to the sidecar of the state of ``step`` when that state exists."""
    paths = RunPaths(Path(run_dir))
    pt = paths.state_file(step)
    side = pt.with_suffix(".json")
    data = read_json_dict(side)
    if data is None or not pt.is_file():
        return False
    if all(data.get(k) == v for k, v in scores.items()):
        return False
    data.update(scores)
    atomic_write_json(side, data)
    return True
