"""Training items for the decoder: crops of a clip's interpolated latents and the matching 24 kHz audio.

The crop is taken after the decoder's own input interpolation (``upsample_latents``, tortoise's
two ``scale_factor`` interpolations) over the whole clip, so a crop's input frames are exactly the
frames inference feeds the decoder, and frame f is the audio's samples ``[256 f, 256 (f + 1))``.
Every random choice depends only on (seed, epoch, index).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from modules.autoregressive.hifi_decoder import output_samples, upsample_latents
from modules.hifidecoder.options import HOP


def crop_frames(segment_latents: int) -> int:
    """Interpolated input frames of a crop of ``segment_latents`` GPT latents (32 -> 139)."""
    return output_samples(int(segment_latents)) // HOP


class LatentCropDataset(Dataset):
    """Items: ``latents`` ``[width, frames]`` (interpolated), ``cond`` ``[width]``, ``audio`` ``[frames * 256]``.

    ``segment_latents`` None gives whole clips (validation), their audio zero-padded to the decoder's
    output length and ``length`` the clip's own sample count."""

    def __init__(self, latent_set: Any, audio_24k: Any, segment_latents: int | None, seed: int):
        self.set = latent_set
        self.audio = audio_24k
        self.frames = crop_frames(segment_latents) if segment_latents else None
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.set.rows)

    def __getitem__(self, index: int) -> dict[str, Any]:
        latents = self.set.latents[index].float()
        up = upsample_latents(latents.unsqueeze(0))[0]  # [width, frames of the whole clip]
        wave = torch.from_numpy(self.audio.clip(self.set.rows[index]))
        length = min(len(wave), up.shape[-1] * HOP)
        wave = F.pad(wave[:length], (0, up.shape[-1] * HOP - length))
        item: dict[str, Any] = {"index": index, "cond": self.set.conditioning.float(), "length": length}
        if self.frames is None:
            return {**item, "latents": up, "audio": wave}
        n = self.frames
        if up.shape[-1] < n:  # a clip shorter than the crop: repeat the last frame, pad silence
            wave = F.pad(wave, (0, (n - up.shape[-1]) * HOP))
            up = F.pad(up.unsqueeze(0), (0, n - up.shape[-1]), mode="replicate")[0]
        start = int(np.random.default_rng([self.seed, self.epoch, index]).integers(0, up.shape[-1] - n + 1))
        return {**item, "latents": up[:, start:start + n].contiguous(),
                "audio": wave[start * HOP:(start + n) * HOP].contiguous()}


def collate(items: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Stack equal-sized crops (training) or one whole clip (validation's batch of 1)."""
    return {"index": torch.tensor([it["index"] for it in items]),
            "length": torch.tensor([it["length"] for it in items]),
            "latents": torch.stack([it["latents"] for it in items]), "cond": torch.stack([it["cond"] for it in items]),
            "audio": torch.stack([it["audio"] for it in items])}
