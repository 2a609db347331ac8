"""Which interchange files a run keeps, and a missing one written again from its state."""

from __future__ import annotations

import json
import subprocess

from modules.trainer.runfolder import read_status
from tests.conftest import REPO, python_env
from tests.trainer.test_trainer_core import cli, make_config, train, ws  # noqa: F401  (ws is a fixture)

# scoring off: with it on, exports of steps whose scores are still coming are kept too (tested below)
SETS = ["max_steps=8", "save_every_steps=2", "validate_every_steps=4", "keep_states=5", "evaluation.enabled=false"]


def _exports(run) -> list[str]:
    return sorted(p.name for p in (run / "checkpoints").glob("toy_*.pt"))


def test_only_the_newest_and_the_best_exports_are_kept(ws):  # noqa: F811
    rc, run = train(ws, "policy", *SETS)
    assert rc == 0
    record = json.loads((run / "checkpoints" / "exports.json").read_text())
    best = record["best"]["step"]
    assert best in (4, 8)
    assert _exports(run) == sorted({f"toy_{s:08d}.pt" for s in (best, 8)})
    assert sorted(p.name for p in (run / "states").glob("step_*.pt")) == [f"step_{s:08d}.pt" for s in (2, 4, 6, 8)]
    rc, run = train(ws, "every", *SETS, "export_every_save=true")
    assert rc == 0 and _exports(run) == [f"toy_{s:08d}.pt" for s in (2, 4, 6, 8)]


def test_a_missing_export_is_written_from_the_newest_state(ws):  # noqa: F811
    rc, run = train(ws, "lost", *SETS)
    assert rc == 0
    newest = run / "checkpoints" / "toy_00000008.pt"
    newest.unlink()  # as if the trainer was killed between the state and its export
    rc, run = train(ws, "lost", *SETS, resume="latest")  # nothing left to train: the export is repaired
    assert rc == 0 and newest.is_file()
    assert "wrote the missing exports of step 8" in (run / "train.log").read_text()
    newest.unlink()
    _, path = make_config(ws, "lost", *SETS)
    proc = subprocess.run(cli(ws, "train", str(path), "--recipe", "tests.helpers.trainer_toy:ToyRecipe",
                              "--export-only"), cwd=REPO, env=python_env(), capture_output=True, text=True,
                          timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert newest.is_file() and "exports of step 8 written" in read_status(run)["message"]


def test_pruning_keeps_the_best_scored_and_the_unscored_steps(tmp_path):
    from modules.trainer import exports

    ckpt = tmp_path / "checkpoints"
    ckpt.mkdir()
    for step in (2, 4, 6, 8):
        (ckpt / f"toy_{step:08d}.pt").write_bytes(b"x")
        exports.record(ckpt, step, [ckpt / f"toy_{step:08d}.pt"], val_loss=float(step) if step == 6 else None)
    exports.prune(ckpt, 8, keep_every=False, also_keep={2})  # 2: best scored (or awaiting its scores)
    assert _exports(tmp_path) == ["toy_00000002.pt", "toy_00000006.pt", "toy_00000008.pt"]

