"""Find configs, runs, states and checkpoints in a workspace by reading the folders on disk."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from modules import model_registry as registry
from modules.errors import UserError

# the state list is the trainer's own (torch-free) run-folder code; re-exported here for the UI
from modules.trainer.runfolder import RunPaths, StateInfo, list_states, run_dir_for  # noqa: F401
from modules.workspace import Workspace


def list_configs(ws: Workspace) -> list[Path]:
    """Every saved config ``training/*/configs/*.yaml``, sorted by dataset then name."""
    return sorted(p for p in ws.training.glob("*/configs/*.yaml") if p.is_file())


def config_label(ws: Workspace, path: Path) -> str:
    """``NAME/configs/CONFIG.yaml`` relative to ``training/`` (what dropdowns show)."""
    try:
        return str(Path(path).resolve().relative_to(ws.training))
    except ValueError:
        return str(path)


def read_config_yaml(path: Path) -> dict[str, Any]:
    """The raw mapping of a config YAML (``safe_load``), with a clear error for a broken file."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise UserError(f"{path}: config file not found; save one in the Configure tab first") from exc
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not valid YAML ({exc}); "
                        "fix the file or save it again from the Configure tab") from exc
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping of config keys at the top level")
    return data


def run_dir_for_config(ws: Workspace, config_path: Path) -> Path:
    """``training/NAME/runs/RUN`` for a config file, by the trainer's own rule (``runfolder.run_dir_for``)."""
    config_path = ws.inside(config_path)
    data = read_config_yaml(config_path)
    dataset = data.get("dataset")
    dataset_dir = ws.inside(dataset) if dataset else config_path.parent.parent
    return run_dir_for(dataset_dir, config_path, data.get("run_name"))


def list_runs(ws: Workspace) -> list[Path]:
    """Every run folder ``training/*/runs/*``, most recently updated first."""
    runs = [p for p in ws.training.glob("*/runs/*") if p.is_dir() and not p.name.startswith(".")]
    return sorted(runs, key=_run_mtime, reverse=True)


def _run_mtime(run: Path) -> float:
    paths = RunPaths(run)
    for f in (paths.status, paths.metrics, paths.config):
        if f.exists():
            return f.stat().st_mtime
    return run.stat().st_mtime


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Exported checkpoints of a run (each model's spec names its files: jik876 ``g_XXXXXXXX``,
    tortoise ``XXXXXXXX_gpt.pth``), newest first."""
    ck = RunPaths(Path(run_dir)).checkpoints
    if not ck.is_dir():
        return []
    patterns = [re.compile(s.ui.checkpoint_pattern) for s in registry.all_specs() if s.ui.checkpoint_pattern]
    found = []
    for p in ck.iterdir():
        m = next((m for m in (pat.match(p.name) for pat in patterns) if m), None)
        if m and p.is_file():
            found.append((int(m.group(1)), p))
    return [p for _, p in sorted(found, reverse=True)]


def list_base_models(ws: Workspace, model: str) -> list[str]:
    """Base-model candidates as workspace-relative paths: the model's files under ``models/`` (its
    spec says which folder and files), then exported checkpoints of earlier runs of that model."""
    spec = registry.get(model)
    out: list[str] = []
    folder = ws.models / (spec.ui.base_folder or model)
    if folder.is_dir():
        for p in sorted(folder.rglob("*")):
            if p.is_file() and (spec.ui.base_file(p) if spec.ui.base_file else True):
                out.append(ws.relative(p))
    own = re.compile(spec.ui.checkpoint_pattern) if spec.ui.checkpoint_pattern else None
    for run in list_runs(ws):
        if _run_model(run) not in (None, model):
            continue
        out.extend(ws.relative(p) for p in list_checkpoints(run) if own is not None and own.match(p.name))
    return out


def _run_model(run: Path) -> str | None:
    try:
        return read_config_yaml(RunPaths(run).config).get("model")
    except UserError:
        return None
