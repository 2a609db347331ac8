"""``python -m modules [--workspace DIR] export RUN_DIR --best --out DIR`` (or ``--step N``): write a
checkpoint's interchange files and ``scores.json`` into DIR."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("export", help="write the best (or a chosen) checkpoint with its scores",
                              description=__doc__)
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run folder (training/DATASET/runs/RUN)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--best", action="store_true", help="the step with the highest validation score")
    which.add_argument("--step", type=int, default=None, metavar="N", help="the checkpoint of step N")
    p.add_argument("--out", default=None, metavar="DIR", help="folder to write the files into "
                   "(required unless --onnx alone, which writes beside the run's checkpoints)")
    p.add_argument("--onnx", action="store_true", help="HiFi-GAN: also the generator as ONNX (weight norm folded, "
                   "dynamic length; for vocode --engine onnx); alone: the newest checkpoint's")


def run(args: argparse.Namespace, workspace: Any) -> int:
    from modules.errors import UserError
    from modules.evaluation.cli import resolve_run_dir
    from modules.evaluation.export import export_checkpoint, write_onnx

    run_dir = resolve_run_dir(args.run_dir, workspace)
    if args.onnx and not (args.best or args.step is not None or args.out):
        onnx = write_onnx(workspace, run_dir, None, None)
        print(f"wrote {onnx} (vocode --engine onnx --checkpoint {onnx} ...)")
        return 0
    if not (args.best or args.step is not None) or not args.out:
        raise UserError("export: say which checkpoint (--best or --step N) and where (--out DIR); "
                        "or --onnx alone for the newest checkpoint's ONNX generator")
    result = export_checkpoint(workspace, run_dir, Path(args.out).expanduser(), step=args.step, best=args.best)
    if args.onnx:
        result.files.append(write_onnx(workspace, run_dir, result.step, result.out_dir))
    if result.note:
        print(f"note: {result.note}")
    score = result.scores.get("score")
    print(f"exported step {result.step}" + (f" (score {score:.3f})" if score is not None else " (not scored)")
          + f" to {result.out_dir}: " + ", ".join(p.name for p in result.files))
    return 0
