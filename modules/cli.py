"""Command line: ``python -m modules [--workspace DIR] COMMAND ...``.

Each command lives in its own module exposing ``add_parser(subparsers)`` and
``run(args, workspace) -> int``; this file only wires them together and keeps
heavy imports out of ``--help``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from modules.errors import UserError
from modules.workspace import Workspace

# command name -> module implementing add_parser/run; each model's spec adds its own (vocode, synthesize, ...)
COMMANDS: dict[str, str] = {
    "prepare": "modules.prepare.cli",
    "config": "modules.config.cli",
    "train": "modules.trainer.cli",
    "evaluate": "modules.evaluation.cli",
    "export": "modules.evaluation.export_cli",
    "queue": "modules.run_manager.queue_cli",
    "quickstart": "modules.quickstart.cli",
}


def commands() -> dict[str, str]:
    from modules import model_registry

    out = dict(COMMANDS)
    for spec in model_registry.all_specs():
        out.update(spec.commands)
    return out


def build_parser(available: dict[str, object]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m modules", description="Voicetune: prepare, configure, train.")
    parser.add_argument("--workspace", metavar="DIR", default=None,
                        help="workspace root holding voices/, training/, models/ "
                             "(default: $VOICETUNE_WORKSPACE or the repo)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in available.values():
        module.add_parser(sub)
    return parser


def _load_commands() -> dict[str, object]:
    """Every command module; an import error is a bug and surfaces with its traceback."""
    return {name: importlib.import_module(path) for name, path in commands().items()}


def main(argv: list[str] | None = None) -> int:
    commands = _load_commands()
    args = build_parser(commands).parse_args(argv)
    try:
        workspace = Workspace.open(args.workspace)
        return int(commands[args.command].run(args, workspace) or 0)
    except UserError as exc:  # WorkspaceError is one
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
