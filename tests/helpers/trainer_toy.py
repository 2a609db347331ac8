"""A tiny recipe for testing the trainer core's own mechanics (not a model test).

Two models with two optimizers, like a GAN: ``net`` (optimizer "main") is
trained on a regression target plus a term through ``aux``; ``aux`` (optimizer
"aux") learns on ``net``'s detached output. Items depend only on
(seed, epoch, index); ``train_step`` draws from the global torch RNG (input
noise) so a resume is only bit-exact when RNG states are restored. Subclasses
inject failures. Used in-process and via ``--recipe tests.helpers.trainer_toy:CLASS``.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from modules.trainer.recipe import AudioSample, Recipe, StepContext, ValidationResult
from modules.workspace import Workspace

IN, OUT = 6, 3


class ToyData(Dataset):
    loads = 0  # items fetched in this process (num_workers=0), to check resume skips without loading

    def __init__(self, n: int, seed: int, train: bool = True):
        self.n, self.seed, self.epoch, self.train = n, seed, 0, train
        g = np.random.default_rng([seed, 7 if train else 8])
        self.x = g.standard_normal((n, IN)).astype(np.float32)
        w = np.random.default_rng(99).standard_normal((IN, OUT)).astype(np.float32)
        self.y = self.x @ w

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        ToyData.loads += 1
        # per-(seed, epoch, index) jitter, like a random crop
        j = np.random.default_rng([self.seed, self.epoch, i]).standard_normal(OUT).astype(np.float32) * 0.01
        return {"x": torch.from_numpy(self.x[i]), "y": torch.from_numpy(self.y[i] + j)}


class ToyRecipe(Recipe):
    name = "toy"
    items = 24
    noise = 0.05  # input noise from the global RNG in train_step
    main_loss = "loss"

    def build_models(self) -> dict[str, nn.Module]:
        torch.manual_seed(self.config.seed)
        return {"net": nn.Sequential(nn.Linear(IN, 16), nn.Tanh(), nn.Linear(16, OUT)),
                "aux": nn.Linear(OUT, OUT)}

    def optimizer_params(self, models: dict[str, nn.Module]) -> dict[str, list]:
        return {"main": [{"params": list(self.unwrap(models["net"]).parameters())}],
                "aux": [{"params": list(self.unwrap(models["aux"]).parameters())}]}

    def build_optimizer(self, name: str, params: list) -> torch.optim.Optimizer:
        return torch.optim.AdamW(params, lr=self.config.learning_rate, betas=(0.8, 0.99))

    def train_dataset(self) -> Dataset:
        return ToyData(self.items, self.config.seed)

    def validation_dataset(self) -> Dataset:
        return ToyData(4, self.config.seed, train=False)

    def train_step(self, batch: Any, models: dict[str, nn.Module], ctx: StepContext) -> dict[str, float]:
        x, y = batch["x"].to(self.device), batch["y"].to(self.device)
        if self.noise:
            x = x + self.noise * torch.randn_like(x)
        net, aux = models["net"], models["aux"]
        # "generator" phase first, through the plain aux model, so that every micro-batch of an
        # accumulation window sees the same aux weights (then accumulation is exactly equivalent)
        with ctx.autocast():
            pred = net(x)
            loss_fit = ((pred - y) ** 2).mean()
            loss = loss_fit + 0.1 * ((self.unwrap(aux)(pred) - y) ** 2).mean()
        ctx.backward(self.corrupt(loss, ctx), "main")
        ctx.step("main")
        with ctx.autocast():
            loss_aux = ((aux(pred.detach()) - y) ** 2).mean()
        ctx.backward(loss_aux, "aux")
        ctx.step("aux")
        return {"loss": float(loss.detach()), "loss_fit": float(loss_fit.detach()),
                "loss_aux": float(loss_aux.detach())}

    def corrupt(self, loss: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        return loss

    @torch.no_grad()
    def validate(self, models: dict[str, nn.Module], loader, ctx: StepContext, step: int) -> ValidationResult:
        net = models["net"]
        assert not net.training, "validation must run in eval mode"
        errs = [float(((net(b["x"].to(self.device)) - b["y"].to(self.device)) ** 2).mean()) for b in loader]
        t = torch.arange(2205) / 22050.0
        wave = 0.3 * torch.sin(2 * math.pi * 220.0 * t)
        noise = torch.rand(1).item()  # forked RNG: must not disturb training
        sample = AudioSample("clip000", wave * (0.5 + 0.5 * noise), 22050, reference=wave,
                             mel_image=torch.rand(8, 10))
        return ValidationResult({"loss": float(np.mean(errs))}, [sample])

    def export(self, models, optimizers, step, epoch, checkpoint_dir: Path) -> list[Path]:
        checkpoint_dir.mkdir(parents=True, exist_ok=True)
        path = checkpoint_dir / f"toy_{step:08d}.pt"
        torch.save({"net": models["net"].state_dict(), "epoch": epoch}, path)
        return [path]


class QuietToyRecipe(ToyRecipe):
    """No RNG use in the step: equal results for any split of the global batch."""

    noise = 0.0


class SlowToyRecipe(ToyRecipe):
    """Sleeps per step so a test can signal it mid-run."""

    def train_step(self, batch, models, ctx):
        time.sleep(0.05)
        return super().train_step(batch, models, ctx)


class SlowBuildToyRecipe(ToyRecipe):
    """Takes long to build its models (like loading a big base model), so a test can stop it then."""

    build_seconds = 30.0

    def build_models(self) -> dict[str, nn.Module]:
        time.sleep(self.build_seconds)
        return super().build_models()


class NanToyRecipe(ToyRecipe):
    """The loss turns NaN at optimizer step 5."""

    def corrupt(self, loss, ctx):
        return loss * float("nan") if ctx.global_step == 4 else loss

    def train_step(self, batch, models, ctx):
        out = super().train_step(batch, models, ctx)
        if ctx.global_step == 4:
            out["loss"] = float("nan")
        return out


class OomToyRecipe(ToyRecipe):
    """Raises the out-of-memory error PyTorch raises, at optimizer step 3."""

    def train_step(self, batch, models, ctx):
        if ctx.global_step == 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return super().train_step(batch, models, ctx)


@pytest.fixture
def ws(workspace) -> Workspace:
    """A workspace with the toy dataset's folder (the toy recipe makes its own data)."""
    d = workspace / "training" / "toy"
    d.mkdir(parents=True)
    (d / "train.txt").write_text("audio/a.wav|unused by the toy recipe\n")
    return Workspace.open(workspace)
