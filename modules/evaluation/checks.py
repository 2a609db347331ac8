"""Validate-time checks of validation scoring: a validation set fit for judging checkpoints, and the
speaker encoder being installed (a whisper model that does not resolve is reported by the scorer
when it starts: it may sit in the Hugging Face cache, which only loading can tell)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from modules.evaluation.text import normalise


def overlapping_texts(dataset_dir: Path) -> list[str]:
    """Validation texts that are also training texts (after normalisation), in validation order."""
    from modules.prepare.manifest import read_list

    train = {normalise(t) for _, t in read_list(Path(dataset_dir) / "train.txt") if t.strip()}
    return [t for _, t in read_list(Path(dataset_dir) / "validation.txt") if t.strip() and normalise(t) in train]


def evaluation_warnings(config: Any, root: Path, dataset_dir: Path) -> list[tuple[str, str, str]]:
    """(key, message, fix) warnings for the Validate button and ``config check``."""
    out = []
    same = overlapping_texts(dataset_dir)
    if same:
        out.append(("dataset", f"{len(same)} validation text(s) are also training texts (e.g. {same[0]!r}): "
                    "their scores reward memorising, not speaking new sentences.",
                    "give validation clips sentences of their own (edit the texts or the split in Prepare)"))
    o = config.evaluation
    if not o.enabled or not config.validation_samples:
        return out
    if importlib.util.find_spec("resemblyzer") is None:
        out.append(("evaluation.enabled", "resemblyzer is not installed: speaker likeness will not be scored.",
                    "pip install -r requirements.txt"))
    return out
