"""Training states: everything needed to continue a run bit-exactly.

A state file ``states/step_XXXXXXXX.pt`` is a dict::

    format: "voicetune-state-1", recipe, step, epoch, step_in_epoch, steps_per_epoch,
    world_size, time, elapsed, config (dict), config_hash,
    models {name: state_dict of the plain module}, optimizers {name: state_dict},
    schedulers {name: state_dict}, scalers {name: state_dict} (fp16 only),
    rng [per rank: {python, numpy, torch, cuda}], recipe_state (Recipe.state_dict() when defined),
    train_loss, val_loss

``epoch``/``step_in_epoch`` are the position of the *next* step: a state saved
after the last step of epoch 3 says epoch 4, step_in_epoch 0. It is written to a
temp file and renamed; the sidecar ``.json`` is written after it, and the
newest ``keep`` states are kept.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from modules.errors import UserError
from modules.fileutil import atomic_torch_save, atomic_write_json
from modules.trainer.runfolder import STATE_RE, list_states

STATE_FORMAT = "voicetune-state-1"


def capture_rng() -> dict[str, Any]:
    """Every RNG this process uses (python, numpy, torch CPU and CUDA)."""
    out: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        out["cuda"] = torch.cuda.get_rng_state_all()
    return out


def restore_rng(rng: dict[str, Any]) -> None:
    random.setstate(_python_state(rng["python"]))
    np.random.set_state(rng["numpy"])
    torch.set_rng_state(rng["torch"].cpu() if hasattr(rng["torch"], "cpu") else rng["torch"])
    if rng.get("cuda") is not None and torch.cuda.is_available():
        states = rng["cuda"]
        if len(states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(states)


def _python_state(state: Any) -> tuple:
    # torch.load may give lists where random.setstate wants tuples
    version, internal, gauss = state
    return (version, tuple(internal), gauss)


def save_state(path: Path, state: dict[str, Any], keep: int, sidecar_epoch: float | None = None) -> Path:
    """Write ``state`` atomically with its sidecar, then prune to the newest ``keep`` states.

    The sidecar's ``epoch`` is ``sidecar_epoch`` (fractional epochs done) when given.
    """
    path = Path(path)
    state = {"format": STATE_FORMAT, **state}
    atomic_torch_save(state, path)
    atomic_write_json(path.with_suffix(".json"), {
        "step": state.get("step"),
        "epoch": state.get("epoch") if sidecar_epoch is None else sidecar_epoch,
        "time": state.get("time", time.time()),
        "train_loss": state.get("train_loss"),
        "val_loss": state.get("val_loss"),
    })
    prune_states(path.parent, keep)
    return path


def prune_states(states_dir: Path, keep: int) -> list[Path]:
    """Delete all but the newest ``keep`` states (and their sidecars); returns the deleted files."""
    removed = []
    for info in list_states(Path(states_dir).parent)[max(1, keep):]:
        # the sidecar first: a kill in between leaves a state without a sidecar (still a whole,
        # listed state) rather than a sidecar that describes nothing
        for p in (info.path.with_suffix(".json"), info.path):
            if p.exists():
                p.unlink()
                removed.append(p)
    return removed


def remove_orphan_sidecars(states_dir: Path) -> list[Path]:
    """Sidecars whose state is gone (left by a kill in an older version's pruning)."""
    removed = []
    for side in Path(states_dir).glob("step_*.json"):
        if not side.with_suffix(".pt").exists():
            side.unlink(missing_ok=True)
            removed.append(side)
    return removed


@dataclass
class TrainingState:
    """One loaded state file: the dict the core writes (see the module docstring) and where it came from."""

    path: Path
    data: dict[str, Any]

    @property
    def step(self) -> int:
        return int(self.data.get("step", 0))

    @property
    def recipe(self) -> str | None:
        return self.data.get("recipe")

    @property
    def config(self) -> dict[str, Any]:
        """The run's config as a plain dict ({} when the state has none)."""
        cfg = self.data.get("config")
        if isinstance(cfg, str):  # very old states stored the YAML text
            import yaml

            cfg = yaml.safe_load(cfg)
        return cfg if isinstance(cfg, dict) else {}

    @property
    def models(self) -> dict[str, dict[str, torch.Tensor]]:
        return self.data.get("models") or {}

    @property
    def optimizers(self) -> dict[str, dict[str, Any]]:
        return self.data.get("optimizers") or {}


def is_state(obj: Any) -> bool:
    """True for the dict of a Voicetune training state (any format version)."""
    return isinstance(obj, dict) and (obj.get("format") == STATE_FORMAT or
                                      ("models" in obj and "config_hash" in obj))


def load_state(path: str | Path, mmap: bool = True) -> TrainingState:
    """A state file, loaded once on the CPU (memory-mapped: weights are read only when used)."""
    return TrainingState(Path(path), read_state(Path(path), mmap=mmap))


def model_weights(state: TrainingState, name: str) -> dict[str, torch.Tensor]:
    """The state dict of model ``name`` (DDP/compile prefixes removed); UserError naming the file."""
    weights = state.models.get(name)
    if not isinstance(weights, dict):
        have = ", ".join(sorted(state.models)) or "none"
        raise UserError(f"{state.path}: this training state holds no {name!r} model (it has: {have}); "
                        "pick a state of a run of the right model")
    out = {}
    for key, value in weights.items():
        for prefix in ("module.", "_orig_mod."):
            key = key.removeprefix(prefix)
        out[key] = value
    return out


def read_state(path: Path, mmap: bool = False) -> dict[str, Any]:
    """Load one state file (CPU tensors); ``UserError`` naming the file when it is unreadable."""
    path = Path(path)
    try:
        try:
            data = torch.load(path, map_location="cpu", weights_only=False, mmap=mmap)
        except RuntimeError:
            if not mmap:
                raise
            data = torch.load(path, map_location="cpu", weights_only=False)  # a legacy (non-zip) file
    except FileNotFoundError:
        raise UserError(f"{path}: state file not found; pick one from the run's states/ folder") from None
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means a torn/corrupt file
        raise UserError(f"{path}: the state file is unreadable (truncated or corrupt: {type(exc).__name__}: "
                        f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
    if not is_state(data):
        raise UserError(f"{path}: not a Voicetune training state (resume takes files from a run's states/ folder)")
    return data


def resolve_resume(run_states: Path, resume: str, log: Any = print) -> tuple[Path, dict[str, Any]]:
    """Find and load the state for ``--resume latest|PATH``, falling back to older readable states.

    A truncated or corrupt file is reported (``log``) and the next older state
    of the same folder is tried; ``UserError`` when none is readable.
    """
    if resume == "latest":
        candidates = [s.path for s in list_states(Path(run_states).parent)]
        if not candidates:
            raise UserError(f"{run_states}: no saved state to resume; start without --resume")
    else:
        first = Path(resume)
        if not first.is_file():
            raise UserError(f"--resume {resume}: no such state file; use --resume latest or a states/step_X.pt path")
        if not STATE_RE.match(first.name):
            what = "a config file" if first.suffix.lower() in (".yaml", ".yml") else "not a training state"
            raise UserError(f"--resume {resume}: {what}; --resume takes `latest` or a run's states/step_XXXXXXXX.pt "
                            "(the config is the first argument of train)")
        older = []
        m = STATE_RE.match(first.name)
        if m:
            older = [s.path for s in list_states(first.parent) if s.step < int(m.group(1))]
        candidates = [first] + older
    errors = []
    for path in candidates:
        try:
            return path, read_state(path)
        except UserError as exc:
            errors.append(str(exc))
            log(f"warning: {exc}; trying the previous state")
    raise UserError("no readable state to resume from:\n  " + "\n  ".join(errors)
                    + "\nstart a fresh run (--fresh) or restore a state file")
