"""The ``hifidecoder:`` section of a config: tortoise's fast decoder fine-tuned on a GPT's latents.

Every default lives here once: the generator sizes are tortoise's ``hifidecoder.pth``
(api_fast.py's constructor arguments), the mel loss is a 24 kHz mel, the GAN constants are the
HiFi-GAN paper's. The GPT width (the decoder's input and conditioning channels) comes from the
autoregressive checkpoint, never from here. No torch.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Optional

from modules.config.fields import ConfigError, option
from modules.hifigan.options import GENERATOR_KEYS, GENERATOR_PRESETS, validate_generator_sizes

SAMPLE_RATE = 24000
HOP = 256  # tortoise's decoder upsamples the interpolated latents by 256 (8 x 8 x 2 x 2)
# api_fast.py's HifiganGenerator has exactly jik876's V1 sizes (with 1024 latent channels in)
TORTOISE_SIZE: dict[str, Any] = copy.deepcopy(GENERATOR_PRESETS["v1"])
__all__ = ["GENERATOR_KEYS", "TORTOISE_SIZE", "HifidecoderOptions"]
_TINY_SIZE: dict[str, Any] = {**copy.deepcopy(TORTOISE_SIZE), "upsample_initial_channel": 32,
                              "resblock_kernel_sizes": [3, 7], "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5]]}


@dataclass
class HifidecoderOptions:
    """tortoise HiFi-GAN decoder fine-tune: where the latents come from, crops, sizes and losses."""

    gpt_checkpoint: str = option("models/tortoise/autoregressive.pth",
                                 help="the autoregressive checkpoint whose latents the decoder learns to render: "
                                      "tortoise's autoregressive.pth, a run's checkpoints/XXXXXXXX_gpt.pth, a state "
                                      "or a run folder (its newest)")
    tokenizer: str = option("", help="tokenizer.json (empty: the checkpoint's own, else models/tortoise/)")
    dvae: str = option("", help="dvae.pth for the clips' codes (empty: the checkpoint's own, else models/tortoise/)")
    mel_norms: str = option("", help="mel_norms.pth (empty: the checkpoint's own, else models/tortoise/)")
    segment_latents: int = option(32, lo=2, help="training crop in GPT latent frames (32 = 1.49 s of audio)")
    latent_batch_size: int = option(8, lo=1, help="clips per batch when the GPT latents are extracted")
    voice_clips: int = option(4, lo=1, help="training clips (a seeded pick) whose conditioning latent is the voice")
    discriminator_warmup_steps: int = option(0, lo=0, help="the first N steps train only the discriminators "
                                                           "(tortoise ships none, so they start from random)")
    resblock: str = option(TORTOISE_SIZE["resblock"], choices=("1", "2"), help="residual block type")
    upsample_rates: list[int] = option(TORTOISE_SIZE["upsample_rates"], help="their product must be 256")
    upsample_kernel_sizes: list[int] = option(TORTOISE_SIZE["upsample_kernel_sizes"])
    upsample_initial_channel: int = option(TORTOISE_SIZE["upsample_initial_channel"], lo=1)
    resblock_kernel_sizes: list[int] = option(TORTOISE_SIZE["resblock_kernel_sizes"])
    resblock_dilation_sizes: list[list[int]] = option(TORTOISE_SIZE["resblock_dilation_sizes"])
    n_fft: int = option(1024, lo=16, help="mel loss: FFT size (24 kHz audio)")
    num_mels: int = option(100, lo=1, help="mel loss: bands")
    hop_size: int = option(256, lo=1, help="mel loss: hop")
    win_size: int = option(1024, lo=16, help="mel loss: window")
    fmin: float = option(0.0, lo=0.0, help="mel loss: lowest frequency")
    fmax: Optional[float] = option(None, lo=0.0, help="mel loss: highest frequency (null: 12,000 Hz)")
    adam_b1: float = option(0.8, lo=0.0, hi=1.0)
    adam_b2: float = option(0.99, lo=0.0, hi=1.0)
    mel_loss_weight: float = option(45.0, lo=0.0)
    feature_loss_weight: float = option(2.0, lo=0.0)
    discriminator_width: float = option(1.0, lo=0.0, hi=1.0, lo_open=True,
                                        help="discriminator channel multiplier (1 = HiFi-GAN's MPD/MSD; smaller only "
                                             "for quick tests)")
    sample_temperature: float = option(0.8, lo=0.0, lo_open=True, help="validation sampling temperature")
    sample_top_p: float = option(0.8, lo=0.0, hi=1.0, lo_open=True, help="validation sampling nucleus")
    sample_max_mel_tokens: int = option(250, lo=1, help="validation sampling length cap (mel codes)")


# keys that change only how validation samples are drawn: a state stays resumable
RESUME_SAFE = frozenset({"sample_temperature", "sample_top_p", "sample_max_mel_tokens", "latent_batch_size"})
DEFAULTS: dict[str, Any] = {  # a fine-tune of tortoise's own decoder file, at HiFi-GAN's fine-tuning rate
    "epochs": 100, "batch_size": 16, "grad_accumulation": 1, "learning_rate": 1e-4,
    "lr_schedule": {"type": "exponential", "gamma": 0.999}, "grad_clip": None,
    "base": "models/tortoise/hifidecoder.pth",
}
PRESETS: dict[str, dict[str, Any]] = {
    "tortoise": {"hifidecoder": copy.deepcopy(TORTOISE_SIZE)},
    # a small decoder for a CPU: tests and demos
    "tiny": {"hifidecoder": {**copy.deepcopy(_TINY_SIZE), "segment_latents": 8, "discriminator_width": 0.25},
             "batch_size": 2, "learning_rate": 2e-4},
}


def validate(h: HifidecoderOptions) -> None:
    """Cross-key rules that make a decoder config untrainable."""
    prod = validate_generator_sizes(h, "hifidecoder")
    if prod != HOP:
        raise ConfigError(f"hifidecoder.upsample_rates: their product {prod} must be {HOP} (tortoise's decoder "
                          "turns each interpolated latent frame into 256 samples)")


def memory_hints(h: HifidecoderOptions) -> tuple[list[str], list[str]]:
    """What to name and lower when a run is out of memory."""
    return [f"hifidecoder.segment_latents {h.segment_latents}"], ["lower hifidecoder.segment_latents"]


# sizes (the base file fixes them), paths with working defaults, STFT and optimiser constants
ADVANCED_KEYS = frozenset({
    "tokenizer", "dvae", "mel_norms", "latent_batch_size", "resblock", "upsample_rates", "upsample_kernel_sizes",
    "upsample_initial_channel", "resblock_kernel_sizes", "resblock_dilation_sizes", "n_fft", "num_mels", "hop_size",
    "win_size", "fmin", "fmax", "adam_b1", "adam_b2", "mel_loss_weight", "feature_loss_weight",
    "discriminator_width", "sample_temperature", "sample_top_p", "sample_max_mel_tokens"})
