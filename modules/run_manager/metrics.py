"""``metrics.jsonl`` into pandas for live plots: incremental reads, smoothing, downsampling.

The file only grows while a run trains, so each reader remembers its byte
offset and parses only new complete lines; a replaced or truncated file
(a fresh start of the same run) is read again from the beginning.
Plots get long-format frames (x, value, series) with at most ``max_points``
points per series, so 100k logged steps still draw quickly.
"""

from __future__ import annotations

import json
import math
import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

NON_METRIC = {"step", "epoch", "time", "elapsed", "validation", "samples_per_s"}
# scores, not losses: accuracies live in 0..1 and PESQ in 1..4.5, and both go up as the model improves,
# so sharing an axis with cross-entropies would flatten one group or the other
QUALITY_MARKERS = ("accuracy", "pesq")
# the scorer's word error rate, speaker likeness and combined score (modules.evaluation): 0..1 scales too
QUALITY_NAMES = {"val_wer", "val_speaker_sim", "val_score"}
GROUPS = ("loss", "quality", "lr", "grad_norm")
_READERS: "OrderedDict[str, MetricsReader]" = OrderedDict()  # most recently used last
_READERS_LOCK = threading.Lock()
MAX_READERS = 16  # runs whose metrics stay in memory (a 100k-step run holds a few MB)


class MetricsReader:
    """Incremental reader of one ``metrics.jsonl``; thread-safe (Gradio calls handlers in threads)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._lock = threading.Lock()
        self.version = 0  # bumps whenever the frames change
        self._reset()

    def _reset(self) -> None:
        self._offset = 0
        self._ino: int | None = None
        self._partial = b""
        self._chunks: dict[bool, list[pd.DataFrame]] = {False: [], True: []}
        self._frames: dict[bool, pd.DataFrame] = {False: pd.DataFrame(), True: pd.DataFrame()}

    def update(self) -> bool:
        """Read lines appended since the last call. Returns True when new records arrived."""
        with self._lock:
            try:
                st = self.path.stat()
            except FileNotFoundError:
                if self._offset:
                    self._reset()
                    self.version += 1
                    return True
                return False
            if self._ino is not None and (st.st_ino != self._ino or st.st_size < self._offset):
                self._reset()
                self.version += 1
            self._ino = st.st_ino
            if st.st_size == self._offset:
                return False
            with open(self.path, "rb") as fh:
                fh.seek(self._offset)
                data = fh.read()
            self._offset += len(data)
            data = self._partial + data
            lines = data.split(b"\n")
            self._partial = lines.pop()  # an incomplete last line waits for the next read
            rows: dict[bool, list[dict[str, Any]]] = {False: [], True: []}
            for line in lines:
                line = line.strip()
                if not line:
                    continue
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue  # a torn or foreign line must not break the plots
                if isinstance(rec, dict) and "step" in rec:
                    rows[bool(rec.get("validation"))].append(rec)
            changed = False
            for is_val, recs in rows.items():
                if recs:
                    chunk = pd.DataFrame.from_records(recs)
                    if "validation" in chunk.columns:
                        chunk = chunk.drop(columns=["validation"])
                    self._chunks[is_val].append(chunk)
                    changed = True
            if changed:
                for is_val in (False, True):
                    if len(self._chunks[is_val]) > 1:
                        self._chunks[is_val] = [pd.concat(self._chunks[is_val], ignore_index=True)]
                    self._frames[is_val] = self._chunks[is_val][0] if self._chunks[is_val] else pd.DataFrame()
                self.version += 1
            return changed

    @property
    def train(self) -> pd.DataFrame:
        return self._frames[False]

    @property
    def validation(self) -> pd.DataFrame:
        return self._frames[True]


def read_metrics(path: str | os.PathLike) -> MetricsReader:
    """The shared, updated reader for ``path`` (one per file for all browser tabs)."""
    key = str(Path(path).resolve())
    with _READERS_LOCK:
        reader = _READERS.get(key)
        if reader is None:
            reader = _READERS[key] = MetricsReader(key)
        _READERS.move_to_end(key)
        while len(_READERS) > MAX_READERS:
            _READERS.popitem(last=False)
    reader.update()
    return reader


def last_records(path: str | os.PathLike) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The last train record and the last validation step (its trainer and scorer records merged);
    None when absent."""
    reader = read_metrics(path)
    out = []
    for df in (reader.train, reader.validation):
        if not df.empty and df is reader.validation:
            last = df[df["step"] == df["step"].max()]
            row = last.ffill().iloc[-1]
        else:
            row = None if df.empty else df.iloc[-1]
        out.append(None if row is None else {k: v for k, v in row.items() if not _isnan(v)})
    return out[0], out[1]


