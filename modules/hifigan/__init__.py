"""HiFi-GAN vocoder: jik876-compatible models, checkpoints, training recipe and vocoding."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

__all__ = ["load_generator", "load_generator_with_config"]


def load_generator_with_config(path: str | os.PathLike, config: str | os.PathLike | Mapping[str, Any] | None = None,
                               device: str = "cpu"):
    """``(generator in eval mode, jik876-style hyperparameters)`` for a ``g_`` file, a state or a run folder."""
    import torch

    from modules.errors import UserError
    from modules.hifigan import checkpoint as ckpt
    from modules.hifigan import hparams
    from modules.hifigan.models import GENERATOR_PRESETS, Generator
    from modules.hifigan.recipe import _as_state
    from modules.trainer.state import is_state, model_weights

    path = ckpt.resolve_checkpoint(path)
    data = ckpt.torch_load(path)
    if not isinstance(data, dict):
        raise UserError(f"{path}: not a HiFi-GAN checkpoint")
    if "generator" in data and not is_state(data):
        state = ckpt.strip_prefixes(data["generator"])
        if isinstance(config, Mapping):
            h = hparams.from_jik876(config)
        else:
            cfg_path = Path(config) if config else ckpt.config_beside(path)
            h = hparams.from_jik876(ckpt.read_config(cfg_path)) if cfg_path else None
    else:
        training_state = _as_state(data, path)
        state = model_weights(training_state, "generator")
        if isinstance(config, Mapping):
            h = hparams.from_jik876(config)
        elif config:
            h = hparams.from_jik876(ckpt.read_config(config))
        else:
            h = hparams.resolve(training_state.config.get("hifigan") if training_state.config else None)
    channels = ckpt.in_channels_of(state)
    candidates = [h] if h is not None else [
        {**hparams.from_jik876({}), **preset} for preset in GENERATOR_PRESETS.values()]
    last_error: Exception | None = None
    for cand in candidates:
        try:
            gen = Generator.from_config(cand, in_channels=channels)
            gen.load_state_dict(state, strict=True)
        except (RuntimeError, KeyError) as exc:
            last_error = exc
            continue
        h = dict(cand)
        h["in_channels"] = channels
        return gen.to(torch.device(device)).eval(), h
    if len(candidates) == 1:
        raise UserError(f"{path}: the generator does not match its config ({str(last_error).splitlines()[0]}); "
                        "pass the config.json it was trained with (--config)")
    raise UserError(f"{path}: no config.json beside it and it matches none of the V1/V2/V3 presets; "
                    "pass its config.json (--config)")


def load_generator(path: str | os.PathLike, config: str | os.PathLike | Mapping[str, Any] | None = None,
                   device: str = "cpu"):
    """The generator of a jik876 ``g_`` file (``config``: its config.json path or dict, default the one
    beside it) or of one of our training states, in eval mode on ``device``.

    ``generator(mel)`` with ``mel`` ``[B, C, T]`` returns ``[B, 1, T * hop]``.
    """
    return load_generator_with_config(path, config, device)[0]
