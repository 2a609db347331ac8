"""Read and write tortoise's checkpoint files unchanged (``autoregressive.pth``, ``dvae.pth``).

``autoregressive.pth`` is a plain key -> tensor dict that also carries the legacy GPT-2
``attn.bias``/``attn.masked_bias`` buffers; those are dropped and the rest loads strictly,
so a missing or misshapen weight is an error rather than a silently random layer.
Fine-tuned weights are saved with exactly the keys tortoise's own model has.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Mapping

import torch

from modules.errors import UserError
from modules.fileutil import atomic_torch_save

_LEGACY_KEY = re.compile(r"^gpt\.h\.\d+\.attn\.(bias|masked_bias)$")

DVAE_HYPERPARAMETERS: dict[str, Any] = {
    "channels": 80,
    "codebook_dim": 512,
    "hidden_dim": 512,
    "kernel_size": 3,
    "num_layers": 2,
    "num_resnet_blocks": 3,
    "num_tokens": 8192,
    "positional_dims": 1,
    "use_transposed_convs": False,
}


def read_state_dict(path: str | os.PathLike, what: str) -> dict[str, torch.Tensor]:
    """A plain key -> tensor dict from ``path`` (common wrappers and a DDP prefix removed)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: {what} file not found. Put it there (e.g. models/tortoise/) or fix the path.")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle errors, truncated files, non-tensor payloads
        raise UserError(f"{path}: cannot be read as a PyTorch state dict ({exc}). "
                        f"Re-download or re-export the {what} file.") from exc
    # tolerate the usual wrappers ({"model": sd}, {"state_dict": sd}, DDP's "module." prefix)
    for wrapper in ("state_dict", "model", "gpt", "net"):
        if isinstance(obj, Mapping) and wrapper in obj and isinstance(obj[wrapper], Mapping):
            obj = obj[wrapper]
            break
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise UserError(f"{path}: expected a plain key -> tensor state dict for the {what}.")
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in obj.items()}


def strip_legacy_keys(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop old transformers' causal-mask buffers (``gpt.h.N.attn.bias``/``masked_bias``)."""
    return {k: v for k, v in state_dict.items() if not _LEGACY_KEY.match(k)}


def strict_load(model: torch.nn.Module, sd: Mapping[str, torch.Tensor], path: Path, what: str,
                hint: str, assign: bool = False) -> None:
    """Load every key or raise a UserError naming the file, the first mismatches and ``hint``.

    ``assign=True`` takes the file's tensors as the parameters (for a model built on the meta
    device: no second copy of a large model in memory); they are made float32 first."""
    own = model.state_dict()
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    wrong = [f"{k} {tuple(sd[k].shape)} (model expects {tuple(own[k].shape)})"
             for k in own if k in sd and sd[k].shape != own[k].shape]
    if missing or unexpected or wrong:
        parts = []
        if wrong:
            parts.append("shape mismatch: " + "; ".join(wrong[:4]) + (" ..." if len(wrong) > 4 else ""))
        if missing:
            parts.append("missing: " + ", ".join(missing[:4]) + (" ..." if len(missing) > 4 else ""))
        if unexpected:
            parts.append("unexpected: " + ", ".join(unexpected[:4]) + (" ..." if len(unexpected) > 4 else ""))
        raise UserError(f"{path}: does not match the {what} architecture ({'; '.join(parts)}). {hint}")
    if assign:
        model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in sd.items()},
                              strict=True, assign=True)
    else:
        model.load_state_dict(sd, strict=True)  # copies and casts (half-precision files load as float32)


def build_unified_voice(hyperparameters: Mapping[str, Any] | None = None, device: str | torch.device = "cpu"):
    """A freshly initialised UnifiedVoice (tortoise's full size unless hyperparameters say otherwise)."""
    from modules.autoregressive.unified_voice import TORTOISE_HYPERPARAMETERS, UnifiedVoice

    kwargs = dict(TORTOISE_HYPERPARAMETERS)
    kwargs.update(hyperparameters or {})
    with torch.device(device):
        return UnifiedVoice(**kwargs)


def load_unified_voice(path: str | os.PathLike, hyperparameters: Mapping[str, Any] | None = None,
                       device: str | torch.device = "cpu"):
    """Load ``autoregressive.pth`` (or a fine-tuned ``_gpt.pth``) into a UnifiedVoice in eval mode."""
    path = Path(path)
    sd = strip_legacy_keys(read_state_dict(path, "autoregressive model"))
    model = build_unified_voice(hyperparameters, "cpu")
    strict_load(model, sd, path, "UnifiedVoice",
                 "Pass the hyperparameters (layers, model_dim, heads, max_text_tokens, ...) the file was "
                 "trained with; tortoise's autoregressive.pth uses the defaults.")
    return model.to(device).eval()


def unified_voice_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The keys tortoise's UnifiedVoice has, nothing else (no wte/inference_model aliases)."""
    model = getattr(model, "module", model)
    model = getattr(model, "_orig_mod", model)  # torch.compile wrapper
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def save_unified_voice(model: torch.nn.Module, path: str | os.PathLike) -> Path:
    """Write a plain state dict that tortoise's ``UnifiedVoice.load_state_dict`` accepts."""
    return atomic_torch_save(unified_voice_state_dict(model), path)


def load_dvae(path: str | os.PathLike, hyperparameters: Mapping[str, Any] | None = None,
              device: str | torch.device = "cpu"):
    """Load ``dvae.pth`` (strict) into a frozen DiscreteVAE in eval mode."""
    from modules.autoregressive.dvae import DiscreteVAE

    path = Path(path)
    sd = read_state_dict(path, "DVAE")
    kwargs = dict(DVAE_HYPERPARAMETERS)
    kwargs.update(infer_dvae_hyperparameters(sd) if hyperparameters is None else hyperparameters)
    model = DiscreteVAE(**kwargs)
    strict_load(model, sd, path, "DiscreteVAE",
                 "Use tortoise's dvae.pth, or pass the hyperparameters the file was trained with.")
    model.requires_grad_(False)
    return model.to(device).eval()


def infer_dvae_hyperparameters(sd: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """Read a DVAE's sizes off its state dict (tortoise's dvae.pth gives DVAE_HYPERPARAMETERS)."""
    try:
        first = sd["encoder.0.0.weight"]
        embed = sd["codebook.embed"]
    except KeyError:
        return {}  # not a DVAE; the strict load reports what is missing
    layers = sum(1 for k in sd if re.fullmatch(r"encoder\.\d+\.0\.weight", k))
    resblocks = sum(1 for k in sd if re.fullmatch(r"encoder\.\d+\.net\.0\.weight", k))
    return {"channels": int(first.shape[1]), "hidden_dim": int(first.shape[0]), "kernel_size": int(first.shape[2]),
            "num_layers": layers, "num_resnet_blocks": resblocks, "codebook_dim": int(embed.shape[0]),
            "num_tokens": int(embed.shape[1])}


def save_dvae(model: torch.nn.Module, path: str | os.PathLike) -> Path:
    model = getattr(model, "module", model)
    return atomic_torch_save({k: v.detach().cpu().clone() for k, v in model.state_dict().items()}, path)
