"""Try it for a decoder run: the run's GPT speaks, this run's decoder renders (the pair together)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping


def load_pair(checkpoint: Path, models_dir: Path, section: Mapping[str, Any], device: str = "cpu"):
    """``SynthesisModels`` with the run's ``gpt_checkpoint`` and ``checkpoint`` (an export or a state)
    as tortoise's fast decoder."""
    from types import SimpleNamespace

    from modules.autoregressive.synthesize import DecoderOptions, load_models
    from modules.hifidecoder.files import decoder_file_for
    from modules.hifidecoder.options import HifidecoderOptions
    from modules.hifidecoder.source import companion_files, gpt_path

    root = Path(models_dir).parent
    defaults = HifidecoderOptions()
    options = SimpleNamespace(**{k: section.get(k, getattr(defaults, k)) for k in
                                 ("gpt_checkpoint", "tokenizer", "dvae", "mel_norms")})
    gpt = pinned_gpt(Path(checkpoint)) or gpt_path(options, root)
    files = companion_files(options, root, gpt)
    decoding = DecoderOptions("fast", hifi_decoder=decoder_file_for(Path(checkpoint)))
    return load_models(gpt, Path(models_dir), files["tokenizer"], files["dvae"], files["mel_norms"], device=device,
                       decoding=decoding)


def pinned_gpt(checkpoint: Path) -> Path | None:
    """The GPT a decoder checkpoint learned from, as its export's ``.json`` or its state records it
    (None when it records none: an older file, or a decoder that came from elsewhere)."""
    from modules.errors import UserError
    from modules.fileutil import read_json_dict

    if checkpoint.suffix == ".pt":
        from modules.trainer.state import load_state

        value = (load_state(checkpoint).data.get("recipe_state") or {}).get("gpt_checkpoint")
    else:
        value = (read_json_dict(checkpoint.with_suffix(".json")) or {}).get("gpt_checkpoint")
    if not value:
        return None
    if not Path(value).is_file():
        raise UserError(f"{checkpoint.name} was trained on the latents of {value}, which is gone; export that "
                        "GPT step again (python -m modules export GPT_RUN --step N) to hear the pair")
    return Path(value)
