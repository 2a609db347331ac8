"""The autoregressive model's fine-tune budget for derived settings (``modules.config.auto``)."""

from __future__ import annotations

from typing import Any


def budget(stats: Any) -> dict[str, Any]:
    """Epochs by clip count, as ai-voice-cloning's guidance goes: small voices need many passes over
    few clips, large datasets few passes; a short warm-up protects the base's weights."""
    epochs = int(min(200, max(5, round(2_000 / max(stats.clips, 1)))))
    return {"epochs": epochs, "usual_batch": 8, "cpu_batch": 2,
            "why": "2,000 clip-passes over the dataset, from 5 to 200 epochs",
            "warmup_fraction": 0.02, "warmup_cap": 500,
            "warmup_why": "2% of the run (at most 500 steps) of warm-up so the first steps do not wreck the base"}
