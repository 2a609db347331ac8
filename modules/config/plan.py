"""What a config will do, before it runs: the UI's "Validate" and the CLI's summary.

``plan_run(config, workspace)`` reads the dataset lists (cheap: text files and
wav headers), computes steps per epoch, total steps, the global batch and the
learning-rate curve with the trainer's own formulas, and lists warnings, each
with a fix. No torch import unless ``gpus_available`` is left to detection
and torch is already imported, or a recipe registers a base-model checker.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modules import model_registry as registry
from modules.config.schema import TrainConfig
from modules.model_spec import load_ref
from modules.trainer.schedules import lr_curve, steps_per_epoch, total_steps


@dataclass
class PlanWarning:
    """One problem: ``key`` the config key involved ('' when none), ``message``, and ``fix``."""

    key: str
    message: str
    fix: str
    level: str = "warning"  # warning | error (error: the run cannot start)

    def __str__(self) -> str:
        return f"{self.level}: {self.message} Fix: {self.fix}"


@dataclass
class RunPlan:
    train_items: int
    validation_items: int
    world_size: int
    steps_per_epoch: int
    total_steps: int
    global_batch: int
    epochs_run: float  # epochs the run will really cover (max_steps may cut it short)
    lr_points: list[tuple[int, float]] = field(default_factory=list)
    warnings: list[PlanWarning] = field(default_factory=list)
    precision: str = ""  # what the config's precision means on this machine ("fp32 (auto)", "bf16")

    @property
    def ok(self) -> bool:
        return not any(w.level == "error" for w in self.warnings)

    def summary(self) -> str:
        lines = [
            f"train clips {self.train_items}, validation clips {self.validation_items}",
            f"processes {self.world_size}, global batch {self.global_batch}",
            f"steps per epoch {self.steps_per_epoch}, total steps {self.total_steps} "
            f"({self.epochs_run:.2f} epochs)",
        ]
        if self.precision:
            lines.append(f"precision {self.precision} on this machine")
        lines += [str(w) for w in self.warnings]
        return "\n".join(lines)


def count_list(path: Path) -> int:
    """Non-empty lines of a ``train.txt``/``validation.txt`` (0 when missing)."""
    try:
        with open(path, encoding="utf-8") as fh:
            return sum(1 for line in fh if line.strip())
    except OSError:
        return 0


def list_files(path: Path) -> list[str]:
    try:
        with open(path, encoding="utf-8") as fh:
            return [line.split("|", 1)[0].strip() for line in fh if line.strip()]
    except OSError:
        return []


def detect_gpus() -> int:
    """CUDA devices present; 0 without torch loaded or without CUDA (keeps the UI light)."""
    torch = sys.modules.get("torch")
    if torch is None:
        try:
            import torch  # noqa: F811
        except ImportError:
            return 0
    try:
        return int(torch.cuda.device_count())
    except Exception:  # noqa: BLE001 - a broken driver reads as "no GPU"
        return 0


def world_size_of(config: TrainConfig, gpus: int | None = None) -> int:
    """Processes the trainer will run: ``--gpus`` or ``config.gpus``, at least 1."""
    n = config.gpus if gpus is None else gpus
    return max(1, int(n))


def plan_run(config: TrainConfig, workspace: Any, gpus_available: int | None = None,
             gpus: int | None = None) -> RunPlan:
    """Compute the run's figures and warnings. ``workspace`` is a ``Workspace`` (or its root path)."""
    root = Path(workspace) if isinstance(workspace, (str, os.PathLike)) else Path(workspace.root)
    warnings: list[PlanWarning] = []
    world = world_size_of(config, gpus)

    dataset_dir = resolve_in(root, config.dataset)
    if dataset_dir is None:
        warnings.append(PlanWarning("dataset", f"dataset {config.dataset!r} is outside the workspace {root}.",
                                    "use a folder under training/, e.g. training/NAME", "error"))
        dataset_dir = root / "training" / "__missing__"
    n_train = count_list(dataset_dir / "train.txt")
    n_val = count_list(dataset_dir / "validation.txt")
    if not (dataset_dir / "train.txt").is_file():
        warnings.append(PlanWarning("dataset", f"{config.dataset}/train.txt does not exist.",
                                    "prepare the dataset first (Prepare tab or `python -m modules prepare VOICE`)",
                                    "error"))
    elif n_train == 0:
        warnings.append(PlanWarning("dataset", f"{config.dataset}/train.txt is empty.",
                                    "prepare the dataset again with looser length limits", "error"))

    spe = steps_per_epoch(n_train, config.batch_size, config.grad_accumulation, world)
    total = total_steps(config.epochs, spe, config.max_steps)
    gb = config.batch_size * config.grad_accumulation * world
    plan = RunPlan(n_train, n_val, world, spe, total, gb, total / spe if spe else 0.0, warnings=warnings)
    from modules.trainer.precision import describe as precision_name

    on_gpu = bool(config.gpus) and (detect_gpus() if gpus_available is None else gpus_available) > 0
    plan.precision = precision_name(config.precision, "cuda" if on_gpu else "cpu")

    if n_train and spe == 0:
        per_rank = -(-n_train // world)
        best = max(1, per_rank // config.grad_accumulation)
        warnings.append(PlanWarning(
            "batch_size", f"the global batch ({gb} = batch {config.batch_size} x accumulation "
            f"{config.grad_accumulation} x {world} process(es)) is larger than the dataset ({n_train} clips): "
            "no step can run.",
            f"lower batch_size to {min(best, config.batch_size)} or lower grad_accumulation", "error"))
    elif n_train:
        per_rank = -(-n_train // world)
        micro = per_rank // config.batch_size
        dropped = per_rank - spe * config.grad_accumulation * config.batch_size
        if micro % config.grad_accumulation:
            warnings.append(PlanWarning(
                "grad_accumulation", f"grad_accumulation {config.grad_accumulation} does not divide the "
                f"{micro} micro-batches of an epoch: {dropped} clip(s) per process are left out of every epoch.",
                f"use a grad_accumulation that divides {micro}, or change batch_size"))
        elif dropped and dropped * 5 > per_rank:
            warnings.append(PlanWarning(
                "batch_size", f"{dropped} of {per_rank} clips per process do not fill a batch and are left out "
                "of every epoch (a different random subset each epoch).",
                "choose a batch_size that divides the number of clips"))
    if n_train and world > 1 and n_train % world:
        warnings.append(PlanWarning("gpus", f"{n_train} clips do not split evenly over {world} processes; "
                                    "some clips repeat in an epoch.", "ignore, or use a process count that divides "
                                    "the clip count"))

    _manifest_warnings(dataset_dir, warnings)
    _schedule_warnings(config, spe, total, warnings)
    _frequency_warnings(config, spe, total, n_val, warnings)
    _gpu_warnings(config, world, gpus_available, warnings)
    _compile_warnings(config, on_gpu, warnings)
    _base_warnings(config, root, warnings)
    from modules.evaluation.checks import evaluation_warnings

    warnings.extend(PlanWarning(k, m, f) for k, m, f in evaluation_warnings(config, root, dataset_dir))
    spec = registry.get(config.model)
    if spec.plan_checks:
        warnings.extend(load_ref(spec.plan_checks)(config, root, dataset_dir))
    if config.num_workers > (os.cpu_count() or 1):
        warnings.append(PlanWarning("num_workers", f"num_workers {config.num_workers} is above the "
                                    f"{os.cpu_count()} CPU cores.", f"set num_workers to {os.cpu_count()} or less"))
    if total:
        plan.lr_points = lr_curve(config.lr_schedule, config.learning_rate, spe, total)
    return plan


def validate_config(config: TrainConfig, workspace: Any, gpus_available: int | None = None) -> list[PlanWarning]:
    """Only the warnings of ``plan_run`` (each has ``message`` and ``fix``)."""
    return plan_run(config, workspace, gpus_available).warnings


def resolve_in(root: Path, rel: str) -> Path | None:
    p = Path(rel).expanduser()
    p = (p if p.is_absolute() else root / p).resolve()
    root = root.resolve()
    return p if p == root or root in p.parents else None


def _schedule_warnings(c: TrainConfig, spe: int, total: int, out: list[PlanWarning]) -> None:
    s = c.lr_schedule
    last_epoch = (total + spe - 1) // spe if spe else c.epochs
    if s.type == "multistep":
        late = [m for m in s.milestones if m >= last_epoch]
        if late:
            out.append(PlanWarning("lr_schedule.milestones", f"milestones {late} are at or past the last epoch "
                                   f"({last_epoch}): they never lower the rate.",
                                   f"use milestones below {last_epoch} or raise epochs"))
        if not s.milestones:
            out.append(PlanWarning("lr_schedule.milestones", "multistep schedule without milestones keeps the "
                                   "rate constant.", "add milestones (epochs) or use type: constant"))
    if s.type == "cosine" and s.cycle_epochs and spe and s.cycle_epochs * spe > total:
        out.append(PlanWarning("lr_schedule.cycle_epochs", f"the cosine cycle ({s.cycle_epochs} epochs) is longer "
                               "than the run: the rate never reaches its minimum.",
                               "lower cycle_epochs or set it to 0 (one cycle over the run)"))
    if s.warmup_steps and total and s.warmup_steps >= total:
        out.append(PlanWarning("lr_schedule.warmup_steps", f"warm-up ({s.warmup_steps} steps) covers the whole run "
                               f"({total} steps).", f"use fewer warm-up steps than {total}"))


def _frequency_warnings(c: TrainConfig, spe: int, total: int, n_val: int, out: list[PlanWarning]) -> None:
    if not total:
        return
    if c.validate_every_steps is None and c.validate_every_epochs is None:
        out.append(PlanWarning("validate_every_steps", "validation is off: no validation loss or audio.",
                               "set validate_every_steps or validate_every_epochs"))
    elif n_val == 0:
        out.append(PlanWarning("validate_every_steps", "validation.txt is empty: validation will be skipped.",
                               "prepare the dataset with a validation split"))
    elif (c.validate_every_steps or 10**12) > total and (c.validate_every_epochs or 10**12) * spe > total:
        out.append(PlanWarning("validate_every_steps", f"validation is due after the last step ({total}): it "
                               "will only run at the end.", f"validate more often than every {total} steps"))
    if (c.save_every_steps or 10**12) > total and (c.save_every_epochs or 10**12) * spe > total:
        out.append(PlanWarning("save_every_steps", f"no state is saved before the end of the run ({total} steps); "
                               "a crash loses everything.", f"set save_every_steps below {total}"))
    if c.log_every_steps > total:
        out.append(PlanWarning("log_every_steps", f"logging every {c.log_every_steps} steps shows no curve in a "
                               f"{total}-step run.", f"set log_every_steps below {total}"))


def _gpu_warnings(c: TrainConfig, world: int, present: int | None, out: list[PlanWarning]) -> None:
    if c.gpus == 0:
        if c.precision == "fp16":
            out.append(PlanWarning("precision", "fp16 on the CPU is slow and poorly supported.",
                                   "use fp32 or bf16 on the CPU"))
        return
    present = detect_gpus() if present is None else present
    if present and world > present:
        out.append(PlanWarning("gpus", f"gpus {world} is above the {present} GPU(s) present.",
                               f"set gpus to {present} or less", "error"))
    if not present:
        if world > 1:
            out.append(PlanWarning("gpus", f"no GPU present: {world} processes will share the CPU (gloo).",
                                   "set gpus: 1 (or 0) on a machine without a GPU"))
        if c.precision == "fp16":
            out.append(PlanWarning("precision", "fp16 without a GPU is slow and poorly supported.",
                                   "use fp32 or bf16 on the CPU"))


def _compile_warnings(c: TrainConfig, on_gpu: bool, out: list[PlanWarning]) -> None:
    if c.compile == "none":
        return
    if not registry.get(c.model).recipe_class().compile_targets:
        out.append(PlanWarning("compile", f"the {c.model} recipe names no network to compile: compile "
                               f"{c.compile} trains eagerly.", "set compile: none"))
    elif c.compile == "graphs" and not on_gpu:
        out.append(PlanWarning("compile", "CUDA graphs need a GPU: compile graphs runs as default here.",
                               "set compile: default on the CPU"))
    elif c.compile == "graphs" and c.grad_accumulation > 1:
        out.append(PlanWarning("compile", "CUDA graphs cannot accumulate gradients over micro-steps (a replay "
                               "overwrites them): compile graphs runs as default with grad_accumulation "
                               f"{c.grad_accumulation}.", "set grad_accumulation: 1 and a larger batch_size"))


def _base_warnings(c: TrainConfig, root: Path, out: list[PlanWarning]) -> None:
    if not c.base:
        return
    path = resolve_in(root, c.base)
    if path is None:
        out.append(PlanWarning("base", f"base {c.base!r} is outside the workspace.",
                               "copy the checkpoint under models/ and point base at it", "error"))
        return
    if not path.exists():
        out.append(PlanWarning("base", f"base {c.base} does not exist.",
                               "pick a file under models/ or an earlier run's checkpoint", "error"))
        return
    spec = registry.get(c.model)
    if not spec.base_check:
        return
    checker = load_ref(spec.base_check)
    try:
        problems = checker(c, path)
    except Exception as exc:  # noqa: BLE001 - an unreadable file is a finding of Validate, not a crash
        out.append(PlanWarning("base", f"base {c.base} is not a checkpoint this model can read ({exc}).",
                               "point base at a checkpoint of this model (models/, or an earlier run's "
                               "checkpoints/ or states/)", "error"))
        return
    for p in problems or []:
        out.append(PlanWarning("base", str(p), "pick a base that matches the preset, or change the preset "
                               "to the base's sizes", "error"))


def wav_stats(dataset_dir: Path, files: list[str], segment: int) -> tuple[int | None, int]:
    """(sample rate of the first readable clip, clips shorter than ``segment``) from wav headers."""
    try:
        import soundfile as sf
    except ImportError:
        return None, 0
    rate, short = None, 0
    for f in files:
        try:
            info = sf.info(str(dataset_dir / f))
        except Exception:  # noqa: BLE001 - unreadable clips are the prepare step's report
            continue
        rate = rate or info.samplerate
        short += info.frames < segment
    return rate, short


def _manifest_warnings(dataset_dir: Path, out: list[PlanWarning]) -> None:
    """Every line of the dataset lists: clips that are missing, empty or unreadable (training would
    stop on them) and clips at another sample rate than most (resampled when loaded: a note)."""
    try:
        import soundfile as sf
    except ImportError:
        return
    bad: dict[str, list[str]] = {"missing": [], "empty": [], "unreadable": []}
    rates: dict[int, list[str]] = {}
    for name in ("train.txt", "validation.txt"):
        for rel in list_files(dataset_dir / name):
            path = dataset_dir / rel
            if not path.is_file():
                bad["missing"].append(f"{name}: {rel}")
                continue
            if path.stat().st_size == 0:
                bad["empty"].append(f"{name}: {rel}")
                continue
            try:
                info = sf.info(str(path))
            except Exception:  # noqa: BLE001 - whatever libsndfile cannot open
                bad["unreadable"].append(f"{name}: {rel}")
                continue
            if info.frames == 0:
                bad["empty"].append(f"{name}: {rel}")
                continue
            rates.setdefault(int(info.samplerate), []).append(rel)
    for kind, items in bad.items():
        if items:
            out.append(PlanWarning("dataset", f"{len(items)} clip(s) of the lists are {kind} "
                                   f"(first: {', '.join(items[:3])}); training stops on them.",
                                   "prepare the dataset again, or remove those lines in the Prepare tab's editor",
                                   "error"))
    if len(rates) > 1:
        main = max(rates, key=lambda r: len(rates[r]))
        others = sorted((r for r in rates if r != main), key=lambda r: -len(rates[r]))
        first = rates[others[0]][0]
        n = sum(len(rates[r]) for r in others)
        out.append(PlanWarning("dataset", f"{n} clip(s) are not at {main} Hz like the others (e.g. {first} at "
                               f"{others[0]} Hz); they are resampled when loaded, and upsampled clips lack the "
                               "high frequencies.", "prepare the dataset again with one --sample-rate"))
