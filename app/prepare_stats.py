"""What the Prepare editor shows about its table: counts, durations, and the duration histogram data."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from app.prepare_editor import flagged_mask, ticked_mask

HISTOGRAM_BIN_SECONDS = 0.5


def table_stats(full: pd.DataFrame) -> dict[str, Any]:
    """Counts and durations of the clips that will be kept (rows ticked for deletion left out)."""
    kept = full[~ticked_mask(full)] if len(full) else full
    durations = pd.to_numeric(kept["duration"], errors="coerce").fillna(0.0) if len(kept) else pd.Series(
        [], dtype=float)
    total = float(durations.sum())
    return {
        "clips": int(len(kept)),
        "total_seconds": total,
        "mean_seconds": total / len(kept) if len(kept) else 0.0,
        "train": int((kept["split"] != "validation").sum()) if len(kept) else 0,
        "validation": int((kept["split"] == "validation").sum()) if len(kept) else 0,
        "flagged": int(flagged_mask(kept).sum()) if len(kept) else 0,
        "marked": int(len(full) - len(kept)),
        "durations": durations.to_numpy(dtype=float),
    }


def format_seconds(seconds: float) -> str:
    """A duration as people read it: seconds, minutes or hours depending on size."""
    seconds = float(seconds)
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(seconds, 60)
    if minutes < 60:
        return f"{int(minutes)} min {rest:.0f} s"
    hours, minutes = divmod(minutes, 60)
    return f"{int(hours)} h {int(minutes)} min"


def stats_markdown(name: str | None, stats: dict[str, Any], unsaved: bool) -> str:
    """The stats line under the editor: what a trainer will see when this dataset is saved."""
    if not name:
        return "No dataset loaded. Prepare a voice, or pick a prepared dataset and press **Load dataset**."
    lines = [
        f"**Dataset** `training/{name}`",
        f"**Clips:** {stats['clips']} ({stats['train']} train, {stats['validation']} validation)",
        f"**Total:** {format_seconds(stats['total_seconds'])}",
        f"**Mean:** {stats['mean_seconds']:.2f} s",
        f"**Flagged:** {stats['flagged']}",
    ]
    if stats["marked"]:
        lines.append(f"**Ticked for deletion:** {stats['marked']}")
    if unsaved:
        lines.append("*Unsaved changes: press **Save** to write them.*")
    return "  \n".join(lines)


def histogram_table(durations: np.ndarray, bin_seconds: float = HISTOGRAM_BIN_SECONDS) -> pd.DataFrame:
    """Clip counts per duration bin, every bin from the shortest to the longest clip (empty ones too)."""
    durations = np.asarray(durations, dtype=float)
    if durations.size == 0:
        return pd.DataFrame({"seconds": pd.Series(dtype=str), "clips": pd.Series(dtype=int)})
    first = np.floor(durations.min() / bin_seconds) * bin_seconds
    last = np.floor(durations.max() / bin_seconds) * bin_seconds
    starts = np.arange(first, last + bin_seconds / 2, bin_seconds)
    index = np.clip(np.floor((durations - first) / bin_seconds).astype(int), 0, len(starts) - 1)
    counts = np.bincount(index, minlength=len(starts))
    labels = [f"{s:.1f}–{s + bin_seconds:.1f}" for s in starts]
    return pd.DataFrame({"seconds": labels, "clips": counts.astype(int)})
