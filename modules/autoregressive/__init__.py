"""tortoise-compatible autoregressive (UnifiedVoice) fine-tuning: model, DVAE, tokenizer, loading.

Names are resolved lazily so ``import modules.autoregressive`` stays cheap (no torch until used).
"""

from __future__ import annotations

_EXPORTS = {
    "load_unified_voice": "modules.autoregressive.checkpoint",
    "save_unified_voice": "modules.autoregressive.checkpoint",
    "build_unified_voice": "modules.autoregressive.checkpoint",
    "load_dvae": "modules.autoregressive.checkpoint",
    "save_dvae": "modules.autoregressive.checkpoint",
    "UnifiedVoice": "modules.autoregressive.unified_voice",
    "TORTOISE_HYPERPARAMETERS": "modules.autoregressive.unified_voice",
    "DiscreteVAE": "modules.autoregressive.dvae",
    "VoiceTokenizer": "modules.autoregressive.tokenizer",
    "train_bpe_tokenizer": "modules.autoregressive.tokenizer",
    "load_hifi_decoder": "modules.autoregressive.hifi_decoder",
    "load_diffusion_decoder": "modules.autoregressive.decoder_files",
    "load_univnet": "modules.autoregressive.decoder_files",
    "diffusion_mel": "modules.autoregressive.diffusion_sampler",
    "fix_codes": "modules.autoregressive.latents",
    "kept_latent_frames": "modules.autoregressive.latents",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'modules.autoregressive' has no attribute {name!r}")
