"""``hifigan.features: tortoise_mel``: the generator's input is tortoise's own normalised mel
(against ../shared/compat/tortoise/mel_tortoise/, produced by tortoise's code)."""

from __future__ import annotations

import shutil

import numpy as np
import torch

from modules.hifigan.recipe import HifiganRecipe
from tests.helpers.hifigan_helpers import tiny_config


def test_tortoise_mel_input_mode_matches_tortoise(shared, tmp_path):
    fx = shared / "compat" / "tortoise" / "mel_tortoise"
    ws = tmp_path / "ws"
    (ws / "models" / "tortoise").mkdir(parents=True)
    (ws / "training" / "demo").mkdir(parents=True)
    shutil.copy(shared / "compat" / "tortoise" / "mel_norms.pth", ws / "models" / "tortoise")
    norms = torch.load(ws / "models" / "tortoise" / "mel_norms.pth", weights_only=True).reshape(-1)
    assert torch.allclose(norms, torch.from_numpy(np.load(fx / "mel_norms.npy")).reshape(-1))
    recipe = HifiganRecipe(tiny_config(hifigan={"features": "tortoise_mel", "upsample_rates": [8, 8, 4],
                                                "upsample_kernel_sizes": [16, 16, 8]}),
                           ws / "training" / "demo", torch.device("cpu"), ws)
    audio = torch.from_numpy(np.load(fx / "audio_22050hz.npy")).reshape(1, -1)
    crop = audio[:, : audio.shape[-1] // 256 * 256]  # what a training segment looks like: whole hops
    x = recipe._inputs({}, crop)
    expected = torch.from_numpy(np.load(fx / "mel_normed.npy")).reshape(80, -1)
    assert x.shape == (1, 80, crop.shape[-1] // 256)
    frames = x.shape[-1] - 2  # the last frames see the crop's own edge (reflect padding)
    assert float((x[0, :, :frames] - expected[:, :frames]).abs().max()) < 1e-4
