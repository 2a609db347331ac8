"""Settings derived from the data and the hardware (``config MODEL --auto``, the form's Auto button).

What is derived, each with one line saying why:
- the length of the run from the dataset's clip count and duration and the model's known-good
  fine-tune budget (``ModelSpec.auto_budget``: epochs or steps);
- validation about 30 times per run, a state every third validation, warm-up from the budget;
- the batch: on a GPU the largest that fits (the fit check's search, capped by the model's usual
  batch and the dataset), on the CPU a conservative small batch;
- ``precision: auto`` (bf16 / fp16 / fp32 by device, resolved when the run starts).
Values the user sets explicitly (``--set``) are applied afterwards and win.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

VALIDATIONS_PER_RUN = 30
VALIDATIONS_PER_STATE = 3


@dataclass(frozen=True)
class Derived:
    key: str
    value: Any
    why: str

    def line(self) -> str:
        return f"{self.key} = {self.value}: {self.why}"


@dataclass(frozen=True)
class DatasetStats:
    clips: int
    seconds: float


def dataset_stats(dataset_dir: Any) -> DatasetStats:
    """Training clips and their total duration (``dataset.json`` totals, else the audio headers)."""
    from pathlib import Path

    from modules.config.plan import count_list, list_files
    from modules.fileutil import read_json_dict

    dataset_dir = Path(dataset_dir)
    clips = count_list(dataset_dir / "train.txt")
    meta = read_json_dict(dataset_dir / "dataset.json") or {}
    seconds = float((meta.get("totals") or {}).get("seconds") or 0.0)
    if not seconds and clips:
        import soundfile as sf

        for rel in list_files(dataset_dir / "train.txt"):
            try:
                seconds += sf.info(str(dataset_dir / rel)).duration
            except Exception:  # noqa: BLE001 - an unreadable clip is Validate's business
                continue
    return DatasetStats(clips, seconds)


def _batch(config: Any, workspace: Any, stats: DatasetStats, usual: int, cpu: int) -> Derived:
    import torch

    if torch.cuda.is_available() and config.gpus:
        from modules.config.schema import apply_overrides
        from modules.trainer.fit import fit_check

        start = max(1, min(int(config.batch_size), usual, stats.clips))  # a batch the dataset can fill
        result = fit_check(apply_overrides(config, [f"batch_size={start}"]), workspace, search=True, device="cuda")
        if not result.largest_batch:
            return Derived("batch_size", 1, "not even batch 1 fits this GPU in a dry run: lower segment_size or "
                                            "the model size; batch 1 is set so the run can be tried")
        largest = result.largest_batch
        batch = max(1, min(largest, usual, stats.clips))
        return Derived("batch_size", batch, f"the largest batch that fits this GPU is {largest} (a dry run), "
                                            f"capped at the model's usual {usual} and the {stats.clips} clips")
    batch = max(1, min(cpu, stats.clips))
    return Derived("batch_size", batch, f"no GPU: a small CPU batch ({cpu}), at most the {stats.clips} clips")


def derive(config: Any, workspace: Any, explicit: set[str] | frozenset[str] = frozenset()) -> list[Derived]:
    """The derived settings of ``config`` (see the module docstring); nothing is applied here. Keys in
    ``explicit`` (what the user set) are not derived: their values in ``config`` are used instead."""
    from modules import model_registry
    from modules.model_spec import load_ref
    from modules.trainer.schedules import steps_per_epoch, total_steps

    spec = model_registry.get(config.model)
    stats = dataset_stats(workspace.inside(config.dataset))
    if not stats.clips:
        from modules.errors import UserError

        raise UserError(f"{config.dataset}: no training clips; prepare the dataset before deriving settings")
    budget = load_ref(spec.auto_budget)(stats) if spec.auto_budget else {}
    out = [] if "batch_size" in explicit else [
        _batch(config, workspace, stats, int(budget.get("usual_batch", 16)), int(budget.get("cpu_batch", 2)))]
    batch = int(out[0].value) if out else int(config.batch_size)
    spe = steps_per_epoch(stats.clips, batch, int(config.grad_accumulation), max(1, int(config.gpus)))
    minutes = stats.seconds / 60
    about = f"{stats.clips} clips, {minutes:.1f} min of audio"
    if "epochs" in explicit or "max_steps" in explicit:  # the user fixed the length: cadence follows it
        total = total_steps(int(config.epochs), spe, config.max_steps)
    elif "epochs" in budget:
        epochs = int(budget["epochs"])
        out.append(Derived("epochs", epochs, f"{budget['why']} ({about})"))
        out.append(Derived("max_steps", None, "the epochs decide the length"))
        total = total_steps(epochs, spe, None)
    else:
        total = int(budget.get("steps", 1000))
        out.append(Derived("max_steps", total, f"{budget.get('why', 'a default budget')} ({about})"))
        out.append(Derived("epochs", max(1, -(-total // max(spe, 1))), f"enough epochs for {total} steps "
                                                                        f"at {spe} steps per epoch"))
    every = max(1, round(total / VALIDATIONS_PER_RUN))
    out.append(Derived("validate_every_steps", every, f"about {VALIDATIONS_PER_RUN} validations in {total} steps"))
    out.append(Derived("validate_every_epochs", None, "validation is counted in steps"))
    out.append(Derived("save_every_steps", every * VALIDATIONS_PER_STATE,
                       f"a state every {VALIDATIONS_PER_STATE} validations"))
    out.append(Derived("save_every_epochs", None, "states are counted in steps"))
    warmup = int(min(budget.get("warmup_cap", 0), round(total * budget.get("warmup_fraction", 0.0))))
    out.append(Derived("lr_schedule.warmup_steps", warmup, budget.get("warmup_why", "no warm-up for this model")))
    out.append(Derived("precision", "auto", "bf16 on GPUs that have it, fp16 on older CUDA GPUs, fp32 on the CPU"))
    return [d for d in out if d.key not in explicit]


def apply(config: Any, derived: list[Derived]) -> Any:
    """``config`` with the derived values set (through the schema, so they are validated)."""
    import json

    from modules.config.schema import apply_overrides

    return apply_overrides(config, [f"{d.key}={json.dumps(d.value)}"
                                    for d in derived])
