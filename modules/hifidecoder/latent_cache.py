"""Every clip's GPT latents, teacher-forced on its text and DVAE codes, cached per dataset and GPT.

A clip's latents are what tortoise's fast API hands its decoder for that clip: the latent pass
(``modules.autoregressive.latents.gpt_latents``, the function validation and Try it use) over the
clip's text and its codes followed by the stop token, conditioned on the voice's latent. Latent j
sits where code j is predicted, so it covers the clip's samples ``[1024 j, 1024 (j + 1))`` at
22,050 Hz; the stop token's latent covers the silence after the clip.

The cache (``training/NAME/cache/hifidecoder-latents-LIST-KEY.pt``) is keyed by the GPT file's
bytes, the tokenizer's, the DVAE codes' key (audio, DVAE, mel norms) and the texts, so a
different checkpoint or an edited transcript recomputes it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from modules.fileutil import atomic_torch_save, file_digest
from modules.trainer.logs import get_logger

log = get_logger("hifidecoder")
LATENTS_VERSION = 1
KEEP_CACHES = 3  # latents of this many (GPT, dataset) versions per list stay on disk (newest first)


@contextlib.contextmanager
def full_fp32():
    """Matmuls and convolutions in true fp32, as tortoise computes its latents (the trainer turns on
    TF32 on Ampere and newer GPUs, which would make the training latents differ from Try it's)."""
    old = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


@dataclass
class LatentSet:
    """The usable clips of one list: their rows in the list's audio caches, texts and latents."""

    rows: list[int]  # row of each clip in the list's audio caches
    texts: list[str]
    text_ids: list[list[int]]
    latents: list[torch.Tensor]  # [codes + 1, width] float32 per clip
    conditioning: torch.Tensor  # [width]: the voice's conditioning latent
    key: str


@torch.inference_mode()
@full_fp32()
def teacher_forced_latents(gpt: torch.nn.Module, conditioning: torch.Tensor, items: Sequence[tuple[Any, Any]],
                           batch_size: int = 8) -> list[torch.Tensor]:
    """``[(text ids, codes)]`` -> each clip's latents ``[len(codes) + 1, width]`` on the CPU.

    Clips whose texts have the same token count go through ``gpt_latents`` together (codes
    right-padded with the stop token, which the causal GPT never lets reach an earlier latent)."""
    from modules.autoregressive.latents import gpt_latents

    stop = int(gpt.stop_mel_token)
    groups: dict[int, list[int]] = {}
    for i, (ids, _) in enumerate(items):
        groups.setdefault(len(ids), []).append(i)
    out: list[torch.Tensor | None] = [None] * len(items)
    for members in groups.values():
        for start in range(0, len(members), max(1, int(batch_size))):
            chunk = members[start:start + int(batch_size)]
            rows = [torch.cat([torch.as_tensor(items[i][1]).long().reshape(-1), torch.tensor([stop])]) for i in chunk]
            width = max(len(r) for r in rows)
            codes = torch.full((len(rows), width), stop, dtype=torch.long)
            for j, r in enumerate(rows):
                codes[j, :len(r)] = r
            texts = torch.stack([torch.as_tensor(items[i][0]).long().reshape(-1) for i in chunk])
            latents = gpt_latents(gpt, conditioning, texts, codes)
            for j, i in enumerate(chunk):
                out[i] = latents[j, :len(rows[j])].float().cpu().clone()
    return out  # type: ignore[return-value]


def voice_latent(source: Any, audio_22k: Any, rows: Sequence[int], seed: int) -> torch.Tensor:
    """The GPT's conditioning latent ``[width]`` of those clips (tortoise's 132,300-sample crops)."""
    from modules.autoregressive.synthesize import conditioning_latent

    waves = [torch.from_numpy(audio_22k.clip(r).copy()) for r in rows]
    return conditioning_latent(source.gpt, source.mel, waves, seed).reshape(-1).cpu()


def latents_key(source: Any, codes_key: str, texts: Sequence[str], rows: Sequence[int], voice: Sequence[int],
                seed: int, voice_key: str = "") -> str:
    """What the latents depend on: the GPT's and tokenizer's bytes, the clips' codes and texts, and the
    voice (which clips, and ``voice_key``: the codes key of the list they come from)."""
    h = hashlib.sha1(f"v{LATENTS_VERSION}|{source.digest}|{file_digest(source.tokenizer.path)}|"
                     f"{codes_key}|{seed}|{list(voice)}|{voice_key}".encode())
    for r, t in zip(rows, texts):
        h.update(f"|{r}|{t}".encode())
    return h.hexdigest()[:16]


def dataset_latents(source: Any, lines: Sequence[Any], audio_22k: Any, codes: Sequence[torch.Tensor],
                    voice_cache: Any, cache_dir: Path, list_tag: str, voice_clips: int, seed: int,
                    batch_size: int, codes_key: str, voice_key: str = "") -> LatentSet:
    """The latents of every usable clip of a list (``lines`` read by the autoregressive data module,
    ``codes`` its cached DVAE codes), computed once on the GPT's device and cached on disk.
    ``voice_cache`` holds the training clips the voice is taken from."""
    from modules.autoregressive.data import select_entries, voice_rows

    gpt = source.gpt
    entries, _ = select_entries(lines, source.tokenizer, [audio_22k.length(i) for i in range(len(audio_22k))],
                                # the latent pass adds a stop-text token and a stop code to what training reads
                                int(gpt.max_text_tokens) - 1, int(gpt.max_mel_tokens) - 1, list_tag)
    rows = [e.index for e in entries]
    texts = [lines[e.index].text for e in entries]
    voice = voice_rows(len(voice_cache), voice_clips, seed)
    key = latents_key(source, codes_key, texts, rows, voice, seed, voice_key)
    path = Path(cache_dir) / f"hifidecoder-latents-{list_tag}-{key}.pt"
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    with open(Path(cache_dir) / ".hifidecoder-latents.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not path.is_file():
                t0 = time.perf_counter()
                cond = voice_latent(source, voice_cache, voice, seed)
                latents = teacher_forced_latents(gpt, cond, [(e.text_ids, codes[e.index]) for e in entries],
                                                 batch_size)
                seconds = time.perf_counter() - t0
                atomic_torch_save({"version": LATENTS_VERSION, "rows": rows, "latents": latents,
                                   "conditioning": cond, "gpt": str(source.gpt_path)}, path)
                log.info("GPT latents of %d clips (%s) from %s in %.1f s (%.1f clips/s), cached in %s", len(rows),
                         list_tag, source.gpt_path.name, seconds, len(rows) / max(seconds, 1e-9), path.name)
                older = sorted(Path(cache_dir).glob(f"hifidecoder-latents-{list_tag}-*.pt"),
                               key=lambda p: p.stat().st_mtime, reverse=True)
                for old in older[KEEP_CACHES:]:
                    old.unlink(missing_ok=True)  # the least recent GPTs' or dataset versions' latents
            data = torch.load(path, weights_only=True, mmap=True)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return LatentSet(rows, texts, [e.text_ids for e in entries], list(data["latents"]), data["conditioning"], key)
