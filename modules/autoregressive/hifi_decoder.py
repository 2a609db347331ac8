"""tortoise's fast decoder (``hifidecoder.pth``): GPT latents -> 24 kHz audio in one pass.

It is the project's HiFi-GAN generator with 1024 latent channels in and a conditioning
layer for the voice's latent (see ../shared/compat/tortoise_decoders/FACTS.md, part A);
this module adds tortoise's input interpolation and ``inference(latents, cond)``.
"""

from __future__ import annotations

import os
from typing import Any, Mapping

import torch
import torch.nn.functional as F

from modules.errors import UserError
from modules.hifigan.models import Generator

SAMPLE_RATE = 24000
LATENT_RATE_SCALE = 4.0  # one GPT latent per 1024 samples at 22,050 Hz = 4 mel frames of hop 256
RESAMPLE_SCALE = 24000 / 22050

# the constructor arguments tortoise's api_fast.py uses for hifidecoder.pth
HIFI_DECODER_HYPERPARAMETERS: dict[str, Any] = {
    "in_channels": 1024, "out_channels": 1, "resblock_type": "1",
    "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5], [1, 3, 5]], "resblock_kernel_sizes": [3, 7, 11],
    "upsample_kernel_sizes": [16, 16, 4, 4], "upsample_initial_channel": 512, "upsample_factors": [8, 8, 2, 2],
    "cond_channels": 1024,
}
# tortoise arguments whose non-default values this implementation does not build
_FIXED = {"out_channels": 1, "inference_padding": 5, "cond_in_each_up_layer": False, "conv_pre_weight_norm": True,
          "conv_post_weight_norm": True, "conv_post_bias": True}


def upsample_latents(latents: torch.Tensor) -> torch.Tensor:
    """``[B, T, C]`` latents -> ``[B, C, floor(4T * 24000/22050)]`` as tortoise interpolates them.

    tortoise passes scale factors (not sizes), so the source index is ``(dst + 0.5) / scale - 0.5``;
    the same call reproduces it exactly.
    """
    x = latents.transpose(1, 2)
    x = F.interpolate(x, scale_factor=LATENT_RATE_SCALE, mode="linear")
    return F.interpolate(x, scale_factor=RESAMPLE_SCALE, mode="linear")


def output_samples(num_latents: int) -> int:
    """How many 24 kHz samples ``num_latents`` GPT latents decode to."""
    return int(LATENT_RATE_SCALE * num_latents * RESAMPLE_SCALE) * 256


class HifiDecoder(Generator):
    """HiFi-GAN generator reading GPT latents, conditioned on the voice's conditioning latent."""

    sample_rate = SAMPLE_RATE

    def inference(self, latents: torch.Tensor, conditioning_latent: torch.Tensor) -> torch.Tensor:
        """tortoise's ``HifiganGenerator.inference``: latents ``[B, T, C]``, conditioning ``[B, C]``
        -> ``[B, 1, samples]`` at 24 kHz. Unlike tortoise, batches of more than one work."""
        device = self.conv_pre.bias.device
        dtype = self.conv_pre.bias.dtype
        x = upsample_latents(latents.to(device=device, dtype=torch.float32)).to(dtype)
        g = conditioning_latent.to(device=device, dtype=dtype).reshape(latents.shape[0], -1, 1)
        return self(x, g)


def _generator_kwargs(hp: Mapping[str, Any]) -> dict[str, Any]:
    for key, fixed in _FIXED.items():
        if key in hp and hp[key] != fixed:
            raise UserError(f"hifidecoder hyperparameter {key}={hp[key]!r} is not supported (tortoise uses {fixed!r})")
    return dict(resblock=str(hp["resblock_type"]), upsample_rates=list(hp["upsample_factors"]),
                upsample_kernel_sizes=list(hp["upsample_kernel_sizes"]),
                upsample_initial_channel=int(hp["upsample_initial_channel"]),
                resblock_kernel_sizes=list(hp["resblock_kernel_sizes"]),
                resblock_dilation_sizes=[list(d) for d in hp["resblock_dilation_sizes"]],
                in_channels=int(hp["in_channels"]), cond_channels=int(hp["cond_channels"]))


def build_hifi_decoder(hyperparameters: Mapping[str, Any] | None = None, device: str | torch.device = "cpu"
                       ) -> HifiDecoder:
    """An untrained decoder with tortoise's constructor arguments (default: the full size)."""
    hp = {**HIFI_DECODER_HYPERPARAMETERS, **(hyperparameters or {})}
    with torch.device(device):
        return HifiDecoder(**_generator_kwargs(hp))


def load_hifi_decoder(path: str | os.PathLike, hyperparameters: Mapping[str, Any] | None = None,
                      device: str | torch.device = "cpu") -> HifiDecoder:
    """tortoise's ``hifidecoder.pth`` (a plain state dict), loaded strictly, in eval mode.

    ``hyperparameters`` default: a ``FILE.json`` sidecar's, else tortoise's full size.

    tortoise itself loads with ``strict=False``; here a missing or misshapen key is an error
    naming the file, so a wrong file never renders noise silently.
    """
    from pathlib import Path

    from modules.autoregressive.checkpoint import read_state_dict, strict_load
    from modules.autoregressive.decoder_files import HINT, WHAT, sidecar_hyperparameters

    sd = read_state_dict(path, WHAT["hifidecoder"])
    model = build_hifi_decoder(hyperparameters or sidecar_hyperparameters(path))
    strict_load(model, sd, Path(path), WHAT["hifidecoder"], HINT["hifidecoder"])
    return model.to(torch.device(device)).eval()
