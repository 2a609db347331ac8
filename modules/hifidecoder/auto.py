"""The decoder fine-tune's budget for derived settings (``modules.config.auto``)."""

from __future__ import annotations

from typing import Any


def budget(stats: Any) -> dict[str, Any]:
    """Steps by minutes of audio, as for the HiFi-GAN vocoder but half as many: the decoder starts
    from tortoise's, which already renders speech from these latents, and only adapts to a voice."""
    minutes = stats.seconds / 60
    steps = int(min(30_000, max(2_000, round(minutes * 1_000, -2))))
    return {"steps": steps, "usual_batch": 16, "cpu_batch": 2,
            "why": "1,000 decoder steps per minute of audio, from 2,000 to 30,000",
            "warmup_why": "the decoder starts from tortoise's at a fine-tuning rate: no warm-up"}
