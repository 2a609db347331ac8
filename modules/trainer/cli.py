"""``python -m modules train FILE.yaml [--resume latest|PATH] [--gpus N] [--force] [--fresh]``.

The run folder is ``DATASET/runs/<config file stem>/`` (or ``run_name``).
``--gpus N`` > 1 runs the same command under torchrun (one process per GPU;
gloo processes on a machine without GPUs) and waits for it. Exit codes: 0 finished or
stopped by SIGTERM/SIGINT (a state is saved;
during start-up there is nothing to save), 2 bad input, 3 non-finite loss,
4 out of memory, 1 anything else.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any, Callable


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("train", help="train a model from a config YAML", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", help="config YAML (relative to the current directory or the workspace)")
    p.add_argument("--resume", metavar="latest|PATH", help="continue from the newest state or a state file")
    p.add_argument("--gpus", type=int, default=None, help="processes/GPUs (default: the config's gpus)")
    p.add_argument("--force", action="store_true",
                   help="resume even though model/optimizer/data settings changed since the state")
    p.add_argument("--fresh", action="store_true",
                   help="start over although the run folder has states (the old folder is renamed, not deleted)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key for this run (e.g. --set epochs=50); saved in the run's config.yaml")
    p.add_argument("--recipe", metavar="MODULE:CLASS",
                   help="use this Recipe class instead of the registered one (plug-in recipes, tests)")
    p.add_argument("--export-only", action="store_true",
                   help="write the interchange files (g_/do_, _gpt.pth) of the newest state, then exit "
                        "(implies --resume latest)")
    p.add_argument("--no-fit-check", action="store_true",
                   help="skip the dry run that checks, on a GPU, that the batch fits before training")


def _config_path(value: str, workspace: Any) -> Path:
    from modules.errors import UserError

    p = Path(value).expanduser()
    if p.is_file():
        return p.resolve()
    alt = Path(workspace.root) / p
    if not p.is_absolute() and alt.is_file():
        return alt.resolve()
    raise UserError(f"{value}: config file not found (looked in the current directory and the workspace); "
                    "create one with `python -m modules config ...`")


def run(args: argparse.Namespace, workspace: Any) -> int:
    from modules.trainer.signals import StartupStop, StopRequest

    # a stop request while torch loads and the config is read: exit 0 at once (nothing to save);
    # the trainer installs its own handler before it builds anything
    try:
        with StopRequest(at_startup=True):
            start = _set_up(args, workspace)
    except StartupStop as exc:
        print(f"{exc.signal_name} received during start-up: stopped, nothing to save", file=sys.stderr)
        return 0
    return start()


def _set_up(args: argparse.Namespace, workspace: Any) -> Callable[[], int]:
    """Read the config and import the trainer; returns what runs the training (and its exit code)."""
    from modules.config.schema import apply_overrides, load_config
    from modules.errors import UserError
    from modules.trainer import distributed as D

    path = _config_path(args.config, workspace)
    config = load_config(path)
    if args.overrides:
        config = apply_overrides(config, args.overrides)
    if args.gpus is not None and args.gpus < 0:
        raise UserError("--gpus: must be 0 (CPU) or more")
    gpus = config.gpus if args.gpus is None else args.gpus
    if gpus > 1 and not D.under_torchrun():
        module_args = ["--workspace", str(workspace.root), "train", str(path)]
        if args.resume:
            module_args += ["--resume", args.resume]
        module_args += ["--gpus", str(gpus)]
        for flag in ("force", "fresh"):
            if getattr(args, flag):
                module_args.append(f"--{flag}")
        for item in args.overrides:
            module_args += ["--set", item]
        if args.recipe:
            module_args += ["--recipe", args.recipe]
        from modules.trainer.runfolder import RunPaths, run_dir_for

        status = RunPaths(run_dir_for(workspace.inside(config.dataset), path, config.run_name)).status
        return lambda: D.run_under_torchrun(gpus, module_args, status)
    import os

    if D.under_torchrun() and int(os.environ.get("WORLD_SIZE", "1")) != max(1, gpus) and args.gpus is not None:
        print(f"note: torchrun started {os.environ.get('WORLD_SIZE')} processes; --gpus {gpus} is ignored",
              file=sys.stderr)
    from modules.trainer.core import Trainer

    if not (D.under_torchrun() or args.export_only or args.no_fit_check) and gpus >= 1:
        _check_fit(config, workspace)
    recipe_cls = None
    if args.recipe:
        from modules.model_spec import load_class

        recipe_cls = load_class(args.recipe)
    command = shlex.join([sys.executable, "-m", "modules", *sys.argv[1:]]) if not D.under_torchrun() else None
    resume = args.resume or ("latest" if args.export_only else None)
    trainer = Trainer(config, workspace, path, resume=resume, force=args.force, fresh=args.fresh,
                      recipe_cls=recipe_cls, gpus=gpus, command=command, export_only=args.export_only)
    return trainer.run


def _check_fit(config: Any, workspace: Any) -> None:
    """On a GPU, a dry run of a few steps before the run: a batch that does not fit is refused now,
    with the batch that does, instead of an out-of-memory exit later (``--no-fit-check`` skips it)."""
    import torch

    if not torch.cuda.is_available():
        return
    from modules.errors import UserError
    from modules.trainer.fit import fit_check

    result = fit_check(config, workspace, device="cuda")
    torch.cuda.empty_cache()
    if not result.fits:
        raise UserError(f"{result.message} (or pass --no-fit-check to try anyway)")
    print(f"fit check: {result.message}", flush=True)

