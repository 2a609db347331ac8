"""``config check`` / Validate read every line of the dataset lists (what train would trip on)."""

from __future__ import annotations

import numpy as np
import soundfile as sf

from modules.config.plan import validate_config
from modules.config.schema import apply_overrides, default_config


def test_missing_empty_unreadable_and_other_rate_clips_are_reported(workspace):
    ds = workspace / "training" / "demo"
    (ds / "audio").mkdir(parents=True)
    for i in range(6):
        sf.write(ds / "audio" / f"{i}.wav", np.zeros(22050, np.float32) + 0.01, 22050)
    sf.write(ds / "audio" / "low.wav", np.zeros(8000, np.float32) + 0.01, 8000)
    (ds / "audio" / "empty.wav").write_bytes(b"")
    (ds / "audio" / "junk.wav").write_bytes(b"not audio at all")
    lines = [f"audio/{i}.wav|text {i}" for i in range(5)] + ["audio/gone.wav|x", "audio/empty.wav|x",
                                                             "audio/junk.wav|x", "audio/low.wav|x"]
    (ds / "train.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (ds / "validation.txt").write_text("audio/5.wav|v\n", encoding="utf-8")
    cfg = apply_overrides(default_config("hifigan", "training/demo"), ["batch_size=2"])
    found = [w for w in validate_config(cfg, workspace, 0) if w.key == "dataset"]
    text = " | ".join(w.message for w in found)
    assert "1 clip(s) of the lists are missing (first: train.txt: audio/gone.wav)" in text, text
    assert "are empty (first: train.txt: audio/empty.wav)" in text
    assert "unreadable (first: train.txt: audio/junk.wav)" in text
    assert all(w.level == "error" for w in found if "training stops" in w.message)
    note = [w for w in found if "resampled" in w.message]
    assert len(note) == 1 and "audio/low.wav at 8000 Hz" in note[0].message and note[0].level == "warning"