def _isnan(v: Any) -> bool:
    return isinstance(v, float) and math.isnan(v)


def metric_group(col: str) -> str:
    """The plot a metric column belongs on: ``lr``, ``grad_norm``, ``quality`` (accuracies, PESQ:
    higher is better, their own scale) or ``loss`` (everything else)."""
    if col == "lr" or col.startswith("lr_"):
        return "lr"
    if col.startswith("grad_norm"):
        return "grad_norm"
    if col in QUALITY_NAMES or any(m in col.lower() for m in QUALITY_MARKERS):
        return "quality"
    return "loss"


def metric_columns(df: pd.DataFrame) -> dict[str, list[str]]:
    """Split a frame's numeric columns into losses, quality scores, learning rates and gradient norms."""
    groups: dict[str, list[str]] = {g: [] for g in GROUPS}
    for col in df.columns:
        if col in NON_METRIC or not pd.api.types.is_numeric_dtype(df[col]):
            continue
        groups[metric_group(col)].append(col)
    return groups


def smooth(values: np.ndarray, weight: float) -> np.ndarray:
    """TensorBoard-style debiased exponential moving average; ``weight`` in [0, 1)."""
    if weight <= 0 or len(values) < 2:
        return values
    weight = min(float(weight), 0.999)
    return pd.Series(values).ewm(alpha=1.0 - weight, adjust=True, ignore_na=True).mean().to_numpy()


