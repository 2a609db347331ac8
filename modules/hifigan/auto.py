"""HiFi-GAN's fine-tune budget for derived settings (``modules.config.auto``)."""

from __future__ import annotations

from typing import Any


def budget(stats: Any) -> dict[str, Any]:
    """Steps by minutes of audio: a vocoder fine-tune keeps improving with steps on a voice, but a
    few minutes of audio are learned within a few thousand steps (jik876's batch 16)."""
    minutes = stats.seconds / 60
    steps = int(min(50_000, max(2_000, round(minutes * 2_000, -2))))
    return {"steps": steps, "usual_batch": 16, "cpu_batch": 4,
            "why": "2,000 HiFi-GAN steps per minute of audio, from 2,000 to 50,000",
            "warmup_why": "HiFi-GAN fine-tunes start at the base's rate: no warm-up"}
