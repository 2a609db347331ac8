"""Delete old states or a whole run, only inside the workspace and never while it trains."""

from __future__ import annotations

import shutil
from pathlib import Path

from modules.errors import UserError
from modules.workspace import Workspace


def _checked_run_dir(ws: Workspace, run_dir: Path) -> Path:
    """Resolve and refuse anything that is not ``training/NAME/runs/RUN`` of this workspace."""
    run_dir = ws.inside(run_dir)
    if run_dir.parent.name != "runs" or run_dir.parent.parent.parent != ws.training.resolve():
        raise UserError(f"{run_dir}: not a run folder (expected training/NAME/runs/RUN in the workspace)")
    if not run_dir.is_dir():
        raise UserError(f"{run_dir}: run folder not found")
    return run_dir


def _refuse_if_active(run_dir: Path, what: str) -> None:
    from modules.run_manager.status import run_status

    st = run_status(run_dir)
    if st.active:
        raise UserError(f"{run_dir.name} is training (pid {st.pid}); stop it before you {what}")


def delete_old_states(ws: Workspace, run_dir: Path, keep: int = 1) -> list[Path]:
    """Remove all but the newest ``keep`` states (``.pt`` and sidecar); returns what was removed."""
    from modules.trainer.runfolder import list_states

    run_dir = _checked_run_dir(ws, run_dir)
    _refuse_if_active(run_dir, "delete states")
    if keep < 0:
        raise UserError("keep must be 0 or more")
    removed = []
    for state in list_states(run_dir)[keep:]:
        for p in (state.path, state.path.with_suffix(".json")):
            if p.exists():
                p.unlink()
                removed.append(p)
    return removed


def delete_run(ws: Workspace, run_dir: Path) -> Path:
    """Remove a whole run folder (states, checkpoints, samples, logs)."""
    run_dir = _checked_run_dir(ws, run_dir)
    from modules.trainer.runfolder import launcher_paths

    _refuse_if_active(run_dir, "delete the run")
    shutil.rmtree(run_dir)
    for p in launcher_paths(run_dir):
        p.unlink(missing_ok=True)
    return run_dir


def write_exports(ws: Workspace, run_dir: Path):
    """Write the interchange files of the run's newest state (``train --export-only``, detached like a run)."""
    from modules.run_manager.process import build_train_command, spawn_detached
    from modules.trainer.runfolder import RunPaths, list_states

    run_dir = _checked_run_dir(ws, run_dir)
    if not list_states(run_dir):
        raise UserError(f"{run_dir.name}: no saved state to export from")
    _refuse_if_active(run_dir, "write its exports")
    # the run folder keeps its own copy of the config; run_name points the trainer back at this folder
    cmd = build_train_command(ws, RunPaths(run_dir).config, "latest",
                              extra=["--export-only", "--set", f"run_name={run_dir.name}"])
    return spawn_detached(run_dir, cmd)
