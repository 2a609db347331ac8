"""HiFi-GAN training data: a compact decoded-audio cache and deterministic crops.

Loader workers only slice int16 arrays (and, for precomputed features, a
memory-mapped ``.npy``): every mel is computed later, in batches, on the
training device. The whole dataset is decoded once into one int16 memmap plus
a JSON index under ``training/NAME/cache/`` so two workers keep a GPU busy.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from modules.errors import UserError
from modules.fileutil import atomic_replace, atomic_write_json

MAX_WAV_VALUE = 32768.0
CACHE_VERSION = 1
FEATURE_EXTENSIONS = (".npy", ".pt")


def read_list(dataset_dir: Path, list_name: str) -> list[Path]:
    """Audio paths of ``train.txt`` / ``validation.txt`` (``audio/FILE.wav|text`` lines)."""
    lst = dataset_dir / list_name
    if not lst.is_file():
        raise UserError(f"{lst}: missing; prepare the dataset first (python -m modules prepare VOICE)")
    paths = []
    for n, line in enumerate(lst.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        rel = line.split("|", 1)[0].strip()
        path = (dataset_dir / rel).resolve()
        if not path.is_file():
            raise UserError(f"{lst}:{n}: audio file {rel} does not exist; re-run prepare or fix the line")
        paths.append(path)
    return paths


@dataclass
class AudioCache:
    """All clips of a list as one int16 array; ``clip(i)`` returns a float32 view-copy."""

    data: np.ndarray  # int16 [total_samples] (memmap)
    offsets: np.ndarray  # int64 [n + 1]
    names: list[str]
    sample_rate: int

    def __len__(self) -> int:
        return len(self.names)

    def length(self, i: int) -> int:
        return int(self.offsets[i + 1] - self.offsets[i])

    def clip(self, i: int, start: int = 0, stop: int | None = None) -> np.ndarray:
        a, b = int(self.offsets[i]), int(self.offsets[i + 1])
        stop = b - a if stop is None else min(stop, b - a)
        return np.asarray(self.data[a + start:a + stop], dtype=np.float32) / MAX_WAV_VALUE


def _fingerprint(paths: Sequence[Path], sample_rate: int) -> str:
    h = hashlib.sha1(f"v{CACHE_VERSION}|{sample_rate}".encode())
    for p in paths:
        st = p.stat()
        h.update(f"|{p}|{st.st_size}|{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def build_cache(paths: Sequence[Path], sample_rate: int, cache_dir: Path, tag: str) -> AudioCache:
    """Decode ``paths`` once into ``cache_dir/<tag>-<hash>.int16`` + ``.json``; reuse when unchanged.

    Safe when several ranks call it at once (a file lock; the first builds, the others read).
    """
    from modules.audio.io import AudioReadError, read_audio

    cache_dir.mkdir(parents=True, exist_ok=True)
    key = _fingerprint(paths, sample_rate)
    base = cache_dir / f"{tag}-{sample_rate}-{key}"
    index_path, data_path = base.with_suffix(".json"), base.with_suffix(".int16")
    with open(cache_dir / ".lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not index_path.is_file():
            for old in cache_dir.glob(f"{tag}-*"):
                old.unlink(missing_ok=True)  # a stale cache of an earlier dataset version
            lengths, names = [], []
            with atomic_replace(data_path, "wb") as fh:
                for p in paths:
                    try:
                        wave, _ = read_audio(p, sample_rate=sample_rate)
                    except AudioReadError as exc:
                        raise UserError(f"{p}: {exc}; remove it from the list or re-run prepare") from exc
                    pcm = np.clip(np.round(wave * MAX_WAV_VALUE), -32768, 32767).astype(np.int16)
                    fh.write(pcm.tobytes())
                    lengths.append(len(pcm))
                    names.append(str(p))
            atomic_write_json(index_path, {"version": CACHE_VERSION, "sample_rate": sample_rate,
                                           "names": names, "lengths": lengths})
        fcntl.flock(lock, fcntl.LOCK_UN)
    index = json.loads(index_path.read_text(encoding="utf-8"))
    offsets = np.concatenate([[0], np.cumsum(np.asarray(index["lengths"], dtype=np.int64))]).astype(np.int64)
    data = (np.memmap(data_path, dtype=np.int16, mode="r") if offsets[-1] > 0
            else np.zeros(0, dtype=np.int16))
    return AudioCache(data=data, offsets=offsets, names=index["names"], sample_rate=int(index["sample_rate"]))


def feature_path(audio_path: Path, suffix: str | None) -> Path:
    """The precomputed feature file beside ``audio/FILE.wav``: ``FILE<suffix>`` (default ``.npy`` then ``.pt``)."""
    stem = audio_path.with_suffix("")
    if suffix:
        return Path(str(stem) + suffix)
    for ext in FEATURE_EXTENSIONS:
        cand = Path(str(stem) + ext)
        if cand.is_file():
            return cand
    return Path(str(stem) + ".npy")


def load_features(path: Path) -> np.ndarray:
    """A ``[C, T]`` feature array from ``.npy`` (memory-mapped) or ``.pt``."""
    if not path.is_file():
        raise UserError(f"{path}: precomputed feature file missing (features: files expects one [C, T] "
                        "array beside each clip); create it or use hifigan.features: mel")
    try:
        if path.suffix == ".pt":
            arr = torch.load(path, map_location="cpu", weights_only=True)
            arr = arr.float().numpy() if isinstance(arr, torch.Tensor) else np.asarray(arr, dtype=np.float32)
        else:
            arr = np.load(path, mmap_mode="r")
    except Exception as exc:
        raise UserError(f"{path}: unreadable feature file ({exc})") from exc
    if arr.ndim == 3 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 2:
        raise UserError(f"{path}: features must be [C, T], got shape {tuple(arr.shape)}")
    return arr


def check_features(paths: Sequence[Path], cache: AudioCache, suffix: str | None, hop: int) -> tuple[list[Path], int]:
    """Find each clip's feature file, check one channel count and frame counts within 2 of ``samples // hop``."""
    files, channels = [], None
    for i, p in enumerate(paths):
        fp = feature_path(p, suffix)
        arr = load_features(fp)
        c, t = arr.shape
        if channels is None:
            channels = c
        elif c != channels:
            raise UserError(f"{fp}: has {c} channels but {feature_path(paths[0], suffix).name} has {channels}; "
                            "all feature files must have the same C")
        expected = cache.length(i) // hop
        if abs(t - expected) > 2:
            raise UserError(f"{fp}: {t} frames but the audio {p.name} has {cache.length(i)} samples = {expected} "
                            f"frames at hop {hop} (the generator's upsampling product); the features do not match "
                            "this audio or this hop")
        files.append(fp)
    return files, int(channels or 0)


