"""The autoregressive checkpoint the decoder learns from, with the files that go with it.

A run's ``XXXXXXXX_gpt.pth`` names its tokenizer, mel norms and DVAE in its ``.json`` sidecar;
tortoise's ``autoregressive.pth`` goes with the files in ``models/tortoise/``; a value set in the
``hifidecoder:`` section wins over both.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from modules.errors import UserError


@dataclass
class LatentSource:
    """A loaded GPT (eval mode) and what turns a clip into its inputs."""

    gpt: torch.nn.Module
    gpt_path: Path
    tokenizer: Any  # VoiceTokenizer
    mel: torch.nn.Module  # TortoiseMel
    dvae_path: Path

    _digest: str | None = None

    @property
    def digest(self) -> str:
        """SHA-256 of the GPT file (read once per process: the file may be 1.7 GB)."""
        if self._digest is None:
            from modules.fileutil import file_digest

            self._digest = file_digest(self.gpt_path)
        return self._digest

    @property
    def width(self) -> int:
        """The GPT's model width: the decoder's input and conditioning channels."""
        return int(self.gpt.model_dim)


def _in_workspace(value: str | Path, workspace_root: Path) -> Path:
    p = Path(value).expanduser()
    return p if p.is_absolute() else Path(workspace_root) / p


def gpt_path(options: Any, workspace_root: Path) -> Path:
    """``hifidecoder.gpt_checkpoint`` resolved (a run folder gives its newest export or state)."""
    from modules.autoregressive.recipe import resolve_base

    what = ("the autoregressive checkpoint whose latents the decoder learns: models/tortoise/autoregressive.pth, "
            "a run's checkpoints/XXXXXXXX_gpt.pth, a state or a run folder")
    if not options.gpt_checkpoint:
        raise UserError(f"hifidecoder.gpt_checkpoint is not set; set it to {what}")
    path = _in_workspace(options.gpt_checkpoint, workspace_root)
    if not path.exists():
        raise UserError(f"hifidecoder.gpt_checkpoint {options.gpt_checkpoint}: not found (looked at {path}); "
                        f"set it to {what}")
    try:
        return resolve_base(path, Path(workspace_root))
    except UserError:
        raise UserError(f"hifidecoder.gpt_checkpoint {options.gpt_checkpoint}: the folder holds no "
                        "checkpoints/*_gpt.pth and no states/step_*.pt of an autoregressive run; "
                        f"set it to {what}") from None


def companion_files(options: Any, workspace_root: Path, path: Path) -> dict[str, Path]:
    """tokenizer, mel_norms and dvae for the GPT at ``path``: the section's, the sidecar's, tortoise's."""
    from modules.autoregressive.synthesize import sidecar

    meta = sidecar(path)
    tortoise = Path(workspace_root) / "models" / "tortoise"
    defaults = {"tokenizer": "tokenizer.json", "mel_norms": "mel_norms.pth", "dvae": "dvae.pth"}
    out = {}
    for key, name in defaults.items():
        value = getattr(options, key) or meta.get(key)
        out[key] = _in_workspace(value, workspace_root) if value else tortoise / name
        if not out[key].is_file():
            raise UserError(f"hifidecoder.{key}: {out[key]} not found; the latents need the {key.replace('_', ' ')} "
                            f"the GPT was trained with (set hifidecoder.{key}, or put tortoise's {name} in "
                            f"{tortoise})")
    return out


def load_source(options: Any, workspace_root: Path, device: torch.device | str) -> LatentSource:
    """The GPT of ``hifidecoder.gpt_checkpoint`` on ``device`` and its tokenizer, mel and DVAE file."""
    from modules.audio.tortoise_mel import TortoiseMel
    from modules.autoregressive.synthesize import load_gpt, sidecar
    from modules.autoregressive.tokenizer import VoiceTokenizer

    path = gpt_path(options, workspace_root)
    files = companion_files(options, workspace_root, path)
    tokenizer = VoiceTokenizer(files["tokenizer"])
    gpt = load_gpt(path, sidecar(path).get("hyperparameters"), str(device))
    if tokenizer.vocab_size > gpt.number_text_tokens:
        raise UserError(f"{files['tokenizer']}: {tokenizer.vocab_size} tokens, but the GPT {path.name} knows only "
                        f"{gpt.number_text_tokens}; set hifidecoder.tokenizer to the one it was trained with")
    gpt.requires_grad_(False)
    return LatentSource(gpt, path, tokenizer, TortoiseMel(files["mel_norms"]).to(device), files["dvae"])
