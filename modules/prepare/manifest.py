"""Read and write a prepared dataset's files: ``train.txt``, ``validation.txt``, ``dataset.json``.

The list files use the ``audio/FILE.wav|text`` format that ai-voice-cloning and DLAS read;
``dataset.json`` keeps everything else (settings, per-clip source and offsets, flags, skipped files).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from modules.errors import UserError
from modules.fileutil import atomic_write_json, atomic_write_text

DATASET_JSON = "dataset.json"
TRAIN_LIST = "train.txt"
VALIDATION_LIST = "validation.txt"
FORMAT_VERSION = 1


def clean_line_text(text: str) -> str:
    """Text safe for one manifest line: no newline, no '|', single spaces."""
    return " ".join(str(text or "").replace("|", " ").split())


def list_text(clips: list[dict[str, Any]]) -> str:
    return "".join(f"{c['file']}|{clean_line_text(c.get('text', ''))}\n" for c in clips)


def read_list(path: Path) -> list[tuple[str, str]]:
    """``audio/x.wav|text`` lines -> [(file, text)]; a missing file is an empty list."""
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if "|" in line:
            file, _, text = line.partition("|")
            out.append((file.strip(), text.strip()))
    return out


def write_dataset(dataset_dir: Path, meta: dict[str, Any]) -> None:
    """Write ``dataset.json`` and both list files from ``meta['clips']`` (each write atomic)."""
    clips = meta["clips"]
    atomic_write_json(dataset_dir / DATASET_JSON, meta)
    atomic_write_text(dataset_dir / TRAIN_LIST, list_text([c for c in clips if c.get("split") != "validation"]))
    atomic_write_text(dataset_dir / VALIDATION_LIST, list_text([c for c in clips if c.get("split") == "validation"]))


def load_dataset(dataset_dir: Path) -> dict[str, Any]:
    """``dataset.json`` merged with the list files (which win for text and split, so an external
    edit of ``train.txt`` shows up). Datasets made elsewhere with only the lists also load."""
    dataset_dir = Path(dataset_dir)
    train = read_list(dataset_dir / TRAIN_LIST)
    val = read_list(dataset_dir / VALIDATION_LIST)
    meta_path = dataset_dir / DATASET_JSON
    meta: dict[str, Any] = {}
    if meta_path.is_file():
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise UserError(f"{meta_path}: unreadable ({exc}); prepare the voice again") from exc
    elif not train and not val:
        raise UserError(f"{dataset_dir}: no prepared dataset here (no train.txt or dataset.json); run prepare first")
    by_file = {c["file"]: c for c in meta.get("clips", [])}
    if train or val or (dataset_dir / TRAIN_LIST).is_file():
        clips = []
        for split, rows in (("train", train), ("validation", val)):
            for file, text in rows:
                clip = dict(by_file.get(file, {"file": file, "flags": []}))
                clip["text"], clip["split"] = text, split
                if "duration" not in clip:
                    clip["duration"] = _wav_duration(dataset_dir / file)
                clips.append(clip)
        meta["clips"] = clips
    meta.setdefault("clips", [])
    return meta


def _wav_duration(path: Path) -> float:
    try:
        import soundfile as sf

        info = sf.info(str(path))
        return float(info.frames) / float(info.samplerate)
    except Exception:
        return 0.0
