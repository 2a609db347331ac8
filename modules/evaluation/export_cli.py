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
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--best", action="store_true", help="the step with the highest validation score")
    which.add_argument("--step", type=int, default=None, metavar="N", help="the checkpoint of step N")
    p.add_argument("--out", required=True, metavar="DIR", help="folder to write the files into")


def run(args: argparse.Namespace, workspace: Any) -> int:
    from modules.evaluation.cli import resolve_run_dir
    from modules.evaluation.export import export_checkpoint

    run_dir = resolve_run_dir(args.run_dir, workspace)
    result = export_checkpoint(workspace, run_dir, Path(args.out).expanduser(), step=args.step, best=args.best)
    if result.note:
        print(f"note: {result.note}")
    score = result.scores.get("score")
    print(f"exported step {result.step}" + (f" (score {score:.3f})" if score is not None else " (not scored)")
          + f" to {result.out_dir}: " + ", ".join(p.name for p in result.files))
    return 0