class HifiganDataset(Dataset):
    """Audio crops (``segment_size`` samples) or, with ``segment_size=None``, whole clips.

    Items are ``{"audio": [S]}`` plus ``"features": [C, S // hop]`` when precomputed
    features are used. Crops depend only on (seed, epoch, index).
    """

    def __init__(self, cache: AudioCache, segment_size: int | None, seed: int, hop: int,
                 feature_files: Sequence[Path] | None = None):
        self.cache = cache
        self.segment_size = segment_size
        self.seed = int(seed)
        self.hop = int(hop)
        self.feature_files = list(feature_files) if feature_files else None
        # in shared memory so persistent loader workers see the epoch the main process sets
        self._epoch = torch.zeros(1, dtype=torch.int64).share_memory_()

    @property
    def epoch(self) -> int:
        return int(self._epoch[0])

    def set_epoch(self, epoch: int) -> None:
        self._epoch[0] = int(epoch)

    def __len__(self) -> int:
        return len(self.cache)

    def _rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.epoch, index])

    def __getitem__(self, index: int) -> dict[str, Any]:
        n = self.cache.length(index)
        if self.feature_files is None:
            if self.segment_size is None:
                return {"audio": torch.from_numpy(self.cache.clip(index))}
            seg = self.segment_size
            start = int(self._rng(index).integers(0, n - seg + 1)) if n > seg else 0
            audio = self.cache.clip(index, start, start + seg)
            if len(audio) < seg:
                audio = np.pad(audio, (0, seg - len(audio)))
            return {"audio": torch.from_numpy(audio)}
        feats = load_features(self.feature_files[index])
        frames = min(feats.shape[1], n // self.hop)
        if self.segment_size is None:
            f = np.array(feats[:, :frames], dtype=np.float32)
            audio = self.cache.clip(index, 0, frames * self.hop)
            return {"audio": torch.from_numpy(audio), "features": torch.from_numpy(f)}
        seg_frames = self.segment_size // self.hop
        start = int(self._rng(index).integers(0, frames - seg_frames + 1)) if frames > seg_frames else 0
        f = np.array(feats[:, start:start + seg_frames], dtype=np.float32)
        audio = self.cache.clip(index, start * self.hop, (start + f.shape[1]) * self.hop)
        if f.shape[1] < seg_frames:
            f = np.pad(f, ((0, 0), (0, seg_frames - f.shape[1])))
        if len(audio) < seg_frames * self.hop:
            audio = np.pad(audio, (0, seg_frames * self.hop - len(audio)))
        return {"audio": torch.from_numpy(audio), "features": torch.from_numpy(f)}


def collate(items: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Stack items, right-padding variable-length (validation) clips; ``lengths`` keeps the true sizes."""
    lengths = torch.tensor([len(it["audio"]) for it in items], dtype=torch.long)
    longest = int(lengths.max())
    audio = torch.zeros(len(items), longest)
    for i, it in enumerate(items):
        audio[i, :len(it["audio"])] = it["audio"]
    out = {"audio": audio, "lengths": lengths}
    if "features" in items[0]:
        frames = max(it["features"].shape[1] for it in items)
        feats = torch.zeros(len(items), items[0]["features"].shape[0], frames)
        for i, it in enumerate(items):
            feats[i, :, :it["features"].shape[1]] = it["features"]
        out["features"] = feats
    return out
