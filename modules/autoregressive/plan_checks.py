"""What Validate says about an autoregressive config beyond the schema (the spec's ``plan_checks``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modules.config.plan import PlanWarning, list_files, resolve_in, wav_stats


def plan_checks(c: Any, root: Path, dataset_dir: Path) -> list[PlanWarning]:
    """Validate's autoregressive findings: tortoise's data files, the preview vocoder, the decoders,
    the sample rate and 8-bit AdamW without a GPU."""
    a = c.autoregressive
    out: list[PlanWarning] = []
    for key in ("tokenizer", "dvae", "mel_norms"):
        p = resolve_in(root, getattr(a, key))
        if p is None or not p.is_file():
            out.append(PlanWarning(f"autoregressive.{key}", f"{getattr(a, key)} does not exist.",
                                   f"put tortoise's {Path(getattr(a, key)).name} there or change "
                                   f"autoregressive.{key}", "error"))
    if a.vocoder:
        p = resolve_in(root, a.vocoder)
        if p is None or not p.exists():
            out.append(PlanWarning("autoregressive.vocoder", f"vocoder {a.vocoder} does not exist.",
                                   "pick a HiFi-GAN checkpoint trained with features: tortoise_mel, or null",
                                   "error"))  # the run refuses it before step 1
        else:
            _vocoder_warnings(c, p, out)
    _decoder_warnings(c, root, out)
    rate, _ = wav_stats(dataset_dir, list_files(dataset_dir / "train.txt")[:1], 0)
    if rate and rate != 22050:
        out.append(PlanWarning("dataset", f"the dataset audio is {rate} Hz; tortoise works at 22050 Hz.",
                               "prepare the dataset with --sample-rate 22050", "error"))
    if a.optimizer_8bit and c.gpus == 0:
        out.append(PlanWarning("autoregressive.optimizer_8bit", "8-bit AdamW needs a GPU.",
                               "set autoregressive.optimizer_8bit: false"))
    return out


def _vocoder_warnings(c: Any, path: Path, out: list[PlanWarning]) -> None:
    """Problems with ``autoregressive.vocoder`` (errors: the run refuses it)."""
    from modules.autoregressive.vocoding import check_vocoder as checker

    try:
        problems = checker(c, path)
    except Exception as exc:  # noqa: BLE001 - a checker failure is a warning, not a crash of Validate
        out.append(PlanWarning("autoregressive.vocoder", f"could not inspect the vocoder {path}: {exc}",
                               "check that it is a HiFi-GAN run folder, state or g_ file"))
        return
    for p in problems or []:
        out.append(PlanWarning("autoregressive.vocoder", str(p),
                               "set autoregressive.vocoder to a HiFi-GAN trained with hifigan.features: tortoise_mel "
                               "(train one on this dataset), or to null for Griffin-Lim samples", "error"))


def _decoder_warnings(c: Any, root: Path, out: list[PlanWarning]) -> None:
    """Findings about tortoise's decoder files (errors: the run refuses them)."""
    from modules.autoregressive.decoders import check_config as checker

    fixes = {"error": "put tortoise's decoder files in models/tortoise/ (or set their paths), or set "
                      "autoregressive.decoder: preview",
             "warning": "copy tortoise's hifidecoder.pth (fast) or diffusion_decoder.pth + vocoder.pth (standard) "
                        "into models/tortoise/"}
    for key, problem, level in checker(c, root):
        out.append(PlanWarning(key, problem, fixes.get(level, fixes["error"]), level))
