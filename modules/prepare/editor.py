"""The clip table behind the Prepare tab's editor: load, edit (text, split, deletions), save.

Edits go back into ``train.txt``/``validation.txt``/``dataset.json``; text-based flags are
recomputed so that fixing a transcript clears its ``empty_text`` or ``repeated_phrase`` flag.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from modules.errors import UserError
from modules.prepare import checks
from modules.prepare.manifest import clean_line_text, load_dataset, write_dataset

COLUMNS = ["file", "split", "duration", "text", "flags"]


def load_table(dataset_dir: Path) -> pd.DataFrame:
    """One row per clip: file (``audio/x.wav``), split, duration (s), text, flags (comma-joined)."""
    meta = load_dataset(Path(dataset_dir))
    rows = [
        {
            "file": c["file"],
            "split": c.get("split", "train"),
            "duration": round(float(c.get("duration", 0.0)), 2),
            "text": c.get("text", ""),
            "flags": ", ".join(c.get("flags", [])),
        }
        for c in meta["clips"]
    ]
    return pd.DataFrame(rows, columns=COLUMNS)


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return ""
    return str(value)


def save_table(dataset_dir: Path, table: pd.DataFrame) -> None:
    """Apply an edited table: new text and split per file; clips missing from the table are deleted
    (their wav files removed). Refuses unknown files and a table that leaves no training clip."""
    dataset_dir = Path(dataset_dir)
    meta = load_dataset(dataset_dir)
    by_file = {c["file"]: c for c in meta["clips"]}
    if "file" not in table.columns or "text" not in table.columns:
        raise UserError("the clip table needs 'file' and 'text' columns; reload the dataset and edit again")
    kept: list[dict[str, Any]] = []
    seen: set[str] = set()
    for _, row in table.iterrows():
        file = _cell(row["file"]).strip()
        if not file:
            continue
        if file not in by_file:
            raise UserError(f"{file}: not a clip of {dataset_dir.name}; reload the table (it may be out of date)")
        if file in seen:
            continue
        seen.add(file)
        clip = dict(by_file[file])
        clip["text"] = clean_line_text(_cell(row["text"]))
        if "split" in table.columns:
            split = _cell(row["split"]).strip().lower() or clip.get("split", "train")
            if split not in ("train", "validation"):
                raise UserError(f"{file}: split {split!r} must be 'train' or 'validation'")
            clip["split"] = split
        kept.append(clip)
    if not any(c.get("split") != "validation" for c in kept):
        raise UserError("the edited dataset has no training clip left; keep at least one clip in 'train'")
    checks.refresh_text_flags(kept)
    removed = [f for f in by_file if f not in seen]
    meta["clips"] = kept
    meta["removed"] = sorted(set(meta.get("removed", [])) | set(removed))
    write_dataset(dataset_dir, meta)
    for file in removed:
        path = (dataset_dir / file).resolve()
        if dataset_dir.resolve() in path.parents:
            path.unlink(missing_ok=True)


def dataset_stats(dataset_dir: Path) -> dict[str, Any]:
    """Clip count, total and mean duration (s), train/validation counts, flagged count, durations."""
    meta = load_dataset(Path(dataset_dir))
    durations = [float(c.get("duration", 0.0)) for c in meta["clips"]]
    total = float(sum(durations))
    return {
        "clips": len(durations),
        "total_seconds": round(total, 3),
        "mean_seconds": round(total / len(durations), 3) if durations else 0.0,
        "train": sum(1 for c in meta["clips"] if c.get("split") != "validation"),
        "validation": sum(1 for c in meta["clips"] if c.get("split") == "validation"),
        "flagged": sum(1 for c in meta["clips"] if c.get("flags")),
        "durations": durations,
    }
