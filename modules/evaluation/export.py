"""Write one checkpoint of a run (the best-scored, or a chosen step) into a folder of its own:
the model's interchange files (jik876 ``g_`` + ``config.json``, tortoise ``_gpt.pth``) and
``scores.json`` with the step's scores, so the folder is everything another tool needs."""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modules.errors import UserError
from modules.evaluation.best import ScoredStep, best_of, run_verdict
from modules.fileutil import atomic_replace, atomic_write_json, read_json_dict
from modules.trainer import exports
from modules.trainer.runfolder import RunPaths, list_states

_STEP_TAG = re.compile(r"\d{8}")


@dataclass
class ExportResult:
    step: int
    out_dir: Path
    files: list[Path]
    scores: dict[str, Any]
    note: str = ""


def exported_steps(run_dir: Path) -> set[int]:
    """Steps whose interchange files are all present in ``checkpoints/``."""
    ckpt = RunPaths(Path(run_dir)).checkpoints
    record = (read_json_dict(ckpt / exports.RECORD) or {}).get("exports", {})
    return {int(s) for s in record if not exports.missing(ckpt, int(s))}


def checkpoint_steps(run_dir: Path) -> set[int]:
    """Steps a checkpoint can be written for: exported ones and those with a training state."""
    return exported_steps(run_dir) | {s.step for s in list_states(run_dir)}


def choose_step(run_dir: Path, step: int | None, best: bool) -> tuple[int, ScoredStep | None, str]:
    """The step to export, its scores (None when unscored) and a note when the best has no files."""
    verdict = run_verdict(run_dir)
    have = checkpoint_steps(run_dir)
    by_step = {s.step: s for s in verdict.series}
    if best:
        if not verdict.series:
            raise UserError(f"{run_dir}: no validation step is scored yet; run "
                            f"python -m modules evaluate {run_dir} (or train with evaluation.enabled: true)")
        pick = best_of(verdict.series, have)
        if pick is None:
            raise UserError(f"{run_dir}: the scored steps ({', '.join(str(s.step) for s in verdict.series)}) "
                            "have no checkpoint left (their exports and states were pruned)")
        note = ""
        if verdict.best is not None and verdict.best.step != pick.step:
            note = (f"the best-scored step {verdict.best.step} has no files left; exported the best of the "
                    f"remaining ones, step {pick.step}")
        return pick.step, pick, note
    if step is None:
        raise UserError("say which checkpoint: --best or --step N")
    if step not in have:
        raise UserError(f"{run_dir}: step {step} has no export and no state; steps with files: "
                        f"{', '.join(str(s) for s in sorted(have)) or 'none'}")
    return step, by_step.get(step), ""


def export_from_state(workspace: Any, run_dir: Path, step: int, out_dir: Path) -> list[Path]:
    """The recipe's interchange files of ``step`` written from its training state into ``out_dir``.

    Only reads the run: no resume, so newer states, metrics and exports stay as they are (the
    trainer's ``--export-only`` resumes, which sets newer states aside). On the CPU, in this process."""
    import torch

    from modules import model_registry
    from modules.config.schema import load_config
    from modules.trainer.state import load_state

    paths = RunPaths(Path(run_dir))
    config = load_config(paths.config)
    state = load_state(paths.state_file(step))
    recipe = model_registry.get(config.model).recipe_class()(config, workspace.inside(config.dataset),
                                                             torch.device("cpu"), Path(workspace.root))
    models = recipe.build_models()
    for name, weights in state.models.items():
        models[name].load_state_dict(weights)
    optimizers = {}
    for name, groups in recipe.optimizer_params(models).items():
        optimizers[name] = recipe.build_optimizer(name, groups)
        if name in state.optimizers:
            optimizers[name].load_state_dict(state.optimizers[name])
    out_dir.mkdir(parents=True, exist_ok=True)
    return [Path(p) for p in recipe.export(models, optimizers, step, int(state.data.get("epoch", 0)), out_dir)]


def step_files(run_dir: Path, step: int) -> list[Path]:
    """The step's recorded export files plus the shared untagged ones beside them (``config.json``)."""
    ckpt = RunPaths(Path(run_dir)).checkpoints
    names = (read_json_dict(ckpt / exports.RECORD) or {}).get("exports", {}).get(str(step), [])
    shared = [p for p in ckpt.iterdir() if p.is_file() and p.name != exports.RECORD
              and not p.name.startswith(".") and not _STEP_TAG.search(p.name)]
    return [ckpt / n for n in names] + sorted(shared)


def export_checkpoint(workspace: Any, run_dir: Path, out_dir: Path, *, step: int | None = None,
                      best: bool = False) -> ExportResult:
    """``step`` wins over ``best`` when both are given (the UI picks the step once, then exports it)."""
    """Copy the chosen checkpoint's files into ``out_dir`` with ``scores.json`` (see the module doc)."""
    from modules.evaluation.best import run_options

    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise UserError(f"{run_dir}: not a run folder (no config.yaml); give training/DATASET/runs/RUN")
    chosen, scored, note = choose_step(run_dir, step, best and step is None)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if chosen in exported_steps(run_dir):
        written = []
        for src in step_files(run_dir, chosen):
            with atomic_replace(out_dir / src.name) as dst, open(src, "rb") as fh:
                shutil.copyfileobj(fh, dst, 1 << 20)
            written.append(out_dir / src.name)
    else:  # pruned (or never written): from the step's state, without touching the run
        written = export_from_state(workspace, run_dir, chosen, out_dir)
    options, _ = run_options(run_dir)
    refs = read_json_dict(run_dir / "evaluation" / "references.json") or {}
    scores = {"step": chosen, "run": str(run_dir),
              "val_wer": scored.wer if scored else None, "val_speaker_sim": scored.speaker_sim if scored else None,
              "score": scored.score if scored else None,
              "formula": f"{options.speaker_weight} x val_speaker_sim - {options.wer_weight} x min(val_wer, 1)",
              "speaker_sim_ceiling": refs.get("speaker_sim_ceiling"), "wer_floor": refs.get("wer_floor"),
              "files": [p.name for p in written]}
    written.append(atomic_write_json(out_dir / "scores.json", scores))
    return ExportResult(chosen, out_dir, written, scores, note)


def write_onnx(workspace: Any, run_dir: Path, step: int | None, out_dir: Path | None) -> Path:
    """The HiFi-GAN generator of ``step`` (default: the newest with files) as ``g_STEP.onnx`` in
    ``out_dir`` (default: the run's ``checkpoints/``), with ``config.json`` beside it."""
    from modules.config.schema import load_config
    from modules.hifigan import load_generator_with_config
    from modules.hifigan.onnx_engine import export_onnx

    run_dir = Path(run_dir)
    if load_config(RunPaths(run_dir).config).model != "hifigan":
        raise UserError(f"{run_dir}: --onnx exports HiFi-GAN generators; this run trains another model")
    have = checkpoint_steps(run_dir)
    step = max(have) if step is None and have else step
    if step is None:
        raise UserError(f"{run_dir}: no checkpoint yet (no export and no state)")
    paths = RunPaths(run_dir)
    source = paths.checkpoints / f"g_{step:08d}"
    if not source.is_file():
        source = paths.state_file(step)
    generator, h = load_generator_with_config(source, None, "cpu")
    out_dir = Path(out_dir) if out_dir is not None else paths.checkpoints
    return export_onnx(generator.remove_weight_norm(), h, out_dir / f"g_{step:08d}.onnx")

