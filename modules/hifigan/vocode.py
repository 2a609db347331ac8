"""``python -m modules vocode``: resynthesise wav files or vocode mel ``.npy`` files with a HiFi-GAN.

Weight norm is folded away and inference runs under ``torch.inference_mode``,
so vocoding is as fast as the model allows.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from modules.errors import UserError

FEATURE_EXTENSIONS = (".npy", ".pt")


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("vocode", help="turn wav files (resynthesis) or mel .npy files into audio with a HiFi-GAN",
                              description="Resynthesise audio files or vocode mel/feature files ([C, T] .npy/.pt).")
    p.add_argument("--checkpoint", required=True, metavar="PATH",
                   help="jik876 g_ file, a training state states/step_*.pt, or a run folder")
    p.add_argument("--config", metavar="PATH", default=None, help="jik876 config.json (default: the one beside a g_ file)")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="audio files, .npy/.pt feature files, or folders of them")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder for NAME.wav files")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.set_defaults(command="vocode")
    return p


def _resolve(path: str, workspace) -> Path:
    p = Path(path).expanduser()
    if p.exists() or p.is_absolute():
        return p
    cand = workspace.root / p
    return cand if cand.exists() else p


def _expand(inputs: list[Path]) -> list[Path]:
    from modules.audio.io import AUDIO_EXTENSIONS

    files: list[Path] = []
    for p in inputs:
        if p.is_dir():
            files += sorted(f for f in p.rglob("*") if f.suffix.lower() in AUDIO_EXTENSIONS + FEATURE_EXTENSIONS)
        elif p.is_file():
            files.append(p)
        else:
            raise UserError(f"{p}: input not found")
    if not files:
        raise UserError("no audio or .npy/.pt files among the inputs")
    return files


def run(args: argparse.Namespace, workspace) -> int:
    import numpy as np
    import torch

    from modules.audio.io import AudioReadError, read_audio, write_wav
    from modules.hifigan import hparams, load_generator_with_config
    from modules.hifigan.data import load_features

    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    if device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA GPU is visible; use --device cpu")
    config = _resolve(args.config, workspace) if args.config else None
    generator, h = load_generator_with_config(_resolve(args.checkpoint, workspace), config, device)
    generator.remove_weight_norm()
    sr, channels = int(h["sampling_rate"]), int(h["in_channels"])
    features = h.get("features", "mel")
    out_dir = _resolve(args.out, workspace)
    out_dir.mkdir(parents=True, exist_ok=True)
    tortoise = None
    total_audio, started = 0.0, time.perf_counter()
    with torch.inference_mode():
        for f in _expand([_resolve(p, workspace) for p in args.inputs]):
            if f.suffix.lower() in FEATURE_EXTENSIONS:
                x = torch.from_numpy(np.array(load_features(f), dtype=np.float32))
                if x.shape[0] != channels:
                    raise UserError(f"{f}: has {x.shape[0]} channels but the generator takes {channels}")
            else:
                try:
                    wave, _ = read_audio(f, sample_rate=sr)
                except AudioReadError as exc:
                    raise UserError(str(exc)) from exc
                w = torch.from_numpy(wave).to(device).unsqueeze(0)
                if features == "tortoise_mel":
                    if tortoise is None:
                        from modules.audio.tortoise_mel import TortoiseMel

                        tortoise = TortoiseMel(workspace.models / "tortoise" / "mel_norms.pth").to(device)
                    x = tortoise(w)[0, :, :w.shape[-1] // generator.hop_size]
                elif features == "mel" and channels == int(h["num_mels"]):
                    from modules.audio.mel import mel_spectrogram

                    x = mel_spectrogram(w, **hparams.mel_kwargs(h))[0]
                else:
                    raise UserError(f"{f}: this generator takes {features} features ({channels} channels), "
                                    "so it cannot resynthesise audio; pass its feature files instead")
            y = generator(x.unsqueeze(0).to(device)).float().reshape(-1).clamp(-1, 1).cpu().numpy()
            target = out_dir / (f.stem + ".wav")
            write_wav(target, y, sr)
            total_audio += len(y) / sr
            print(f"{f.name} -> {target}")
    took = time.perf_counter() - started
    print(f"vocoded {total_audio:.1f} s of audio in {took:.1f} s (real-time factor {took / max(total_audio, 1e-9):.3f})")
    return 0
