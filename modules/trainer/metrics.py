"""What a run reports while it trains: metrics.jsonl, status.json, TensorBoard, train.log.

``metrics.jsonl`` holds one JSON object per line: train records
``{"step", "epoch" (fractional epochs done), "time", "elapsed", "lr", "grad_norm"
(or "grad_norm_<optimizer>"), "samples_per_s", <loss>: float}``; validation
records add ``"validation": true`` and prefix metric names with ``val_``. On
resume, records past the resumed step are dropped so a curve never doubles
back. Everything here runs on rank 0 only.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

from modules.fileutil import atomic_write_json, atomic_write_text
from modules.trainer.logs import get_logger


class MetricsLog:
    """Append-only JSON lines, flushed per record so the UI sees them at once."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def truncate_after(self, step: int) -> int:
        """Drop records with ``step`` > ``step`` (after a resume); returns how many were dropped."""
        if not self.path.exists():
            return 0
        kept, dropped = [], 0
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                dropped += 1  # a torn last line from a killed run
                continue
            if int(rec.get("step", 0)) > step:
                dropped += 1
            else:
                kept.append(line)
        if dropped:
            atomic_write_text(self.path, "".join(k + "\n" for k in kept))
        return dropped

    def write(self, record: dict[str, Any]) -> None:
        clean = {k: _jsonable(v) for k, v in record.items()}
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(clean) + "\n")
            fh.flush()


def _jsonable(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)  # JSON has no NaN/inf; keep the line parseable
    return v


def read_metrics(path: str | os.PathLike) -> list[dict[str, Any]]:
    """All parseable records of a metrics.jsonl (a torn last line is skipped)."""
    out = []
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError:
        return out
    for line in text.splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


class StatusFile:
    """``status.json``, rewritten atomically: state, pid, step, epoch, totals, message, times."""

    def __init__(self, path: Path, **fixed: Any):
        self.path = Path(path)
        now = time.time()
        self.data: dict[str, Any] = {"state": "running", "pid": os.getpid(), "step": 0, "epoch": 0,
                                     "total_steps": 0, "steps_per_epoch": 0, "message": "", "started": now,
                                     "updated": now, **fixed}

    def update(self, **values: Any) -> None:
        self.data.update(values)
        self.data["updated"] = time.time()
        atomic_write_json(self.path, self.data)


class TensorBoard:
    """SummaryWriter wrapper that degrades to nothing when tensorboard is missing."""

    def __init__(self, log_dir: Path, purge_step: int | None = None):
        self.writer = None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except Exception as exc:  # noqa: BLE001 - tensorboard is optional at runtime
            get_logger("trainer").warning(f"TensorBoard logging is off ({exc})")
            return
        self.writer = SummaryWriter(log_dir=str(log_dir), purge_step=purge_step)

    def scalars(self, values: dict[str, float], step: int, prefix: str = "") -> None:
        if self.writer is None:
            return
        for k, v in values.items():
            if isinstance(v, (int, float)) and math.isfinite(v):
                self.writer.add_scalar(f"{prefix}{k}", v, step)

    def audio(self, tag: str, wave: Any, step: int, sample_rate: int) -> None:
        if self.writer is not None:
            self.writer.add_audio(tag, wave.reshape(1, -1).clamp(-1, 1), step, sample_rate=sample_rate)

    def mel_image(self, tag: str, mel: Any, step: int) -> None:
        """``[mels, frames]`` as a grey image, low frequencies at the bottom."""
        if self.writer is None:
            return
        m = mel.detach().float().cpu()
        m = (m - m.min()) / (m.max() - m.min()).clamp_min(1e-8)
        self.writer.add_image(tag, m.flip(0).unsqueeze(0), step)

    def flush(self) -> None:
        if self.writer is not None:
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
