"""``python -m modules config hifigan|autoregressive|check ...``: write or check a training config.

    python -m modules config hifigan --dataset training/demo --preset v1 \\
        --set epochs=10 --set hifigan.segment_size=4096 --out training/demo/configs/tiny.yaml
    python -m modules config check training/demo/configs/tiny.yaml

``--out`` (and ``check``'s file) is a path relative to the current directory, as
usual on a command line; the UI saves to ``training/NAME/configs/``. The config
is built through the typed schema (the UI's code path), validated, written
atomically, and a plan (steps per epoch, total steps, warnings) is printed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("config", help="write a training config YAML (or check one)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    from modules import model_registry

    p.add_argument("model", choices=(*model_registry.names(), "check"),
                   help="model of the new config, or `check` to validate an existing YAML")
    p.add_argument("file", nargs="?", help="check: the YAML to validate")
    p.add_argument("--dataset", help="prepared dataset, e.g. training/NAME (a bare NAME means training/NAME)")
    p.add_argument("--preset", help="a preset of the model: " + "; ".join(
        f"{s.name}: {'|'.join(sorted(s.presets))}" for s in model_registry.all_specs()))
    p.add_argument("--base", help="checkpoint to fine-tune from (workspace path, e.g. models/hifigan/g_02500000)")
    p.add_argument("--from", dest="from_file", metavar="YAML", help="start from an existing config file")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="set a (dotted) key, value parsed as YAML; repeatable, e.g. --set hifigan.segment_size=4096")
    p.add_argument("--out", help="where to write the YAML (relative to the current directory)")
    p.add_argument("--strict", action="store_true", help="exit non-zero when the plan has errors")
    p.add_argument("--auto", action="store_true",
                   help="derive length, cadence, warm-up, batch and precision from the dataset and the hardware "
                        "(one line per value says why; --set values win)")
    p.add_argument("--fit", action="store_true",
                   help="check: will the batch fit? a dry run of real steps on a GPU, an estimate on the CPU")
    p.add_argument("--largest", action="store_true", help="with --fit: also search the largest batch that fits")
    p.add_argument("--json", action="store_true", help="with --fit: print one JSON object only")


def _dataset_key(workspace: Any, value: str) -> str:
    """Normalise ``--dataset`` to a workspace-relative POSIX path (``training/NAME``)."""
    root = Path(workspace.root)
    candidate = Path(value)
    if not candidate.is_absolute() and len(candidate.parts) == 1 and not (root / candidate).is_dir():
        candidate = Path("training") / candidate
    resolved = workspace.inside(candidate)
    return resolved.relative_to(root.resolve()).as_posix() if resolved != root.resolve() else "."


def _workspace_path(workspace: Any, value: str) -> str:
    """A workspace-relative path when ``value`` lies inside the workspace, else ``value`` unchanged."""
    p = Path(value).expanduser()
    if not p.is_absolute():
        cwd_p = (Path.cwd() / p).resolve()
        if cwd_p.exists() and not (Path(workspace.root) / p).exists():
            p = cwd_p
        else:
            return p.as_posix()
    resolved = workspace.inside(p)
    return resolved.relative_to(Path(workspace.root).resolve()).as_posix()


def run(args: argparse.Namespace, workspace: Any) -> int:
    from modules.config import plan as plan_mod
    from modules.config import schema
    from modules.errors import UserError

    if args.model == "check":
        if not args.file:
            raise UserError("config check: name the YAML file, e.g. python -m modules config check FILE.yaml")
        config = schema.load_config(args.file)
        config = schema.apply_overrides(config, args.overrides) if args.overrides else config
        if args.fit:
            return _fit(config, workspace, args)
        return _report(plan_mod.plan_run(config, workspace), args.strict)

    if args.file:
        raise UserError(f"config {args.model}: unexpected argument {args.file!r}; write the output with --out FILE")
    if not args.out:
        raise UserError("config: --out FILE.yaml is required (e.g. --out training/NAME/configs/my.yaml)")
    if args.from_file:
        config = schema.load_config(args.from_file)
        if config.model != args.model:
            raise UserError(f"{args.from_file}: is a {config.model} config, not {args.model}")
        if args.dataset:
            config = schema.apply_overrides(config, [f"dataset={_dataset_key(workspace, args.dataset)}"])
        if args.preset:
            config = schema.apply_preset(config, args.preset)
    else:
        if not args.dataset:
            raise UserError("config: --dataset training/NAME is required")
        config = schema.default_config(args.model, _dataset_key(workspace, args.dataset), args.preset)
    if args.base:
        config.base = _workspace_path(workspace, args.base)
    if args.auto:
        from modules.config.auto import apply, derive

        explicit = {item.split("=", 1)[0].strip() for item in args.overrides}
        derived = derive(schema.apply_overrides(config, args.overrides), workspace, explicit)
        for d in derived:
            print(d.line())
        config = apply(config, derived)
    config = schema.apply_overrides(config, args.overrides)
    out = schema.save_config(config, args.out)
    print(f"wrote {out}")
    return _report(plan_mod.plan_run(config, workspace), args.strict)


def _fit(config: Any, workspace: Any, args: argparse.Namespace) -> int:
    import json

    from modules.trainer.fit import fit_check

    result = fit_check(config, workspace, search=args.largest)
    if args.json:
        print(json.dumps(result.to_json()))
    else:
        print(result.message)
        if result.largest_batch is not None:
            print(f"largest batch that fits: {result.largest_batch}")
    return 0 if result.fits else 1


def _report(plan: Any, strict: bool) -> int:
    print(plan.summary())
    if not plan.ok:
        if strict:
            print("the config has errors (see above)", file=sys.stderr)
            return 1
        print("the file is written, but a run cannot start until the errors above are fixed "
              "(--strict makes this exit non-zero)", file=sys.stderr)
    return 0
