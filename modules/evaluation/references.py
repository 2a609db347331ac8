"""The voice a run's samples are compared with: a fixed, seeded subset of its training clips.

Their mean speaker embedding is what every sample's likeness is measured against; the mean
similarity of the references to it is the ceiling a sample can be expected to reach, and whisper's
word error rate on the references themselves is the floor (whisper's own mistakes on this voice).
Computed once per run and scorer and kept in ``evaluation/references.json``.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np

from modules.errors import UserError
from modules.evaluation import store
from modules.evaluation.scorers import RATE, cosine, mean_direction
from modules.evaluation.text import word_error_rate
from modules.fileutil import atomic_write_json, read_json_dict


def pick_references(dataset_dir: Path, count: int, seed: int) -> list[tuple[str, str]]:
    """``count`` (file, text) rows of ``train.txt`` drawn with ``seed``, in file order."""
    from modules.prepare.manifest import read_list

    rows = read_list(Path(dataset_dir) / "train.txt")
    picks = random.Random(seed).sample(range(len(rows)), min(count, len(rows)))
    return [rows[i] for i in sorted(picks)]


def reference_stats(run_dir: Path, dataset_dir: Path, count: int, seed: int, speaker: Any, whisper: Any,
                    log: Any = print) -> dict[str, Any]:
    """The references' mean embedding, ceiling and floor (cached; recomputed when the clips or the
    scorers change)."""
    from modules.audio import read_audio

    rows = pick_references(dataset_dir, count, seed)
    if not rows:
        raise UserError(f"{Path(dataset_dir) / 'train.txt'}: no training clips to compare samples with; "
                        "prepare the dataset (or fix the run's dataset: in its config.yaml)")
    key = {"clips": [f for f, _ in rows], "speaker": getattr(speaker, "model_id", None),
           "whisper": getattr(whisper, "model_id", None)}
    cached = read_json_dict(store.references_path(run_dir))
    if cached and cached.get("key") == key:
        return cached
    log(f"scoring {len(rows)} reference clips of the voice (once per run)")
    embeddings, wers = [], []
    for file, text in rows:
        audio, _ = read_audio(Path(dataset_dir) / file, RATE)
        if speaker is not None:
            embeddings.append(speaker.embed(audio))
        if whisper is not None and text:
            wers.append(word_error_rate(text, whisper.transcribe(audio)))
    out: dict[str, Any] = {"key": key, "clips": key["clips"]}
    if embeddings:
        centre = mean_direction(embeddings)
        out["centre"] = [round(float(v), 7) for v in centre]
        out["speaker_sim_ceiling"] = float(np.mean([cosine(e, centre) for e in embeddings]))
    if wers:
        out["wer_floor"] = float(np.mean(wers))
    atomic_write_json(store.references_path(run_dir), out)
    return out
