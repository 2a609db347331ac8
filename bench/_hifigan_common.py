"""Shared helpers of the HiFi-GAN benchmarks: a synthetic dataset, a GPU-utilisation sampler, and a timed
trainer run that tells a full run from one cut short."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from pathlib import Path

import numpy as np


class RunCutShort(RuntimeError):
    """The trainer stopped before its last step (a stop signal, e.g. a time limit's SIGINT): its step
    times describe fewer steps than asked, so no figure is made of them."""


def run_timed(trainer, times: list, total: int) -> None:
    """Run ``trainer`` (whose recipe appends a time per step to ``times``) for ``total`` steps; its
    out-of-memory exit is raised as ``torch.OutOfMemoryError`` (the trainer itself returns an exit code)."""
    import torch

    from modules.trainer.failures import EXIT_OK, EXIT_OOM

    code = trainer.run()
    if code == EXIT_OOM:
        raise torch.OutOfMemoryError("the trainer ran out of memory (its console says where)")
    if code != EXIT_OK or len(times) < total:
        raise RunCutShort(f"the trainer exited with {code} after {len(times)} of {total} steps")


def make_dataset(root: Path, clips: int = 128, seconds: float = 2.0, rate: int = 22050, seed: int = 0) -> Path:
    """``root/training/bench`` with voiced-like synthetic clips (harmonics + noise), train.txt, validation.txt."""
    from modules.audio.io import write_wav

    ds = root / "training" / "bench"
    if (ds / "train.txt").is_file() and len((ds / "train.txt").read_text().splitlines()) == clips:
        return ds
    shutil.rmtree(ds, ignore_errors=True)
    (ds / "audio").mkdir(parents=True)
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    lines = []
    for i in range(clips + 2):
        f0 = rng.uniform(90, 220) * (1 + 0.1 * np.sin(2 * np.pi * rng.uniform(0.5, 3) * t))
        phase = 2 * np.pi * np.cumsum(f0) / rate
        wave = sum(np.sin(k * phase) / k for k in range(1, 12)) * (0.5 + 0.5 * np.sin(2 * np.pi * 2 * t) ** 2)
        wave = 0.3 * wave / np.abs(wave).max() + 0.01 * rng.standard_normal(len(t))
        write_wav(ds / "audio" / f"{i:04d}.wav", wave.astype(np.float32), rate)
        lines.append(f"audio/{i:04d}.wav|synthetic")
    (ds / "train.txt").write_text("\n".join(lines[:clips]) + "\n")
    (ds / "validation.txt").write_text("\n".join(lines[clips:]) + "\n")
    return ds


class GpuSampler:
    """Samples GPU utilisation (percent) in a thread via NVML (torch.cuda.utilization) or nvidia-smi."""

    def __init__(self, interval: float = 0.2, enabled: bool = True):
        self.interval = interval
        self.enabled = enabled
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _read(self) -> float | None:
        try:
            import torch

            return float(torch.cuda.utilization())
        except Exception:
            pass
        try:
            out = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"],
                                 capture_output=True, text=True, timeout=5).stdout.split()
            return float(out[0]) if out else None
        except Exception:
            return None

    def _run(self) -> None:
        while not self._stop.is_set():
            v = self._read()
            if v is not None:
                self.samples.append((time.time(), v))
            self._stop.wait(self.interval)

    def __enter__(self) -> "GpuSampler":
        if self.enabled:
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def mean(self, start: float | None = None, end: float | None = None) -> float | None:
        vals = [v for t, v in self.samples if (start is None or t >= start) and (end is None or t <= end)]
        return float(np.mean(vals)) if vals else None
