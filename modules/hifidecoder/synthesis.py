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
    gpt = gpt_path(options, root)
    files = companion_files(options, root, gpt)
    decoding = DecoderOptions("fast", hifi_decoder=decoder_file_for(Path(checkpoint)))
    return load_models(gpt, Path(models_dir), files["tokenizer"], files["dvae"], files["mel_norms"], device=device,
                       decoding=decoding)
