"""Lazy host read-backs (modules/trainer/ledger.py): the same figures as reading every step, and a
non-finite step found later still stops the run before a state is saved after it.

The core reads lazily on CUDA only; these tests force it on the CPU (``lazy_readback = True``).
"""

from __future__ import annotations

import json

import pytest
import torch

from modules.config.schema import apply_overrides, default_config, save_config
from modules.trainer.core import Trainer
from modules.trainer.ledger import Ledger, NonFiniteError
from modules.trainer.metrics import read_metrics
from modules.trainer.runfolder import list_states, read_status
from modules.workspace import Workspace
from tests.helpers.trainer_toy import (
    NanToyRecipe,
    ToyRecipe,
    ws,  # noqa: F401 (pytest fixture)
)

torch.set_num_threads(1)

BASE = ["batch_size=4", "num_workers=0", "learning_rate=0.01", "save_every_steps=2", "validate_every_steps=4",
        "keep_states=5", "max_steps=8", "epochs=100", "gpus=0", "validation_samples=1"]
TIMING = {"time", "elapsed", "samples_per_s"}


class LazyTrainer(Trainer):
    lazy_readback = True


class FusedTensorToyRecipe(ToyRecipe):
    """Fused AdamW (the optimizer the lazy step serves) and losses returned as 0-d tensors, as the real recipes do."""

    def build_optimizer(self, name: str, params: list) -> torch.optim.Optimizer:
        return torch.optim.AdamW(params, lr=self.config.learning_rate, betas=(0.8, 0.99), fused=True)

    def train_step(self, batch, models, ctx):
        return {k: torch.tensor(v) for k, v in super().train_step(batch, models, ctx).items()}


class FusedNanToyRecipe(NanToyRecipe):
    """The NaN at step 5, with fused AdamW: the optimizer the core skips on the device when the norm is bad."""

    def build_optimizer(self, name: str, params: list) -> torch.optim.Optimizer:
        return torch.optim.AdamW(params, lr=self.config.learning_rate, betas=(0.8, 0.99), fused=True)


def run(ws: Workspace, name: str, *items: str, trainer=Trainer, recipe=ToyRecipe):
    c = apply_overrides(default_config("hifigan", "training/toy"), [*BASE, *items])
    path = save_config(c, ws.root / "training" / "toy" / "configs" / f"{name}.yaml")
    t = trainer(c, ws, path, recipe_cls=recipe)
    return t.run(), t, ws.root / "training" / "toy" / "runs" / name


@pytest.mark.parametrize("recipe", [ToyRecipe, FusedTensorToyRecipe], ids=["floats", "fused-tensors"])
def test_lazy_reads_log_the_same_floats_and_train_the_same_weights(ws, recipe):
    # windows of 3 steps of 2 micro-steps, one partial; clipping through the lazy step's device norm
    opts = ("grad_accumulation=2", "log_every_steps=3", "grad_clip=0.5")
    rc_e, _, eager = run(ws, "eager", *opts, recipe=recipe)
    rc_l, lazy_t, lazy = run(ws, "lazy", *opts, trainer=LazyTrainer, recipe=recipe)
    assert rc_e == rc_l == 0 and lazy_t.ledger.lazy
    a = [{k: v for k, v in r.items() if k not in TIMING} for r in read_metrics(eager / "metrics.jsonl")]
    b = [{k: v for k, v in r.items() if k not in TIMING} for r in read_metrics(lazy / "metrics.jsonl")]
    assert [r["step"] for r in a if not r.get("validation")] == [3, 6, 8]
    assert a == b  # every logged loss and gradient norm, bit for bit
    sa = torch.load(list_states(eager)[0].path, weights_only=False)["models"]
    sb = torch.load(list_states(lazy)[0].path, weights_only=False)["models"]
    for model in sa:
        for key, value in sa[model].items():
            assert torch.equal(value, sb[model][key]), (model, key)


def test_a_nonfinite_step_found_lazily_is_named_and_nothing_after_it_is_saved(ws):
    rc, t, run_dir = run(ws, "nan", "grad_accumulation=1", "log_every_steps=3", trainer=LazyTrainer,
                         recipe=FusedNanToyRecipe)
    assert rc == 3
    status = read_status(run_dir)
    # the step's gradient norm (checked in its optimizer step) or its loss: either names step 5
    assert status["state"] == "failed" and "non-finite" in status["message"], status
    assert "at step 5 " in status["message"], status["message"]
    # step 5's NaN was read at step 6, where a save was due: the save did not happen
    assert [s.step for s in list_states(run_dir)] == [4, 2]
    diag = json.loads((run_dir / "diagnostics" / "nonfinite_step_00000005.json").read_text())
    assert diag["step"] == 5 and diag["batch"].startswith("not kept: found at step 6") and diag["losses"] == {}
    # the fused optimizer skipped the NaN update on the device: the weights in memory stayed finite
    assert all(torch.isfinite(p).all() for p in t.plain["net"].parameters())
    state = torch.load(list_states(run_dir)[0].path, weights_only=False)["models"]["net"]
    assert all(torch.isfinite(v).all() for v in state.values())


def test_ledger_sums_and_names_the_first_bad_step():
    led = Ledger(accumulation=2, device=torch.device("cpu"), lazy=True)
    for step, (l1, l2) in enumerate([(1.0, 3.0), (2.0, 4.0)], start=1):
        led.add_losses(step, {"loss": torch.tensor(l1)})
        led.add_losses(step, {"loss": l2})  # floats and tensors mix
        led.end_step(step, {"g": torch.tensor(float(step))})
    window, norms, steps = led.take_window()
    assert (window, norms, steps) == ({"loss": 5.0}, {"g": 3.0}, 2)  # (1+3)/2 + (2+4)/2; 1 + 2
    led.add_losses(3, {"loss": torch.tensor(1.0)})
    led.add_check(3, {"grad_norm_main": torch.tensor(float("inf"))})
    led.add_losses(4, {"loss": torch.tensor(float("nan"))})
    with pytest.raises(NonFiniteError) as err:
        led.flush()
    assert err.value.step == 3 and err.value.what == "gradient norm" and "grad_norm_main" in err.value.values
