"""The section values a HiFi-GAN base fixes: its generator sizes and STFT settings (from the
``config.json`` beside a jik876 ``g_`` file, or recognised from the weights' shapes)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

FIXED = ("resblock", "upsample_rates", "upsample_kernel_sizes", "upsample_initial_channel", "resblock_kernel_sizes",
         "resblock_dilation_sizes", "sampling_rate", "n_fft", "num_mels", "hop_size", "win_size", "fmin", "fmax")


def base_values(base_path: Path, workspace_root: Path) -> dict[str, Any]:
    """``hifigan.*`` values of the base, with ``preset`` naming a matching preset (else ``custom``)."""
    from modules.hifigan import load_generator_with_config
    from modules.hifigan.models import GENERATOR_PRESETS

    path = Path(base_path)
    path = path if path.is_absolute() else Path(workspace_root) / path
    _, h = load_generator_with_config(path, None, "cpu")
    out = {k: (str(h[k]) if k == "resblock" else h[k]) for k in FIXED if k in h}
    sizes = {k: v for k, v in out.items() if k in next(iter(GENERATOR_PRESETS.values()))}
    out["preset"] = next((name for name, p in GENERATOR_PRESETS.items()
                          if all(str(p[k]) == str(v) for k, v in sizes.items() if k in p)), "custom")
    return out
