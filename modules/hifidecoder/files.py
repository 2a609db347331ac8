"""The decoder's files: bases it starts from (tortoise's ``hifidecoder.pth``, an export, a state or a
run folder) and the exports it writes, which tortoise's fast API loads unchanged."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import torch

from modules.errors import UserError

WHAT = "tortoise HiFi-GAN decoder (hifidecoder.pth)"


def tortoise_hyperparameters(sizes: Mapping[str, Any], width: int) -> dict[str, Any]:
    """Our generator sizes (HiFi-GAN names) as tortoise's ``HifiganGenerator`` constructor arguments."""
    return {"in_channels": int(width), "out_channels": 1, "resblock_type": str(sizes["resblock"]),
            "resblock_dilation_sizes": [list(d) for d in sizes["resblock_dilation_sizes"]],
            "resblock_kernel_sizes": list(sizes["resblock_kernel_sizes"]),
            "upsample_kernel_sizes": list(sizes["upsample_kernel_sizes"]),
            "upsample_initial_channel": int(sizes["upsample_initial_channel"]),
            "upsample_factors": list(sizes["upsample_rates"]), "cond_channels": int(width)}


def resolve_base(base: Path, workspace_root: Path) -> Path:
    """A decoder file, a state of a decoder run, or a run folder's newest export (else state)."""
    path = Path(base).expanduser()
    path = path if path.is_absolute() else Path(workspace_root) / path
    if not path.exists():
        raise UserError(f"base {base}: not found (looked at {path}); copy tortoise-tts's hifidecoder.pth to "
                        "models/tortoise/, point base at a decoder run, or set base: null to train from scratch")
    if path.is_dir():
        found = (sorted((path / "checkpoints").glob("*_hifidecoder.pth")) or sorted(path.glob("*_hifidecoder.pth"))
                 or sorted((path / "states").glob("step_*.pt")))
        if not found:
            raise UserError(f"base {base}: the folder holds no checkpoints/*_hifidecoder.pth and no states/step_*.pt")
        return found[-1]
    return path


def read_decoder_weights(path: Path, state: Any = None) -> dict[str, torch.Tensor]:
    """The generator's weights of a decoder file (a plain state dict) or a decoder run's state
    (``state``: that state already loaded)."""
    from modules.autoregressive.checkpoint import read_state_dict

    if Path(path).suffix == ".pt":
        from modules.trainer.state import load_state, model_weights

        state = state or load_state(path)
        if "generator" not in state.models:
            raise UserError(f"{path}: a training state without a generator; point base at a decoder run's state "
                            "or at hifidecoder.pth")
        return model_weights(state, "generator")
    return read_state_dict(path, WHAT)


def load_into(decoder: torch.nn.Module, weights: Mapping[str, torch.Tensor], path: Path) -> None:
    """Strictly, with an error naming the file and which sizes to set when they differ."""
    from modules.autoregressive.checkpoint import strict_load

    strict_load(decoder, weights, Path(path), WHAT,
                "Set the hifidecoder: sizes (upsample_initial_channel, resblock_kernel_sizes, ...) to the base's, "
                "and use a GPT of the width the base reads (tortoise's: 1024).")


def save_decoder(decoder: torch.nn.Module, path: Path, hyperparameters: Mapping[str, Any],
                 extra: Mapping[str, Any] | None = None) -> list[Path]:
    """``path`` as tortoise's file (the generator's plain state dict) and ``path.json`` with its
    constructor arguments (which ``load_hifi_decoder`` reads; tortoise ignores it)."""
    from modules.autoregressive.decoder_files import write_sidecar
    from modules.fileutil import atomic_torch_save, atomic_write_json

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sd = {k.removeprefix("module."): v.detach().cpu().clone() for k, v in decoder.state_dict().items()}
    atomic_torch_save(sd, path)
    meta = write_sidecar(path, hyperparameters)
    if extra:
        from modules.fileutil import read_json_dict

        atomic_write_json(meta, {**(read_json_dict(meta) or {}), **dict(extra)})
    return [path, meta]


def decoder_file_for(checkpoint: Path, hyperparameters: Mapping[str, Any] | None = None) -> Path:
    """A decoder file for a run's checkpoint: an export as it is; a state's generator written once
    beside the run's Try it output (``RUN/try_it/decoders/``) so the fast decoder can load it."""
    checkpoint = Path(checkpoint)
    if checkpoint.suffix != ".pt":
        return checkpoint
    run_dir = checkpoint.parent.parent
    out = run_dir / "try_it" / "decoders" / f"{checkpoint.stem}_hifidecoder.pth"
    st = checkpoint.stat()
    if not out.is_file() or out.stat().st_mtime_ns < st.st_mtime_ns:
        from modules.autoregressive.hifi_decoder import build_hifi_decoder
        from modules.trainer.state import load_state

        state = load_state(checkpoint)
        weights = read_decoder_weights(checkpoint, state)
        hp = dict(hyperparameters or state_hyperparameters(state, weights))
        decoder = build_hifi_decoder(hp)
        load_into(decoder, weights, checkpoint)
        save_decoder(decoder, out, hp)
    return out


def state_hyperparameters(state: Any, weights: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """The decoder sizes a loaded state was trained with (its config), at the width its weights read."""
    from modules.hifidecoder.options import GENERATOR_KEYS, TORTOISE_SIZE

    section = (state.config or {}).get("hifidecoder") or {}
    sizes = {k: section.get(k, TORTOISE_SIZE[k]) for k in GENERATOR_KEYS}
    return tortoise_hyperparameters(sizes, int(weights["conv_pre.weight_v"].shape[1]))
