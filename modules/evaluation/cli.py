"""``python -m modules [--workspace DIR] evaluate RUN_DIR [--steps N[,N...]] [--whisper-model M] [--device D]``:
score a run's validation audio (idempotent: scored steps and cached samples are skipped)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from modules.errors import UserError
from modules.evaluation.options import DEVICES


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("evaluate", help="score validation audio: word error rate and speaker likeness",
                              description=__doc__)
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run folder (training/DATASET/runs/RUN)")
    p.add_argument("--steps", default=None, metavar="N[,N...]", help="only these validation steps")
    p.add_argument("--whisper-model", default=None, metavar="NAME_OR_PATH",
                   help="whisper model (default: the run's evaluation.whisper_model)")
    p.add_argument("--device", default=None, choices=DEVICES, help="default: the run's evaluation.device")
    p.add_argument("--follow", type=int, default=None, metavar="PID", help=argparse.SUPPRESS)


def resolve_run_dir(value: str, workspace: Any) -> Path:
    """A run folder given relative to the current directory or the workspace."""
    for p in (Path(value).expanduser(), Path(workspace.root) / value):
        if (p / "config.yaml").is_file():
            return p.resolve()
    raise UserError(f"{value}: not a run folder (no config.yaml there or under {workspace.root}); "
                    "give training/DATASET/runs/RUN")


def parse_steps(value: str | None) -> list[int] | None:
    if not value:
        return None
    try:
        return sorted({int(v) for v in value.split(",") if v.strip()})
    except ValueError:
        raise UserError(f"--steps {value!r}: expected step numbers separated by commas, e.g. 500,1000") from None


def run(args: argparse.Namespace, workspace: Any) -> int:
    from modules.config.schema import load_config
    from modules.evaluation.runner import Evaluator, ScorerLock

    run_dir = resolve_run_dir(args.run_dir, workspace)
    config = load_config(run_dir / "config.yaml")
    options = config.evaluation
    if args.whisper_model:
        options.whisper_model = args.whisper_model
    if args.device:
        options.device = args.device
    if args.follow:
        _be_polite(options.device)
    lock = ScorerLock(run_dir)
    if not lock.acquire(wait=False):
        if args.follow:
            return 0  # another scorer serves this run
        from modules.trainer.runfolder import read_status

        if (read_status(run_dir) or {}).get("state") == "running":
            print(f"{run_dir.name} is training and its scorer (pid {lock.holder()}) scores each validation step "
                  "as it comes; its scores appear in metrics.jsonl. Nothing to do here.")
            return 0
        print(f"another scorer is working on {run_dir.name}; waiting for it to finish", flush=True)
        lock.acquire(wait=True)
    try:
        evaluator = Evaluator(run_dir, workspace.root, options, seed=config.seed,
                              dataset_dir=workspace.inside(workspace.root / config.dataset),
                              log=lambda m: print(m, flush=True))
        wanted = parse_steps(args.steps)
        scored = evaluator.run(wanted, follow_pid=args.follow)
    finally:
        lock.release()
    if args.follow:
        return 0
    from modules.evaluation.store import sample_steps

    no_audio = sorted(set(wanted or []) - set(sample_steps(run_dir)))
    if no_audio:
        print(f"no validation audio for step(s) {', '.join(map(str, no_audio))} in {run_dir.name}/samples/")
    if evaluator.off and not evaluator.available:
        print("nothing was scored: " + "; ".join(evaluator.off.values()))
    print(f"{scored} validation step(s) scored" + ("" if scored else " (nothing new to score)"))
    return 0


def _be_polite(device: str) -> None:
    """A scorer started by a trainer: one thread at idle priority (Linux ``SCHED_IDLE``: it runs only
    on a core nothing else wants; elsewhere the lowest nice value), so training keeps its cores. A
    merely niced scorer still cost a 2-thread CPU trainer 42% of its steps (bench/evaluate.py):
    each of the trainer's parallel ops waits for the thread that shares a core with the scorer."""
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        try:
            os.nice(19)
        except OSError:
            pass
    import torch

    torch.set_num_threads(1)
