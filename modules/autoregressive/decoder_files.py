"""Load tortoise's decoder files unchanged, and check them before a run without loading them.

``hifidecoder.pth`` and ``diffusion_decoder.pth`` are plain state dicts; ``vocoder.pth`` keeps the
UnivNet weights under ``model_g`` (a plain state dict is accepted too). Every loader is strict,
so a wrong file is an error naming it instead of noise.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

import torch

from modules.autoregressive.checkpoint import read_state_dict, strict_load
from modules.errors import UserError
from modules.trainer.statedict import state_dict_problems

WHAT = {
    "hifidecoder": "tortoise HiFi-GAN decoder (hifidecoder.pth)",
    "diffusion": "tortoise diffusion decoder (diffusion_decoder.pth)",
    "vocoder": "tortoise UnivNet vocoder (vocoder.pth)",
}
HINT = {
    "hifidecoder": "It should be tortoise-tts's hifidecoder.pth (the fast API's HifiganGenerator state dict); "
                   "put it in models/tortoise/.",
    "diffusion": "It should be tortoise-tts's diffusion_decoder.pth (a DiffusionTts state dict); put it in "
                 "models/tortoise/.",
    "vocoder": "It should be tortoise-tts's vocoder.pth (UnivNet weights under 'model_g'); put it in "
               "models/tortoise/.",
}


def sidecar_hyperparameters(path: str | os.PathLike) -> dict[str, Any] | None:
    """Constructor arguments from ``FILE.json`` beside a decoder file (``{"hyperparameters": {...}}``),
    which this project writes beside decoders it builds or trains; None when there is none
    (tortoise's own files: the full size)."""
    import json

    meta = Path(path).with_suffix(".json")
    if not meta.is_file():
        return None
    try:
        data = json.loads(meta.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"{meta}: unreadable ({exc}); fix or delete it (it describes {Path(path).name})") from exc
    hp = data.get("hyperparameters") if isinstance(data, dict) else None
    if not isinstance(hp, dict):
        raise UserError(f"{meta}: expected {{\"hyperparameters\": {{...}}}} describing {Path(path).name}")
    return hp


def write_sidecar(path: str | os.PathLike, hyperparameters: Mapping[str, Any]) -> Path:
    """Record a decoder file's constructor arguments beside it (read back by the loaders)."""
    from modules.fileutil import atomic_write_json

    return atomic_write_json(Path(path).with_suffix(".json"), {"hyperparameters": dict(hyperparameters)})


def _univnet_weights(obj: Any) -> Any:
    if isinstance(obj, Mapping) and isinstance(obj.get("model_g"), Mapping):
        return obj["model_g"]
    return obj


def read_univnet_state(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """UnivNet weights from tortoise's ``vocoder.pth`` (``model_g``) or a plain state dict."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: {WHAT['vocoder']} not found. {HINT['vocoder']}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise UserError(f"{path}: cannot be read as a PyTorch file ({exc}). {HINT['vocoder']}") from exc
    sd = _univnet_weights(obj)
    if not isinstance(sd, Mapping) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise UserError(f"{path}: no UnivNet state dict in it (expected tensors under 'model_g'). {HINT['vocoder']}")
    return {k.removeprefix("module."): v for k, v in sd.items()}


def build(kind: str, hyperparameters: Mapping[str, Any] | None = None, device: str | torch.device = "cpu"):
    """An untrained decoder of ``kind`` with tortoise's constructor arguments (default: full size)."""
    if kind == "hifidecoder":
        from modules.autoregressive.hifi_decoder import build_hifi_decoder

        return build_hifi_decoder(hyperparameters, device)
    if kind == "diffusion":
        from modules.autoregressive.diffusion_model import DIFFUSION_HYPERPARAMETERS, DiffusionTts

        with torch.device(device):
            return DiffusionTts(**{**DIFFUSION_HYPERPARAMETERS, **(hyperparameters or {})})
    if kind == "vocoder":
        from modules.autoregressive.univnet import UNIVNET_HYPERPARAMETERS, UnivNetGenerator

        with torch.device(device):
            return UnivNetGenerator(**{**UNIVNET_HYPERPARAMETERS, **(hyperparameters or {})})
    raise ValueError(f"unknown decoder file kind {kind!r}")


def load_diffusion_decoder(path: str | os.PathLike, hyperparameters: Mapping[str, Any] | None = None,
                           device: str | torch.device = "cpu"):
    """tortoise's ``diffusion_decoder.pth`` in a DiffusionTts, strictly, in eval mode (built on the
    meta device and given the file's tensors, so the 292 M parameters exist once)."""
    sd = read_state_dict(path, WHAT["diffusion"])
    model = build("diffusion", hyperparameters or sidecar_hyperparameters(path), device="meta")
    strict_load(model, sd, Path(path), WHAT["diffusion"], HINT["diffusion"], assign=True)
    return model.to(torch.device(device)).eval()


def load_univnet(path: str | os.PathLike, hyperparameters: Mapping[str, Any] | None = None,
                 device: str | torch.device = "cpu"):
    """tortoise's ``vocoder.pth`` (or a plain state dict) in a UnivNet, strictly, weight norm folded."""
    sd = read_univnet_state(path)
    model = build("vocoder", hyperparameters or sidecar_hyperparameters(path))
    strict_load(model, sd, Path(path), WHAT["vocoder"], HINT["vocoder"])
    return model.remove_weight_norm().to(torch.device(device)).eval()


def _peek(kind: str, path: Path) -> Mapping[str, torch.Tensor]:
    """The file's state dict, memory-mapped where possible (shapes only are read)."""
    if not path.is_file():
        raise UserError(f"{path}: {WHAT[kind]} not found. {HINT[kind]}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # noqa: BLE001 - legacy (non-zip) files cannot be memory-mapped
        obj = None
    if obj is None:
        return read_univnet_state(path) if kind == "vocoder" else read_state_dict(path, WHAT[kind])
    sd = _univnet_weights(obj) if kind == "vocoder" else obj
    if not isinstance(sd, Mapping) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise UserError(f"{path}: not a state dict of the {WHAT[kind]}. {HINT[kind]}")
    return {k.removeprefix("module."): v for k, v in sd.items()}


def latent_channels(kind: str, path: str | os.PathLike) -> int | None:
    """The GPT width a decoder file reads (None for the vocoder or an unreadable file)."""
    key = {"hifidecoder": "conv_pre.weight_v", "diffusion": "latent_conditioner.0.weight"}.get(kind)
    if key is None:
        return None
    try:
        sd = _peek(kind, Path(path))
    except UserError:
        return None
    return int(sd[key].shape[1]) if key in sd else None


def check_file(kind: str, path: str | os.PathLike, hyperparameters: Mapping[str, Any] | None = None) -> list[str]:
    """Why ``path`` would not load as a decoder of ``kind`` (empty when it would), naming the file."""
    path = Path(path)
    try:
        theirs = _peek(kind, path)
    except UserError as exc:
        return [str(exc)]
    try:
        hp = hyperparameters or sidecar_hyperparameters(path)
    except UserError as exc:
        return [str(exc)]
    own = build(kind, hp, device="meta").state_dict()
    problems = state_dict_problems(own, theirs, str(path), WHAT[kind])
    return [f"{p}. {HINT[kind]}" for p in problems]
