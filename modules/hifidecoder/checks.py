"""What Validate says about a decoder config before a run: the base against the configured sizes,
the GPT and its files, and whether the two read latents of the same width."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modules.config.plan import PlanWarning, list_files
from modules.errors import UserError


def _base_width(weights: Any) -> int | None:
    w = weights.get("conv_pre.weight_v")
    return int(w.shape[1]) if w is not None else None


def check_base(config: Any, base_path: Path) -> list[str]:
    """Problems that stop ``base`` loading into the configured decoder (missing, extra or misshapen weights)."""
    from modules.autoregressive.hifi_decoder import build_hifi_decoder
    from modules.hifidecoder.files import read_decoder_weights, resolve_base, tortoise_hyperparameters
    from modules.hifidecoder.options import GENERATOR_KEYS
    from modules.trainer.statedict import state_dict_problems

    path = resolve_base(Path(base_path), Path("."))
    weights = read_decoder_weights(path)
    width = _base_width(weights) or 1024
    sizes = {k: getattr(config.options, k) for k in GENERATOR_KEYS}
    own = build_hifi_decoder(tortoise_hyperparameters(sizes, width), device="meta").state_dict()
    return state_dict_problems(own, weights, path.name, "decoder",
                               shape_hint="hifidecoder.upsample_initial_channel / resblock_kernel_sizes differ")


def gpt_width(path: Path) -> int | None:
    """The model width of an autoregressive checkpoint, read without building the model."""
    import torch

    from modules.autoregressive.synthesize import sidecar

    if path.suffix == ".pt":
        from modules.trainer.state import load_state

        return (load_state(path).config.get("autoregressive") or {}).get("model_dim")
    hp = sidecar(path).get("hyperparameters") or {}
    if "model_dim" in hp:
        return int(hp["model_dim"])
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # noqa: BLE001 - a legacy file that cannot be memory-mapped: skip the check
        return None
    norm = sd.get("final_norm.weight") if isinstance(sd, dict) else None
    return int(norm.shape[0]) if norm is not None else None


def plan_checks(c: Any, root: Path, dataset_dir: Path) -> list[PlanWarning]:
    """Validate's decoder findings: the GPT and its files exist, the base reads that GPT's width."""
    from modules.hifidecoder.source import companion_files, gpt_path

    o = c.hifidecoder
    out: list[PlanWarning] = []
    try:
        path = gpt_path(o, root)
        companion_files(o, root, path)
    except UserError as exc:
        return [PlanWarning("hifidecoder.gpt_checkpoint", str(exc), "fix the path, or fine-tune the GPT first "
                            "(model: autoregressive) and point at its run folder", "error")]
    width = gpt_width(path)
    if c.base and width:
        from modules.hifidecoder.files import read_decoder_weights, resolve_base

        try:
            base_width = _base_width(read_decoder_weights(resolve_base(Path(c.base), root)))
        except UserError:
            base_width = None  # the base check reports an unreadable base
        if base_width and base_width != width:
            out.append(PlanWarning("hifidecoder.gpt_checkpoint", f"the base decoder reads {base_width}-channel "
                                   f"latents but {path.name} makes {width}-channel ones.",
                                   "use a GPT of the base's size (tortoise's is 1024 wide) or set base: null",
                                   "error"))
    if not list_files(dataset_dir / "validation.txt"):
        out.append(PlanWarning("validation_samples", "validation.txt is empty: no validation scores or samples.",
                               "re-run prepare with a validation split"))
    return out
