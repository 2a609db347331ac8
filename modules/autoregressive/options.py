"""The ``autoregressive:`` section of a config: tortoise's UnifiedVoice sizes, data, fine-tuning
and decoding options, with their presets and rules. Every default lives here once. No torch.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Optional

from modules.config.fields import ConfigError, option

AR_DECODERS = ("auto", "fast", "standard", "preview")
DIFFUSION_PRESETS = ("ultra_fast", "fast", "standard", "high_quality")
# tortoise api.py's UnifiedVoice sizes (autoregressive.pth); also the model code's defaults
TORTOISE_FULL_SIZE: dict[str, int] = {
    "layers": 30, "model_dim": 1024, "heads": 16, "max_text_tokens": 402, "max_mel_tokens": 604,
    "max_conditioning_inputs": 2,
}
_TORTOISE_TINY: dict[str, int] = {
    "layers": 2, "model_dim": 64, "heads": 4, "max_text_tokens": 120, "max_mel_tokens": 250,
    "max_conditioning_inputs": 2,
}


@dataclass
class AutoregressiveOptions:
    """tortoise UnifiedVoice constructor arguments, data and fine-tuning options."""

    layers: int = option(TORTOISE_FULL_SIZE["layers"], lo=1)
    model_dim: int = option(TORTOISE_FULL_SIZE["model_dim"], lo=8)
    heads: int = option(TORTOISE_FULL_SIZE["heads"], lo=1)
    max_text_tokens: int = option(TORTOISE_FULL_SIZE["max_text_tokens"], lo=2)
    max_mel_tokens: int = option(TORTOISE_FULL_SIZE["max_mel_tokens"], lo=2)
    max_conditioning_inputs: int = option(TORTOISE_FULL_SIZE["max_conditioning_inputs"], lo=1)
    number_text_tokens: int = option(255, lo=2)
    start_text_token: int = option(255, lo=0)
    stop_text_token: int = option(0, lo=0)
    number_mel_codes: int = option(8194, lo=3)
    start_mel_token: int = option(8192, lo=0)
    stop_mel_token: int = option(8193, lo=0)
    mel_length_compression: int = option(1024, lo=1)
    tokenizer: str = option("models/tortoise/tokenizer.json", help="tortoise-style tokenizer.json (workspace path)")
    dvae: str = option("models/tortoise/dvae.pth", help="tortoise dvae.pth (workspace path)")
    mel_norms: str = option("models/tortoise/mel_norms.pth", help="tortoise mel_norms.pth (workspace path)")
    conditioning_clips: int = option(2, lo=1, help="conditioning clips per item (other clips of the voice)")
    conditioning_samples: int = option(44000, lo=1024, help="random crop length of each conditioning clip")
    freeze_conditioning_encoder: bool = option(False)
    freeze_text_embedding: bool = option(False)
    freeze_layers: int = option(0, lo=0, help="freeze the first N transformer layers")
    gradient_checkpointing: bool = option(False, help="recompute transformer activations in backward: less memory, "
                                                      "about 1.5-2x slower (batch 8-16 in bf16 fits 24 GB without it)")
    optimizer_8bit: bool = option(False, help="bitsandbytes 8-bit AdamW (GPU only)")
    weight_decay: float = option(0.01, lo=0.0)
    betas: list[float] = option([0.9, 0.96])
    decoder: str = option("auto", choices=AR_DECODERS,
                      help="what renders validation samples and Try it: fast (tortoise's hifidecoder.pth), standard "
                           "(diffusion_decoder.pth + vocoder.pth), preview (DVAE mel, rough), auto (fast, else "
                           "standard, else preview)")
    diffusion_preset: str = option("fast", choices=DIFFUSION_PRESETS,
                               help="standard decoder: tortoise's preset (ultra_fast 30 steps, fast 80, standard 200, "
                                    "high_quality 400)")
    diffusion_steps: Optional[int] = option(None, lo=1, hi=4000, help="standard decoder: diffusion steps (null: the "
                                                                   "preset's)")
    hifi_decoder: str = option("models/tortoise/hifidecoder.pth", help="tortoise hifidecoder.pth (fast decoder)")
    diffusion_decoder: str = option("models/tortoise/diffusion_decoder.pth",
                                help="tortoise diffusion_decoder.pth (standard decoder)")
    univnet: str = option("models/tortoise/vocoder.pth", help="tortoise vocoder.pth, UnivNet (standard decoder)")
    vocoder: Optional[str] = option(None, help="preview decoder: HiFi-GAN checkpoint (tortoise_mel features); "
                                           "null: Griffin-Lim")
    sample_temperature: float = option(0.8, lo=0.0, lo_open=True, help="validation sampling temperature")
    sample_top_p: float = option(0.8, lo=0.0, hi=1.0, lo_open=True, help="validation sampling nucleus")
    sample_max_mel_tokens: int = option(250, lo=1, help="validation sampling length cap (mel codes)")


# top-level keys only this model reads (they stay top-level in the YAML, as configs have them)
TOP_LEVEL_KEYS = frozenset({"text_lr_weight", "mel_lr_weight"})
# keys that only change how samples are drawn or rendered, or memory/speed: a state stays resumable
RESUME_SAFE = frozenset({
    "vocoder", "decoder", "diffusion_preset", "diffusion_steps", "hifi_decoder", "diffusion_decoder", "univnet",
    "sample_temperature", "sample_top_p", "sample_max_mel_tokens", "gradient_checkpointing",
})
# ai-voice-cloning's training values on tortoise's full-size model
DEFAULTS: dict[str, Any] = {  # the section's own defaults are the dataclass's (tortoise's full size)
    "epochs": 50, "batch_size": 8, "grad_accumulation": 1, "learning_rate": 1e-5,
    "lr_schedule": {"type": "multistep", "milestones": [10, 20, 30, 40], "factor": 0.5}, "grad_clip": 4.0,
}
PRESETS: dict[str, dict[str, Any]] = {
    "full": {"autoregressive": copy.deepcopy(TORTOISE_FULL_SIZE)},
    # from scratch on a CPU: for tests and demos (the output is noise at this size)
    "tiny": {"autoregressive": copy.deepcopy(_TORTOISE_TINY), "batch_size": 4, "learning_rate": 1e-3,
             "lr_schedule": {"type": "constant"}},
}


def validate(a: AutoregressiveOptions) -> None:
    """Cross-key rules that make an autoregressive config untrainable."""
    if a.model_dim % a.heads:
        raise ConfigError(f"autoregressive.model_dim: {a.model_dim} must be divisible by heads {a.heads}")
    if len(a.betas) != 2 or not all(0.0 <= b < 1.0 for b in a.betas):
        raise ConfigError(f"autoregressive.betas: {a.betas} must be two numbers in [0, 1)")
    if a.conditioning_clips > a.max_conditioning_inputs:
        raise ConfigError(f"autoregressive.conditioning_clips: {a.conditioning_clips} exceeds "
                          f"max_conditioning_inputs {a.max_conditioning_inputs}")


def memory_hints(a: AutoregressiveOptions) -> tuple[list[str], list[str]]:
    """What to name and change when a run is out of memory."""
    return ([f"autoregressive.gradient_checkpointing {a.gradient_checkpointing}"],
            ["turn on autoregressive.gradient_checkpointing"])


# what the Configure tab keeps under "Advanced": sizes and token ids (the base checkpoint fixes them), file
# paths with working defaults, optimiser constants and sampling knobs; conditioning, memory savers and the
# validation decoder stay up front
ADVANCED_KEYS = frozenset({
    "layers", "model_dim", "heads", "max_text_tokens", "max_mel_tokens", "max_conditioning_inputs",
    "number_text_tokens", "start_text_token", "stop_text_token", "number_mel_codes", "start_mel_token",
    "stop_mel_token", "mel_length_compression", "tokenizer", "dvae", "mel_norms", "conditioning_samples",
    "freeze_conditioning_encoder", "freeze_text_embedding", "optimizer_8bit", "weight_decay", "betas",
    "diffusion_steps", "hifi_decoder", "diffusion_decoder", "univnet", "vocoder", "sample_temperature",
    "sample_top_p", "sample_max_mel_tokens"})

