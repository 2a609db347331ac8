"""jik876 checkpoint interchange: ``g_XXXXXXXX``, ``do_XXXXXXXX`` and ``config.json``.

Users bring jik876 checkpoints and take ours to other tools, so we read and
write exactly that format: ``g_`` = ``{'generator': state_dict}``, ``do_`` =
``{'mpd', 'msd', 'optim_g', 'optim_d', 'steps', 'epoch'}``, ``config.json`` with
jik876's key names.
"""

from __future__ import annotations

import json
import pickle
import re
from pathlib import Path
from typing import Any, Mapping

import torch

from modules.errors import UserError
from modules.fileutil import atomic_torch_save, atomic_write_json

_PREFIXES = ("module.", "_orig_mod.")
MEL_KEYS = ("num_mels", "n_fft", "hop_size", "win_size", "sampling_rate", "fmin", "fmax", "fmax_for_loss")


def strip_prefixes(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop DDP (``module.``) and torch.compile (``_orig_mod.``) prefixes from state-dict keys."""
    out = {}
    for key, value in state.items():
        changed = True
        while changed:
            changed = False
            for p in _PREFIXES:
                if key.startswith(p):
                    key, changed = key[len(p):], True
        out[key] = value
    return out


def torch_load(path: str | Path) -> Any:
    """Load a checkpoint on the CPU, turning unreadable/truncated files into a UserError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: checkpoint not found")
    try:
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError:
            # our own training states also pickle RNG states (numpy arrays, python tuples)
            return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # truncated zip, pickle of foreign classes, not a torch file ...
        raise UserError(f"{path}: not a readable PyTorch checkpoint ({type(exc).__name__}: {exc}); "
                        "re-download or re-export it") from exc


def read_config(path: str | Path) -> dict[str, Any]:
    """Read a jik876 ``config.json`` (the key names of its ``config_v*.json``)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: config.json not found; "
                        "pass --config pointing to the checkpoint's config.json") from None
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a JSON object of jik876 hyperparameters")
    return data


def config_beside(path: str | Path) -> Path | None:
    """The ``config.json`` next to a ``g_`` file (or one folder up, a common layout), if any."""
    path = Path(path)
    for cand in (path.parent / "config.json", path.parent.parent / "config.json"):
        if cand.is_file():
            return cand
    return None


def newest_in(folder: str | Path) -> Path | None:
    """The checkpoint a folder stands for: its newest ``states/step_*.pt``, else its newest ``g_`` file."""
    folder = Path(folder)
    for sub in (folder / "states", folder):
        states = sorted(sub.glob("step_*.pt"))
        if states:
            return states[-1]
    gs = sorted((p for sub in (folder / "checkpoints", folder) for p in sub.glob("g_*") if step_of(p) is not None),
                key=step_of)
    return gs[-1] if gs else None


def resolve_checkpoint(path: str | Path) -> Path:
    """A file to load for ``path``: itself, or the newest checkpoint of a run folder (UserError if none)."""
    path = Path(path)
    if path.is_dir():
        found = newest_in(path)
        if found is None:
            raise UserError(f"{path}: no g_ file or states/step_*.pt inside")
        return found
    if not path.is_file():
        raise UserError(f"{path}: not found")
    return path


def step_of(path: str | Path) -> int | None:
    m = re.search(r"(\d+)$", Path(path).name)
    return int(m.group(1)) if m else None


def do_path_for(g_path: str | Path) -> Path:
    """``.../g_00012345`` -> ``.../do_00012345``."""
    g_path = Path(g_path)
    name = g_path.name
    if not name.startswith("g_"):
        raise UserError(f"{g_path}: a jik876 generator file is named g_XXXXXXXX")
    return g_path.with_name("do_" + name[2:])


def load_g(path: str | Path) -> dict[str, torch.Tensor]:
    """The generator state dict of a jik876 ``g_`` file."""
    data = torch_load(path)
    if not isinstance(data, dict) or "generator" not in data:
        raise UserError(f"{path}: not a jik876 generator file (expected a dict with a 'generator' entry)")
    return strip_prefixes(data["generator"])


def load_do(path: str | Path) -> dict[str, Any]:
    """A jik876 ``do_`` file: discriminators, optimizer states, steps and epoch."""
    data = torch_load(path)
    if not isinstance(data, dict) or "mpd" not in data or "msd" not in data:
        raise UserError(f"{path}: not a jik876 discriminator file (expected 'mpd' and 'msd' entries)")
    data["mpd"] = strip_prefixes(data["mpd"])
    data["msd"] = strip_prefixes(data["msd"])
    return data


def save_g(path: str | Path, generator: torch.nn.Module) -> Path:
    return atomic_torch_save({"generator": strip_prefixes(generator.state_dict())}, path)


def save_do(path: str | Path, mpd: torch.nn.Module, msd: torch.nn.Module, optim_g: torch.optim.Optimizer | None,
            optim_d: torch.optim.Optimizer | None, steps: int, epoch: int) -> Path:
    return atomic_torch_save({
        "mpd": strip_prefixes(mpd.state_dict()), "msd": strip_prefixes(msd.state_dict()),
        "optim_g": optim_g.state_dict() if optim_g is not None else None,
        "optim_d": optim_d.state_dict() if optim_d is not None else None,
        "steps": int(steps), "epoch": int(epoch)}, path)


def write_config(path: str | Path, h: Mapping[str, Any]) -> Path:
    return atomic_write_json(path, dict(h))


def in_channels_of(state: Mapping[str, torch.Tensor]) -> int:
    """Input channels of a generator state dict (80 for mels; other C for precomputed features)."""
    for key in ("conv_pre.weight_v", "conv_pre.weight", "conv_pre.parametrizations.weight.original1"):
        if key in state:
            return int(state[key].shape[1])
    raise UserError("generator state dict has no conv_pre weights; is this a HiFi-GAN generator?")
