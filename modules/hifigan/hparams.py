"""Turn our config's ``hifigan:`` section into jik876-style hyperparameters (and back).

One flat dict with jik876's key names is what the models, the mel front end
and the exported ``config.json`` all use, so conversions live in one place.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from modules.hifigan.options import GENERATOR_KEYS, GENERATOR_PRESETS, HifiganOptions

_DEFAULTS = HifiganOptions()  # the one home of every default
MEL_DEFAULTS: dict[str, Any] = {k: getattr(_DEFAULTS, k) for k in (
    "sampling_rate", "n_fft", "num_mels", "hop_size", "win_size", "fmin", "fmax", "fmax_for_loss")}
JIK876_LR_DECAY = 0.999  # what jik876's train.py uses when a config.json has no lr_decay
TRAIN_DEFAULTS: dict[str, Any] = {
    **{k: getattr(_DEFAULTS, k) for k in ("segment_size", "adam_b1", "adam_b2", "mel_loss_weight",
                                           "feature_loss_weight")},
    "lr_decay": JIK876_LR_DECAY}


def as_dict(obj: Any) -> dict[str, Any]:
    """A config section as a plain dict, whether a dataclass, a mapping or a namespace."""
    if obj is None:
        return {}
    if isinstance(obj, Mapping):
        return dict(obj)
    if dataclasses.is_dataclass(obj):
        return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    if hasattr(obj, "model_dump"):
        return obj.model_dump()
    return dict(vars(obj))


def get(obj: Any, key: str, default: Any = None) -> Any:
    if obj is None:
        return default
    if isinstance(obj, Mapping):
        value = obj.get(key, default)
    else:
        value = getattr(obj, key, default)
    return default if value is None else value


def resolve(section: Any) -> dict[str, Any]:
    """Generator, mel and loss hyperparameters: preset values overridden by any explicit ones."""
    sec = as_dict(section)
    preset = str(sec.get("preset") or "v1").lower()
    h: dict[str, Any] = {}
    h.update(GENERATOR_PRESETS.get(preset, GENERATOR_PRESETS["v1"]))
    h.update(MEL_DEFAULTS)
    h.update(TRAIN_DEFAULTS)
    for key in (*GENERATOR_KEYS, *MEL_DEFAULTS, *TRAIN_DEFAULTS):
        if sec.get(key) is not None:
            h[key] = sec[key]
    h["fmax_for_loss"] = sec.get("fmax_for_loss")  # None is meaningful: half the sample rate
    if sec.get("fmax", "unset") is None:
        h["fmax"] = None
    h["resblock"] = str(h["resblock"])
    h["preset"] = preset
    h["features"] = str(sec.get("features") or "mel")
    h["feature_suffix"] = sec.get("feature_suffix")
    return h


def mel_kwargs(h: Mapping[str, Any], for_loss: bool = False) -> dict[str, Any]:
    """Keyword arguments of ``modules.audio.mel_spectrogram`` for these hyperparameters."""
    return dict(sample_rate=int(h["sampling_rate"]), n_fft=int(h["n_fft"]), num_mels=int(h["num_mels"]),
                hop_size=int(h["hop_size"]), win_size=int(h["win_size"]), fmin=h["fmin"],
                fmax=h.get("fmax_for_loss") if for_loss else h.get("fmax"))


def to_jik876(h: Mapping[str, Any], *, batch_size: int, learning_rate: float, seed: int, num_workers: int,
              in_channels: int = 80) -> dict[str, Any]:
    """A ``config.json`` other HiFi-GAN tools read (jik876's key names and order)."""
    out: dict[str, Any] = {"resblock": str(h["resblock"]), "num_gpus": 0, "batch_size": int(batch_size),
                           "learning_rate": float(learning_rate), "adam_b1": h["adam_b1"], "adam_b2": h["adam_b2"],
                           "lr_decay": h["lr_decay"], "seed": int(seed)}
    for key in GENERATOR_KEYS[1:]:
        out[key] = h[key]
    out.update(segment_size=int(h["segment_size"]), num_mels=int(in_channels), num_freq=int(h["n_fft"]) // 2 + 1,
               n_fft=int(h["n_fft"]), hop_size=int(h["hop_size"]), win_size=int(h["win_size"]),
               sampling_rate=int(h["sampling_rate"]), fmin=h["fmin"], fmax=h["fmax"],
               fmax_for_loss=h.get("fmax_for_loss"), num_workers=int(num_workers),
               dist_config={"dist_backend": "nccl", "dist_url": "tcp://localhost:54321", "world_size": 1})
    if h.get("features", "mel") != "mel":
        out["voicetune_features"] = h["features"]
    return out


def from_jik876(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Hyperparameters from a jik876 ``config.json`` (missing mel keys take jik876's defaults)."""
    h = {**GENERATOR_PRESETS["v1"], **MEL_DEFAULTS, **TRAIN_DEFAULTS}
    for key in (*GENERATOR_KEYS, *MEL_DEFAULTS, "segment_size", "adam_b1", "adam_b2", "lr_decay"):
        if key in cfg:
            h[key] = cfg[key]
    h["resblock"] = str(h["resblock"])
    h["features"] = cfg.get("voicetune_features", "mel")
    return h
