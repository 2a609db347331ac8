"""``python -m modules [--workspace DIR] quickstart VOICE [--models hifigan,autoregressive] [--tiny]
[--transcriber ...]``: prepare, configure, train (queued), score; run it again to continue."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("quickstart", help="from voices/VOICE to trained, scored checkpoints in one go",
                              description=__doc__)
    p.add_argument("voice", metavar="VOICE", help="folder name under voices/")
    p.add_argument("--models", default="hifigan,autoregressive", help="models to train, comma-separated")
    p.add_argument("--tiny", action="store_true", help="demo sizes: a few CPU steps each (what the tests use)")
    p.add_argument("--transcriber", default="faster-whisper", choices=("faster-whisper", "openai-whisper", "none"),
                   help="Prepare's transcriber (none: transcripts beside the audio)")
    p.add_argument("--whisper-model", default=None, metavar="NAME_OR_PATH",
                   help="whisper model for Prepare and for scoring (default: theirs)")
    p.add_argument("--drop-flagged", action="store_true", help="remove the clips Prepare flagged before training")


def run(args: argparse.Namespace, workspace: Any) -> int:
    from modules import model_registry
    from modules.errors import UserError
    from modules.quickstart.pipeline import QuickstartOptions, run_quickstart

    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in models if m not in model_registry.SPECS]
    if unknown:
        raise UserError(f"--models: {', '.join(unknown)} unknown; use {', '.join(model_registry.names())}")
    state = run_quickstart(workspace, args.voice, QuickstartOptions(models, args.tiny, args.transcriber,
                                                                    args.whisper_model, args.drop_flagged))
    failed = [m for m, s in (state.get("results") or {}).items() if s != "done"]
    return 1 if failed else 0
