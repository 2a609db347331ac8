"""Does the ``compile`` key change what training computes? The same run (seed, data order) per mode.

Trains the real trainer core and HiFi-GAN recipe for ``--steps`` steps once per compile mode and
prints, per mode, the wall time and the largest relative difference of each logged loss from the
eager run's, step by step. Equal within float noise (fp32) or bf16 noise is the bar for switching a
mode on by default; the speed comes from bench/train_hifigan.py.

    python bench/compile_losses.py --device cuda --precision bf16 --steps 20 --modes none,default,graphs
    python bench/compile_losses.py --device cpu --preset v2 --batch 2 --segment 4096 --steps 4 --modes none,default
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench._hifigan_common import make_dataset

LOSSES = ("loss", "loss_disc", "mel_l1", "loss_fm", "loss_adv")


def train_losses(ws: Path, args, mode: str) -> tuple[np.ndarray, float]:
    """The per-step losses of one run in ``mode`` and its wall time."""
    from modules.config.schema import config_from_dict, save_config
    from modules.trainer.core import Trainer
    from modules.trainer.failures import EXIT_OK
    from modules.workspace import Workspace

    cfg = config_from_dict({
        "model": "hifigan", "dataset": "training/bench", "batch_size": args.batch, "epochs": 10_000,
        "max_steps": args.steps, "num_workers": 0, "gpus": 1 if args.device == "cuda" else 0,
        "precision": args.precision, "compile": mode, "seed": 5, "save_every_steps": None,
        "validate_every_steps": None, "log_every_steps": 1, "keep_states": 1,
        "evaluation": {"enabled": False},
        "hifigan": {"preset": args.preset, "segment_size": args.segment, "discriminator_width": args.disc_width}})
    path = save_config(cfg, ws / "training" / "bench" / "configs" / f"compile-{mode}.yaml")

    class _Trainer(Trainer):
        def save(self):  # only the losses matter here
            return None

    start = time.time()
    code = _Trainer(cfg, Workspace.open(ws), path).run()
    wall = time.time() - start
    if code != EXIT_OK:
        raise RuntimeError(f"the {mode} run exited with {code} (its console above says why)")
    rows = [json.loads(line) for line in (ws / "training" / "bench" / "runs" / f"compile-{mode}" / "metrics.jsonl")
            .read_text().splitlines() if line.strip()]
    return np.array([[r[k] for k in LOSSES] for r in rows if not r.get("validation")]), wall


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda", choices=("cpu", "cuda"))
    p.add_argument("--precision", default="bf16", choices=("fp32", "bf16"))
    p.add_argument("--modes", default="none,default,graphs", help="compile modes; the first is the reference")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--segment", type=int, default=8192)
    p.add_argument("--preset", default="v1", choices=("v1", "v2", "v3"))
    p.add_argument("--disc-width", type=float, default=1.0)
    args = p.parse_args()
    ws = Path(tempfile.mkdtemp(prefix="bench-compile-"))
    make_dataset(ws, clips=max(64, 2 * args.batch))
    modes = args.modes.split(",")
    print(f"{args.preset.upper()} batch {args.batch} segment {args.segment} {args.precision} on {args.device}, "
          f"{args.steps} steps per mode; differences relative to compile {modes[0]}", flush=True)
    ref = None
    for mode in modes:  # each printed as it finishes: a run stopped at a time limit keeps the modes it measured
        try:
            losses, wall = train_losses(ws, args, mode)
        except KeyboardInterrupt:
            sys.exit(130)
        except Exception as exc:  # one mode failing (e.g. a compile error) leaves the others worth measuring
            print(f"compile {mode:8s} failed: {type(exc).__name__}: {exc}", flush=True)
            continue
        if ref is None:
            ref = losses
        if losses.shape != ref.shape:  # stopped early (a time limit's SIGINT): no comparison of unequal runs
            print(f"compile {mode:8s} ran {len(losses)} of {len(ref)} steps; stopping", flush=True)
            sys.exit(130)
        rel = np.abs(losses - ref) / np.maximum(np.abs(ref), 1e-8)
        worst = ", ".join(f"{k} {rel[:, i].max():.2e}" for i, k in enumerate(LOSSES))
        print(f"compile {mode:8s} wall {wall:7.1f} s (includes compiling)  largest relative difference: {worst}",
              flush=True)


if __name__ == "__main__":
    main()
