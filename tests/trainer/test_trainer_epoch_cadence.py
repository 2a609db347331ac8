"""Epoch-based validation and save cadence of the trainer core, on the toy recipe.

24 toy items at batch 8 give 3 optimizer steps per epoch; 3 epochs give steps 1..9.
``validate_every_epochs=1`` must validate at each epoch end (3, 6, 9); ``save_every_epochs=2``
must save at the end of epoch 2 (step 6) plus the final state (step 9), pruned to ``keep_states``.
"""

from __future__ import annotations

import json

import pytest
import torch

from modules.trainer.metrics import read_metrics
from modules.trainer.runfolder import list_states
from tests.helpers.trainer_toy import ToyRecipe
from tests.trainer.test_trainer_core import train, ws  # noqa: F401  (ws is a fixture used below)

torch.set_num_threads(1)

# step-based cadences off, so only the epoch cadences decide; max_steps off so epochs bound the run
EPOCH_CADENCE = ["max_steps=null", "epochs=3", "batch_size=8", "save_every_steps=null",
                 "validate_every_steps=null", "validate_every_epochs=1", "save_every_epochs=2"]


def _state_steps(run_dir) -> list[int]:
    return sorted(s.step for s in list_states(run_dir))


@pytest.mark.parametrize("keep, expected_states", [(2, [6, 9]), (1, [9])])
def test_epoch_cadence_validates_each_epoch_and_saves_every_second(ws, keep, expected_states):  # noqa: F811
    assert ToyRecipe.items == 24, "the expected steps below assume 3 steps per epoch"
    rc, run = train(ws, f"epochs_keep{keep}", *EPOCH_CADENCE, f"keep_states={keep}")
    assert rc == 0
    records = read_metrics(run / "metrics.jsonl")
    val_steps = [r["step"] for r in records if r.get("validation")]
    assert val_steps == [3, 6, 9]
    train_steps = [r["step"] for r in records if not r.get("validation")]
    assert train_steps == list(range(1, 10)), "log_every_steps=1 logs every one of the 9 steps"
    val = [r for r in records if r.get("validation")]
    assert all("val_loss" in r for r in val)
    assert _state_steps(run) == expected_states
    # each kept state has its sidecar naming the same step and the epoch it ended
    for step in expected_states:
        side = json.loads((run / "states" / f"step_{step:08d}.json").read_text())
        assert side["step"] == step and side["epoch"] == step // 3
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "finished" and status["step"] == 9 and status["steps_per_epoch"] == 3
