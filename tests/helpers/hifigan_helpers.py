"""Helpers of the HiFi-GAN training tests: a prepared demo dataset and tiny configs."""

from __future__ import annotations

import copy
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.conftest import DEMO_VOICE, REPO, python_env

# A tiny generator (hop 256) and discriminators at 1/16 width: each step takes a fraction of a second.
TINY_HIFIGAN: dict[str, Any] = {
    "preset": "custom", "segment_size": 2048, "resblock": "1", "upsample_rates": [8, 8, 4],
    "upsample_kernel_sizes": [16, 16, 8], "upsample_initial_channel": 32, "resblock_kernel_sizes": [3],
    "resblock_dilation_sizes": [[1, 3]], "discriminator_width": 0.0625,
}


def tiny_config(**over: Any) -> dict[str, Any]:
    hifigan = copy.deepcopy(TINY_HIFIGAN)
    hifigan.update(over.pop("hifigan", {}))
    cfg = {"model": "hifigan", "dataset": "training/demo", "batch_size": 2, "epochs": 100, "max_steps": 6,
           "num_workers": 0, "gpus": 0, "seed": 7, "save_every_steps": 3, "validate_every_steps": None,
           "log_every_steps": 1, "keep_states": 5, "validation_samples": 1, "hifigan": hifigan,
           "evaluation": {"enabled": False}}  # validation scoring has its own tests (tests/evaluation/)
    cfg.update(over)
    return cfg


_PREPARED: dict[str, Path] = {}


def prepared_demo(tmp_root: Path) -> Path:
    """A workspace holding ``training/demo`` prepared from the committed demo voice (built once per session)."""
    if "demo" not in _PREPARED:
        ws = tmp_root / "demo-prepared"
        if not (ws / "training" / "demo" / "train.txt").is_file():
            shutil.rmtree(ws, ignore_errors=True)
            (ws / "voices").mkdir(parents=True)
            shutil.copytree(DEMO_VOICE, ws / "voices" / "demo")
            subprocess.run([sys.executable, "-m", "modules", "--workspace", str(ws), "prepare", "demo",
                            "--transcriber", "none"], cwd=REPO, env=python_env(), check=True,
                           capture_output=True, timeout=300)
        _PREPARED["demo"] = ws
    return _PREPARED["demo"]


def workspace_copy(src: Path, dst: Path) -> Path:
    """A fresh workspace with the prepared dataset (audio only, no runs or caches)."""
    shutil.copytree(src / "training" / "demo", dst / "training" / "demo",
                    ignore=shutil.ignore_patterns("runs", "cache"))
    (dst / "voices").mkdir(exist_ok=True)
    (dst / "models").mkdir(exist_ok=True)
    return dst


def train(ws: Path, cfg: dict[str, Any], name: str = "tiny", resume: str | None = None) -> int:
    """Run the real trainer core in this process on config ``cfg`` saved as ``configs/NAME.yaml``."""
    from modules.config.schema import config_from_dict, save_config
    from modules.trainer.core import Trainer
    from modules.workspace import Workspace

    config = config_from_dict(cfg)
    path = ws / "training" / "demo" / "configs" / f"{name}.yaml"
    save_config(config, path)
    torch.set_num_threads(1)
    return Trainer(config, Workspace.open(ws), path, resume=resume).run()


def run_dir(ws: Path, name: str = "tiny") -> Path:
    return ws / "training" / "demo" / "runs" / name


def state_models(path: Path) -> dict[str, dict[str, torch.Tensor]]:
    return torch.load(path, map_location="cpu", weights_only=False)["models"]


def read_metrics(run: Path) -> list[dict[str, Any]]:
    import json

    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]


# Fixtures shared by the HiFi-GAN test modules (imported there by name): the demo voice is
# prepared once per module, and each test gets its own copy of that workspace.
@pytest.fixture(scope="module")
def demo_src(tmp_path_factory):
    return prepared_demo(tmp_path_factory.getbasetemp())


@pytest.fixture
def ws(demo_src, tmp_path):
    return workspace_copy(demo_src, tmp_path / "ws")