def downsample(x: np.ndarray, y: np.ndarray, max_points: int) -> tuple[np.ndarray, np.ndarray]:
    """Average consecutive points into at most ``max_points`` buckets (the last point is kept exact)."""
    n = len(x)
    if n <= max_points or max_points < 2:
        return x, y
    k = math.ceil((n - 1) / (max_points - 1))
    m = ((n - 1) // k) * k
    xb = x[:m].reshape(-1, k).mean(axis=1)
    yb = np.nanmean(y[:m].reshape(-1, k), axis=1) if np.isnan(y[:m]).any() else y[:m].reshape(-1, k).mean(axis=1)
    tail_x, tail_y = x[m:], y[m:]
    if len(tail_x) > 1:
        tail_x = np.array([tail_x[:-1].mean(), tail_x[-1]])
        tail_y = np.array([np.nanmean(tail_y[:-1]), tail_y[-1]])
    return np.concatenate([xb, tail_x]), np.concatenate([yb, tail_y])


def _x_values(df: pd.DataFrame, x: str, steps_per_epoch: int | None) -> np.ndarray:
    steps = df["step"].to_numpy(dtype=float)
    if x == "epoch":
        if steps_per_epoch:
            return steps / float(steps_per_epoch)
        if "epoch" in df.columns:
            return df["epoch"].to_numpy(dtype=float)
    return steps


def long_frame(df: pd.DataFrame, columns: list[str], *, x: str = "step", steps_per_epoch: int | None = None,
               smoothing: float = 0.0, max_points: int = 2000, label: str = "{}") -> pd.DataFrame:
    """Long format ``[x, value, series]`` for ``gr.LinePlot`` (one colour per series)."""
    parts = []
    if df.empty:
        return pd.DataFrame({x: pd.Series(dtype=float), "value": pd.Series(dtype=float),
                             "series": pd.Series(dtype=str)})
    xs_all = _x_values(df, x, steps_per_epoch)
    for col in columns:
        y = df[col].to_numpy(dtype=float)
        mask = np.isfinite(y)
        if not mask.any():
            continue
        xs, ys = xs_all[mask], y[mask]
        ys = smooth(ys, smoothing)
        xs, ys = downsample(xs, ys, max_points)
        parts.append(pd.DataFrame({x: xs, "value": ys, "series": label.format(col)}))
    if not parts:
        return long_frame(pd.DataFrame(), [], x=x)
    return pd.concat(parts, ignore_index=True)


def metric_frames(reader: MetricsReader, *, x: str = "step", smoothing: float = 0.0, max_points: int = 2000,
                  steps_per_epoch: int | None = None) -> dict[str, pd.DataFrame]:
    """Frames for the loss, quality, learning-rate and gradient-norm plots.

    Validation metrics (``val_*``) are their own labelled series, drawn unsmoothed so a
    handful of validation points never bleeds into the training curve."""
    train, val = reader.train, reader.validation
    empty: dict[str, list[str]] = {g: [] for g in GROUPS}
    tcols = metric_columns(train) if not train.empty else empty
    vgroups = metric_columns(val) if not val.empty else empty
    kw = dict(x=x, steps_per_epoch=steps_per_epoch, max_points=max_points)

    def with_validation(group: str) -> pd.DataFrame:
        vcols = [c for c in vgroups[group] if c.startswith("val_")]
        return pd.concat([
            long_frame(train, tcols[group], smoothing=smoothing, **kw),
            long_frame(val, vcols, smoothing=0.0, label="{} (validation)", **kw),
        ], ignore_index=True)

    return {
        "loss": with_validation("loss"),
        "quality": with_validation("quality"),
        "lr": long_frame(train, tcols["lr"], **kw),
        "grad_norm": long_frame(train, tcols["grad_norm"], smoothing=smoothing, **kw),
    }


def best_marker(frame: pd.DataFrame, step: int, *, x: str = "step", steps_per_epoch: int | None = None,
                label: str = "best") -> pd.DataFrame:
    """``frame`` plus a vertical line at ``step`` (two points spanning the plotted values), the best
    checkpoint's marker on the quality plot."""
    if frame is None or frame.empty:
        return frame
    at = float(step) / steps_per_epoch if x == "epoch" and steps_per_epoch else float(step)
    lo, hi = float(frame["value"].min()), float(frame["value"].max())
    mark = pd.DataFrame({x: [at, at], "value": [lo, hi], "series": [label, label]})
    return pd.concat([frame, mark], ignore_index=True)


def progress(reader: MetricsReader, step: int | None, total_steps: int | None, window: int = 20) -> dict[str, Any]:
    """Speed and ETA from the last logged train records: ``{"its", "eta_s", "fraction"}``."""
    train = reader.train
    its = None
    if not train.empty and "time" in train.columns and len(train) >= 2:
        tail = train.iloc[-window:]
        dt = float(tail["time"].iloc[-1] - tail["time"].iloc[0])
        ds = float(tail["step"].iloc[-1] - tail["step"].iloc[0])
        if dt > 0 and ds > 0:
            its = ds / dt
    if step is None and not train.empty:
        step = int(train["step"].iloc[-1])
    eta = None
    if its and total_steps and step is not None:
        eta = max(0.0, (total_steps - step) / its)
    frac = min(1.0, step / total_steps) if step is not None and total_steps else None
    return {"its": its, "eta_s": eta, "fraction": frac, "step": step}


def format_duration(seconds: float | None) -> str:
    """``1h 02m``, ``3m 05s`` or ``12s`` for ETAs."""
    if seconds is None or not math.isfinite(seconds):
        return "?"
    s = int(round(seconds))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    if h:
        return f"{h}h {m:02d}m"
    if m:
        return f"{m}m {s:02d}s"
    return f"{s}s"
