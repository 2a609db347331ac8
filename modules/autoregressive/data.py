"""Training data for UnifiedVoice: text ids, cached DVAE mel codes, conditioning clips.

Each clip's mel codes are computed once (tortoise mel -> frozen DVAE) and cached per
dataset and DVAE under ``training/NAME/cache/``; audio is decoded once at 22,050 Hz into
the shared int16 cache. An item also carries ``conditioning_clips`` random crops of
*other* clips of the voice; every random choice depends only on (seed, epoch, index).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from modules.audio.tortoise_mel import SAMPLE_RATE, crop_or_pad
from modules.errors import UserError
from modules.fileutil import atomic_torch_save, file_digest
from modules.trainer.logs import get_logger

if TYPE_CHECKING:
    from modules.hifigan.data import AudioCache

log = get_logger("autoregressive")
CODES_VERSION = 1


def voice_rows(count: int, clips: int, seed: int) -> list[int]:
    """Which of ``count`` training clips make the voice validation samples speak in: a seeded pick of
    ``clips`` (at least one), in row order."""
    rows = list(range(count))
    random.Random(seed).shuffle(rows)
    return sorted(rows[: max(1, clips)])


def warn(message: str) -> None:
    """A user-visible warning on the console and in train.log (rank 0 only: said once per run)."""
    if os.environ.get("RANK", "0") == "0":
        log.warning(message)


@dataclass
class Line:
    """One ``audio/FILE.wav|text`` line of train.txt / validation.txt."""

    audio: Path
    text: str
    number: int


def read_lines(dataset_dir: Path, list_name: str) -> list[Line]:
    lst = Path(dataset_dir) / list_name
    if not lst.is_file():
        raise UserError(f"{lst}: missing; prepare the dataset first (python -m modules prepare VOICE)")
    out = []
    for n, raw in enumerate(lst.read_text(encoding="utf-8").splitlines(), 1):
        if not raw.strip():
            continue
        if "|" not in raw:
            raise UserError(f"{lst}:{n}: expected 'audio/FILE.wav|text', got {raw[:60]!r}")
        rel, text = raw.split("|", 1)
        path = (Path(dataset_dir) / rel.strip()).resolve()
        if not path.is_file():
            raise UserError(f"{lst}:{n}: audio file {rel.strip()} does not exist; re-run prepare or fix the line")
        out.append(Line(path, text.strip(), n))
    return out


def codes_key(cache: AudioCache, mel: torch.nn.Module, dvae_path: Path) -> str:
    """Cache key of the DVAE codes: the DVAE file's bytes, the mel norms, and each clip's name,
    length and decoded samples.

    Contents are hashed rather than names, sizes or mtimes, so a clip re-prepared under the
    same name and length, or a dvae.pth replaced in place, never reuses stale codes. Hashing
    costs about 0.1 s per hour of audio (and per 200 MB of DVAE), far less than one DVAE pass.
    """
    h = hashlib.sha1(f"v{CODES_VERSION}|{file_digest(dvae_path)}".encode())
    h.update(mel.mel_norms.cpu().numpy().tobytes() if mel.mel_norms is not None else b"none")
    for i, name in enumerate(cache.names):
        h.update(f"|{name}|{cache.length(i)}".encode())
    data = cache.data
    step = 1 << 24  # samples per update: bounded memory views of the memmap
    for start in range(0, len(data), step):
        h.update(memoryview(np.ascontiguousarray(data[start:start + step])))
    return h.hexdigest()[:16]


def compute_codes(cache, dvae: torch.nn.Module, mel: torch.nn.Module, cache_dir: Path, dvae_path: Path,
                  device: torch.device) -> list[torch.Tensor]:
    """Mel codes of every clip of ``cache`` (an AudioCache at 22,050 Hz), cached on disk.

    Each clip is zero-padded by one code's worth of samples (as in a padded batch), so it
    yields ``wav_len // 1024 + 1`` codes, the number tortoise's training forward reads.
    """
    path = Path(cache_dir) / f"ar-codes-{codes_key(cache, mel, dvae_path)}.pt"
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    with open(Path(cache_dir) / ".ar-codes.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if path.is_file():
                data = torch.load(path, weights_only=True)
                return [c.long() for c in data["codes"]]
            dvae = dvae.to(device).eval()
            mel = mel.to(device)
            codes = []
            with torch.no_grad():
                for i in range(len(cache)):
                    wave = torch.from_numpy(cache.clip(i)).to(device)
                    step = 1024
                    padded = F.pad(wave, (0, (-len(wave)) % step + step))
                    c = dvae.get_codebook_indices(mel(padded.unsqueeze(0)))[0]
                    codes.append(c[: len(wave) // step + 1].to(torch.int16).cpu())
            atomic_torch_save({"version": CODES_VERSION, "names": list(cache.names), "codes": codes}, path)
            log.info("cached DVAE codes of %d clips in %s", len(codes), path)
            return [c.long() for c in codes]
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@dataclass
class Entry:
    index: int  # row in the audio cache
    text_ids: list[int]
    wav_length: int


def select_entries(lines: Sequence[Line], tokenizer, lengths: Sequence[int], max_text_tokens: int,
                   max_mel_tokens: int, list_name: str) -> tuple[list[Entry], list[str]]:
    """Tokenise and filter: [UNK] lines and over-long clips are skipped and reported."""
    entries, skipped = [], []
    for i, line in enumerate(lines):
        ids = tokenizer.encode(line.text)
        if not ids:
            skipped.append(f"{list_name}:{line.number}: empty text")
        elif tokenizer.has_unknown(ids):
            skipped.append(f"{list_name}:{line.number}: characters the tokenizer does not know "
                           f"({line.text[:50]!r} cleans to {tokenizer.clean(line.text)[:50]!r})")
        elif len(ids) > max_text_tokens:
            skipped.append(f"{list_name}:{line.number}: {len(ids)} text tokens > max_text_tokens {max_text_tokens}")
        elif lengths[i] // 1024 + 1 > max_mel_tokens:
            skipped.append(f"{list_name}:{line.number}: {lengths[i] / SAMPLE_RATE:.1f} s is longer than "
                           f"max_mel_tokens allows ({max_mel_tokens * 1024 / SAMPLE_RATE:.1f} s)")
        else:
            entries.append(Entry(i, ids, int(lengths[i])))
    for msg in skipped:
        warn(f"skipped {msg}")
    return entries, skipped


class ARDataset(Dataset):
    """Items: ``text`` ids, ``codes``, ``wav_length`` and ``cond`` (clips, samples) waveforms."""

    def __init__(self, entries: Sequence[Entry], codes: Sequence[torch.Tensor], audio_cache, cond_pool: Sequence[int],
                 cond_audio_cache, conditioning_clips: int, conditioning_samples: int, seed: int):
        self.entries = list(entries)
        self.codes = codes
        self.audio = audio_cache
        self.cond_pool = list(cond_pool)  # rows of cond_audio_cache to draw conditioning clips from
        self.cond_audio = cond_audio_cache
        self.clips = int(conditioning_clips)
        self.samples = int(conditioning_samples)
        self.seed = int(seed)
        self.epoch = 0
        self.same_cache = audio_cache is cond_audio_cache

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.entries)

    def _rng(self, index: int) -> random.Random:
        return random.Random(f"{self.seed}|{self.epoch}|{index}")

    def __getitem__(self, index: int) -> dict[str, Any]:
        e = self.entries[index]
        rng = self._rng(index)
        others = [r for r in self.cond_pool if not (self.same_cache and r == e.index)] or list(self.cond_pool)
        picks = [rng.choice(others) for _ in range(self.clips)] if len(others) < self.clips \
            else rng.sample(others, self.clips)
        cond = torch.stack([crop_or_pad(torch.from_numpy(self.cond_audio.clip(r)), self.samples, rng)
                            for r in picks])
        return {"index": index, "text": torch.tensor(e.text_ids, dtype=torch.long),
                "codes": self.codes[e.index], "wav_length": e.wav_length, "cond": cond}


def collate(items: list[dict[str, Any]], stop_mel_token: int = 8193) -> dict[str, torch.Tensor]:
    """Pad text with 0 ([STOP]) and codes with the stop code; the model clips and stop-fills."""
    b = len(items)
    text_lengths = torch.tensor([len(it["text"]) for it in items], dtype=torch.long)
    code_lengths = [len(it["codes"]) for it in items]
    text = torch.zeros(b, int(text_lengths.max()), dtype=torch.long)
    codes = torch.full((b, max(code_lengths)), stop_mel_token, dtype=torch.long)
    for i, it in enumerate(items):
        text[i, : len(it["text"])] = it["text"]
        codes[i, : code_lengths[i]] = it["codes"]
    return {"index": torch.tensor([it["index"] for it in items], dtype=torch.long), "text": text,
            "text_lengths": text_lengths, "codes": codes,
            "wav_lengths": torch.tensor([it["wav_length"] for it in items], dtype=torch.long),
            "cond": torch.stack([it["cond"] for it in items])}
