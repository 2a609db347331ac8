"""Cost of the Run tab's live plots: reading ``metrics.jsonl`` and building the plot frames.

A synthetic autoregressive-style run log (100k train records with loss/text_ce/mel_ce/lr/
grad_norm, plus 1k validation records) is read from scratch with ``MetricsReader.update``,
turned into the loss / lr / grad-norm frames with ``metric_frames`` (as the UI does, at its
1,000 points per series), then 100 more records are appended and read incrementally.
Prints seconds and the point count of every series; asserts nothing.

    python bench/plots.py
    python bench/plots.py --train 100000 --validation 1000 --append 100 --max-points 1000
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path

from modules.run_manager.metrics import MetricsReader, metric_frames

STEPS_PER_EPOCH = 250


def train_record(step: int, t0: float) -> dict:
    """A train record shaped like the autoregressive recipe's (losses fall, with some noise)."""
    noise = math.sin(step * 12.9898) * 0.05
    return {"step": step, "epoch": step // STEPS_PER_EPOCH, "time": t0 + step * 0.5, "elapsed": step * 0.5,
            "lr": 1e-5 * (0.5 ** (step // 20000)), "grad_norm": 1.0 + abs(noise) * 10, "samples_per_s": 16.0,
            "loss": 0.01 * (3.0 + noise) + 4.0 / (1 + step / 5000) + noise, "text_ce": 3.0 + noise,
            "mel_ce": 4.0 / (1 + step / 5000) + noise}


def validation_record(step: int, t0: float) -> dict:
    return {"step": step, "epoch": step // STEPS_PER_EPOCH, "time": t0 + step * 0.5, "elapsed": step * 0.5,
            "validation": True, "val_loss": 4.0 / (1 + step / 5000), "val_text_ce": 3.1,
            "val_mel_ce": 4.0 / (1 + step / 5000), "val_mel_accuracy": min(1.0, step / 200000)}


def write_records(path: Path, first: int, count: int, n_val: int, total_train: int, t0: float) -> None:
    """Append train steps ``first..first+count-1``; a validation record every ``total_train // n_val`` steps."""
    every = max(1, total_train // n_val) if n_val else 0
    with open(path, "a", encoding="utf-8") as fh:
        for step in range(first, first + count):
            fh.write(json.dumps(train_record(step, t0)) + "\n")
            if every and step % every == 0:
                fh.write(json.dumps(validation_record(step, t0)) + "\n")


def timed(fn, repeats: int = 1):
    best, result = float("inf"), None
    for _ in range(repeats):
        t = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t)
    return best, result


def counts(frames: dict) -> str:
    parts = []
    for plot, df in frames.items():
        per = df.groupby("series", sort=False).size() if not df.empty else {}
        parts.append(f"{plot}: " + ", ".join(f"{name}={n}" for name, n in dict(per).items()))
    return "\n    ".join(parts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", type=int, default=100_000, help="train records in the initial file")
    ap.add_argument("--validation", type=int, default=1_000, help="validation records in the initial file")
    ap.add_argument("--append", type=int, default=100, help="train records appended for the incremental read")
    ap.add_argument("--max-points", type=int, default=1000, help="points per series (the Run tab uses 1000)")
    ap.add_argument("--repeats", type=int, default=3, help="best-of repeats for each timing")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "metrics.jsonl"
        t0 = time.time()
        write_records(path, 1, args.train, args.validation, args.train, t0)
        size_mb = path.stat().st_size / 1e6

        def cold_read() -> MetricsReader:
            r = MetricsReader(path)
            r.update()
            return r

        t_read, reader = timed(cold_read, args.repeats)
        print(f"file: {args.train} train + {len(reader.validation)} validation records, {size_mb:.1f} MB")
        print(f"initial read (MetricsReader.update):          {t_read:.3f} s  "
              f"({len(reader.train)} train rows, {len(reader.validation)} validation rows)")

        for x, smoothing in (("step", 0.0), ("step", 0.6), ("epoch", 0.6)):
            t_fr, frames = timed(lambda x=x, smoothing=smoothing: metric_frames(
                reader, x=x, smoothing=smoothing, max_points=args.max_points, steps_per_epoch=STEPS_PER_EPOCH),
                args.repeats)
            print(f"metric_frames x={x:<5} smoothing={smoothing}:      {t_fr:.3f} s")
        print(f"  points per series (max_points {args.max_points}):\n    {counts(frames)}")

        t_idle, changed = timed(reader.update, args.repeats)
        print(f"update with nothing new:                      {t_idle * 1e3:.3f} ms (changed={changed})")

        def append_and_read() -> bool:
            first = int(reader.train["step"].iloc[-1]) + 1
            write_records(path, first, args.append, args.validation, args.train, t0)
            return reader.update()

        t_inc, changed = timed(append_and_read, args.repeats)
        print(f"incremental read of {args.append} appended records:       {t_inc:.3f} s (best of {args.repeats} "
              f"appends; changed={changed}, now {len(reader.train)} train + {len(reader.validation)} "
              "validation rows)")
        t_fr, frames = timed(lambda: metric_frames(reader, x="step", smoothing=0.6, max_points=args.max_points,
                                                   steps_per_epoch=STEPS_PER_EPOCH), args.repeats)
        print(f"metric_frames after the append:               {t_fr:.3f} s")
        print(f"  points per series:\n    {counts(frames)}")
        print(f"one UI refresh after new records (read + frames): {t_inc + t_fr:.3f} s")


if __name__ == "__main__":
    main()
