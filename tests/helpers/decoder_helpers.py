"""Small random tortoise decoders written as files, the way users place tortoise's real ones."""

from __future__ import annotations

from pathlib import Path

import torch

# a tiny autoregressive run's GPT is 64 wide (the "tiny" preset)
SMALL = {
    "hifidecoder": {"in_channels": 64, "cond_channels": 64, "upsample_initial_channel": 32,
                    "resblock_kernel_sizes": [3, 7], "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5]]},
    "diffusion": {"model_channels": 32, "num_layers": 2, "in_latent_channels": 64, "num_heads": 4},
    "vocoder": {"channel_size": 4},
}


def write_small_decoders(tortoise_dir: Path, kinds: tuple[str, ...] = ("hifidecoder", "diffusion", "vocoder"),
                         seed: int = 0) -> dict[str, Path]:
    """Random small decoders under tortoise's file names, each with its ``.json`` sizes sidecar.
    Weight-norm gains are doubled so the HiFi-GAN's output is not near silence (as the fixtures do)."""
    from modules.autoregressive.decoder_files import build, write_sidecar

    names = {"hifidecoder": "hifidecoder.pth", "diffusion": "diffusion_decoder.pth", "vocoder": "vocoder.pth"}
    tortoise_dir.mkdir(parents=True, exist_ok=True)
    out = {}
    for kind in kinds:
        torch.manual_seed(seed)
        model = build(kind, SMALL[kind])
        sd = {k: (v * 2.0 if k.endswith("weight_g") else v).clone() for k, v in model.state_dict().items()}
        if kind == "diffusion":  # tortoise zero-initialises the output convs; random ones make audible output
            g = torch.Generator().manual_seed(seed)
            sd = {k: v + 0.02 * torch.randn(v.shape, generator=g) for k, v in sd.items()}
        path = tortoise_dir / names[kind]
        torch.save({"model_g": sd} if kind == "vocoder" else sd, path)
        write_sidecar(path, SMALL[kind])
        out[kind] = path
    return out
