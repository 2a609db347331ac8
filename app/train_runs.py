"""Run lookups for the Run Training tab: configs, their run folders, resumable states, sample steps.

Everything is read from the workspace on each call (the disk is the truth), so these helpers hold no
state and are testable without a browser.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modules import run_manager as runs
from modules.errors import UserError
from modules.trainer.runfolder import RunPaths
from modules.workspace import Workspace

LATEST = "latest"
FRESH = ""


def config_choices(ws: Workspace) -> list[str]:
    """Saved configs as ``NAME/configs/CONFIG.yaml`` (relative to ``training/``)."""
    return [runs.config_label(ws, p) for p in runs.list_configs(ws)]


def config_path(ws: Workspace, label: str) -> Path:
    """The config file of a dropdown label (inside ``training/``)."""
    if not label:
        raise UserError("pick a config first (save one in the Generate Configuration tab)")
    return ws.inside(ws.training / label)


def run_dir_of(ws: Workspace, label: str) -> Path | None:
    """The run folder a config trains into (None when no config or it cannot be read)."""
    try:
        return runs.run_dir_for_config(ws, config_path(ws, label))
    except (UserError, ValueError, OSError):
        return None


def resume_choices(ws: Workspace, run_dir: Path | None) -> list[tuple[str, str]]:
    """"start fresh" first, then the run's states newest first with step, epoch, val loss, time."""
    from app.evaluation_view import best_step, mark_best

    out = [("start fresh", FRESH)]
    if run_dir is None:
        return out
    best = best_step(run_dir)
    for s in runs.list_states(run_dir):
        out.append((mark_best(s.label(), s.step, best), rel_path(ws, s.path)))
    return out


def active_config(ws: Workspace) -> str | None:
    """The config of a run that is training now (reconnect on page load), else None."""
    for label in config_choices(ws):
        run_dir = run_dir_of(ws, label)
        if run_dir is not None and run_dir.is_dir() and runs.run_status(run_dir).active:
            return label
    return None


def runs_table(ws: Workspace) -> list[list[Any]]:
    """Rows of the runs list: run, model, state, step, states, last metrics, best step, command."""
    from app.evaluation_view import best_step, best_summary

    rows = []
    for run_dir in runs.list_runs(ws):
        s = runs.run_summary(ws, run_dir)
        rows.append([s["path"], s["model"], s["state"], s["step"], s["states"], s["last train"],
                     s["last validation"], best_summary(best_step(run_dir)), s["command"]])
    return rows


RUNS_HEADERS = ["run folder", "model", "state", "step", "states", "last train metrics", "last validation",
                "best (scored)", "command"]


def sample_step_choices(run_dir: Path | None) -> list[tuple[str, str]]:
    """"latest" first, then every step that wrote validation audio, newest first."""
    steps = runs.list_sample_steps(run_dir) if run_dir else []
    return [("latest", LATEST)] + [(f"step {s}", str(s)) for s in steps]


def resolve_sample_step(run_dir: Path | None, choice: str | None) -> int | None:
    """The sample step a pick means: the picked one while it exists, else the newest (None: no samples)."""
    steps = runs.list_sample_steps(run_dir) if run_dir else []
    if not steps:
        return None
    if choice and choice != LATEST and choice.isdigit() and int(choice) in steps:
        return int(choice)
    return steps[0]


def run_model(run_dir: Path | None) -> str | None:
    """The model type of a run (from its config.yaml), None when unknown."""
    if run_dir is None:
        return None
    try:
        return runs.read_config_yaml(RunPaths(run_dir).config).get("model")
    except UserError:
        return None


def rel_path(ws: Workspace, p: Path) -> str:
    """``p`` as the dropdowns show it (``Workspace.relative``)."""
    return ws.relative(p)
