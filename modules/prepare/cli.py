"""``python -m modules prepare VOICE ...``: the command-line face of :func:`prepare_voice`."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from modules.errors import UserError
from modules.prepare.options import DEVICES, NORMALIZE_MODES, TRANSCRIBERS, PrepareOptions

_D = PrepareOptions()


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "prepare", help="turn voices/VOICE into a transcribed, sliced, split dataset in training/VOICE",
        description="Prepare voices/VOICE: transcribe (or use the transcripts that came with the audio), slice, "
                    "check, split, and write training/VOICE/{audio/,train.txt,validation.txt,dataset.json}.")
    p.add_argument("voice", metavar="VOICE", help="folder name under voices/")
    p.add_argument("--transcriber", choices=TRANSCRIBERS, default=_D.transcriber,
                   help="whisper backend, or 'none' to use metadata.csv / train.txt / .txt / .lab transcripts "
                        f"(default {_D.transcriber})")
    p.add_argument("--model", metavar="NAME_OR_PATH", default=_D.model,
                   help="whisper model name (looked up in models/whisper/ first) or a CTranslate2 folder / .pt file "
                        f"(default {_D.model})")
    p.add_argument("--language", default=_D.language, metavar="auto|CODE", help="spoken language (default auto)")
    p.add_argument("--device", choices=DEVICES, default=_D.device, help="where whisper runs (default auto)")
    p.add_argument("--sample-rate", type=int, default=_D.sample_rate,
                   help=f"output rate in Hz (default {_D.sample_rate})")
    p.add_argument("--min-seconds", type=float, default=_D.min_seconds,
                   help=f"merge clips shorter than this (default {_D.min_seconds})")
    p.add_argument("--max-seconds", type=float, default=_D.max_seconds,
                   help=f"split clips longer than this (default {_D.max_seconds}, tortoise's limit)")
    p.add_argument("--padding", type=float, default=_D.padding_seconds, metavar="S",
                   help=f"silence kept before and after the speech of each clip (default {_D.padding_seconds})")
    p.add_argument("--no-trim", dest="trim_silence", action="store_false",
                   help="keep leading and trailing silence instead of trimming it to the padding")
    p.add_argument("--normalize", choices=NORMALIZE_MODES, default=_D.normalize,
                   help="level normalisation: peak (-1 dBFS) or loudness (-20 LUFS) (default none)")
    p.add_argument("--validation-percent", type=float, default=_D.validation_percent,
                   help=f"share of clips for validation (default {_D.validation_percent:g})")
    p.add_argument("--validation-count", type=int, default=None, metavar="N",
                   help="number of validation clips (overrides --validation-percent)")
    p.add_argument("--seed", type=int, default=_D.seed, help="seed of the validation split (default 0)")
    p.add_argument("--skip-existing", action="store_true",
                   help="reuse cached transcriptions of unchanged recordings")
    return p


def options_from_args(args: argparse.Namespace) -> PrepareOptions:
    return PrepareOptions(
        transcriber=args.transcriber, model=args.model, language=args.language, device=args.device,
        sample_rate=args.sample_rate, min_seconds=args.min_seconds, max_seconds=args.max_seconds,
        padding_seconds=args.padding, trim_silence=args.trim_silence, normalize=args.normalize,
        validation_percent=args.validation_percent, validation_count=args.validation_count, seed=args.seed,
        skip_existing=args.skip_existing)


def run(args: argparse.Namespace, workspace: Any) -> int:
    """Run the preparation with a progress bar; 0 when at least one clip was prepared."""
    from tqdm import tqdm

    from modules.prepare.pipeline import prepare_voice

    options = options_from_args(args).validate()
    voice_dir = workspace.voice_dir(args.voice)  # refuses names that leave the workspace, before any output
    if not voice_dir.is_dir():
        raise UserError(f"voice {args.voice!r} has no folder {voice_dir}; put its recordings there first")
    bar = tqdm(total=1000, unit="‰", desc=f"prepare {args.voice}", file=sys.stderr,
               bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining} {postfix}")
    state = {"n": 0}

    def progress(fraction: float, message: str) -> None:
        n = int(max(0.0, min(1.0, fraction)) * 1000)
        if n > state["n"]:
            bar.update(n - state["n"])
            state["n"] = n
        bar.set_postfix_str(message[-60:], refresh=False)

    def log(message: str) -> None:
        if message.startswith("skipped ") or message.startswith("loading "):
            bar.write(message, file=sys.stderr)

    try:
        result = prepare_voice(workspace, args.voice, options, progress=progress, log=log)
    finally:
        bar.close()
    print(f"prepared {result.clips} clip{'s' if result.clips != 1 else ''} "
          f"({result.total_seconds:.1f} s of audio): {result.train} train, {result.validation} validation")
    print(f"dataset: {result.dataset_dir}")
    if result.skipped:
        print(f"skipped {len(result.skipped)} file{'s' if len(result.skipped) != 1 else ''}:")
        for file, reason in result.skipped:
            print(f"  {file}: {reason}")
    return 0 if result.clips > 0 else 1
