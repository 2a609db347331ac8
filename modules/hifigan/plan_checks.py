"""What Validate says about a HiFi-GAN config beyond the schema (the spec's ``plan_checks``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modules.config.plan import PlanWarning, list_files, wav_stats


def plan_checks(c: Any, root: Path, dataset_dir: Path) -> list[PlanWarning]:
    """Validate's HiFi-GAN findings: lr_decay vs the schedule, feature files, sample rate, short clips."""
    h = c.hifigan
    out: list[PlanWarning] = []
    if c.lr_schedule.type == "exponential" and h.lr_decay is not None and h.lr_decay != c.lr_schedule.gamma:
        out.append(PlanWarning("hifigan.lr_decay", f"hifigan.lr_decay {h.lr_decay} differs from lr_schedule.gamma "
                               f"{c.lr_schedule.gamma}; training uses lr_schedule.gamma.",
                               "set hifigan.lr_decay to null or to the same value"))
    files = list_files(dataset_dir / "train.txt")
    if h.features == "files" and files:
        missing = [f for f in files if not (dataset_dir / (str(Path(f).with_suffix("")) + h.feature_suffix)).is_file()]
        if missing:
            out.append(PlanWarning("hifigan.features", f"{len(missing)} clip(s) have no feature file "
                                   f"(first: {Path(missing[0]).with_suffix('')}{h.feature_suffix}).",
                                   "create the feature files beside the audio or use features: mel", "error"))
    rate, short = wav_stats(dataset_dir, files[:2000], h.segment_size)
    if rate and rate != h.sampling_rate:
        out.append(PlanWarning("hifigan.sampling_rate", f"the dataset audio is {rate} Hz but hifigan.sampling_rate "
                               f"is {h.sampling_rate}.", f"set hifigan.sampling_rate to {rate} or prepare the "
                               f"dataset at {h.sampling_rate} Hz", "error"))
    if short and files and short * 2 > min(len(files), 2000):
        out.append(PlanWarning("hifigan.segment_size", f"{short} clip(s) are shorter than segment_size "
                               f"{h.segment_size} samples and get zero-padded.", "lower hifigan.segment_size"))
    return out
