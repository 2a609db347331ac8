"""The trainer core's mechanics on a tiny two-optimizer toy recipe (tests/helpers/trainer_toy.py).

Accumulation equivalence, bit-exact resume, refused config changes, corrupt-state
fallback, NaN and OOM handling, SIGTERM in a subprocess, a 2-process torchrun
(gloo) run equal to one process with the same global batch.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from modules.config.schema import apply_overrides, default_config, save_config
from modules.errors import UserError
from modules.trainer.core import CoreStepContext, Trainer
from modules.trainer.distributed import DistInfo, EpochBatchSampler
from modules.trainer.ledger import Ledger
from modules.trainer.metrics import read_metrics
from modules.trainer.runfolder import RunLock, list_states, lock_holder, read_status
from modules.workspace import Workspace
from tests.conftest import REPO, python_env
from tests.helpers.trainer_toy import (
    NanToyRecipe,
    OomToyRecipe,
    QuietToyRecipe,
    ToyData,
    ToyRecipe,
    ws,  # noqa: F401 (pytest fixture)
)

torch.set_num_threads(1)

BASE = ["batch_size=8", "grad_accumulation=1", "num_workers=0", "learning_rate=0.01", "log_every_steps=1",
        "save_every_steps=4", "validate_every_steps=4", "keep_states=2", "max_steps=8", "epochs=100", "gpus=0",
        "validation_samples=1"]


def make_config(ws: Workspace, name: str, *items: str):
    c = apply_overrides(default_config("hifigan", "training/toy"), [*BASE, *items])
    path = ws.root / "training" / "toy" / "configs" / f"{name}.yaml"
    save_config(c, path)
    return c, path


def train(ws, name, *items, recipe=ToyRecipe, resume=None, force=False, fresh=False) -> tuple[int, Path]:
    c, path = make_config(ws, name, *items)
    rc = Trainer(c, ws, path, resume=resume, force=force, fresh=fresh, recipe_cls=recipe).run()
    return rc, ws.root / "training" / "toy" / "runs" / name


def final_models(run_dir: Path) -> dict:
    state = torch.load(list_states(run_dir)[0].path, weights_only=False)
    return state


def assert_same_models(a: dict, b: dict, exact: bool = True, atol: float = 1e-6):
    for name in ("net", "aux"):
        for k, v in a["models"][name].items():
            w = b["models"][name][k]
            if exact:
                assert torch.equal(v, w), (name, k, (v - w).abs().max())
            else:
                torch.testing.assert_close(v, w, atol=atol, rtol=1e-5)


# ---------------------------------------------------------------- units
def test_backward_accumulates_only_into_the_named_optimizer():
    net, aux = torch.nn.Linear(3, 3), torch.nn.Linear(3, 3)
    opts = {"main": torch.optim.SGD(net.parameters(), lr=0.1), "aux": torch.optim.SGD(aux.parameters(), lr=0.1)}

    class T:  # the attributes CoreStepContext reads from its trainer
        device = torch.device("cpu")
        config = default_config("hifigan", "training/x")
        optimizers = opts
        opt_params = {n: list(o.param_groups[0]["params"]) for n, o in opts.items()}
        scalers: dict = {}
        step_grad_norms: dict = {}
        ledger = Ledger(1, torch.device("cpu"))

    ctx = CoreStepContext(T())
    loss = aux(net(torch.randn(4, 3))).pow(2).mean()  # depends on both models, like a generator loss
    ctx.backward(loss, "main")
    assert all(p.grad is not None for p in net.parameters())
    assert all(p.grad is None for p in aux.parameters())
    before = [p.detach().clone() for p in aux.parameters()]
    ctx.step("main")
    assert all(torch.equal(p, q) for p, q in zip(aux.parameters(), before))
    assert all(p.grad is None for p in net.parameters()), "step zeroes the grads"
    assert T.step_grad_norms["main"] > 0


def test_sampler_order_depends_on_seed_and_epoch_and_ranks_share_the_global_batch():
    one = EpochBatchSampler(24, 8, 1, DistInfo(0, 1, 0), seed=3)
    one.set_epoch(2)
    again = EpochBatchSampler(24, 8, 1, DistInfo(0, 1, 0), seed=3)
    again.set_epoch(2)
    assert list(one) == list(again)
    again.set_epoch(3)
    assert list(one) != list(again)
    ranks = [EpochBatchSampler(24, 4, 1, DistInfo(r, 2, r), seed=3) for r in range(2)]
    for s in ranks:
        s.set_epoch(2)
    for step, global_batch in enumerate(list(one)):
        union = sorted(list(ranks[0])[step] + list(ranks[1])[step])
        assert union == sorted(global_batch)
    full = list(one)
    one.set_epoch(2, skip_steps=2)  # resume after 2 of the epoch's 3 steps: only the last batch
    assert list(one) == full[2:] and len(one) == 1


# ---------------------------------------------------------------- in-process runs
def test_accumulation_gives_the_same_result(ws):
    _, a = train(ws, "acc1", "batch_size=8", "grad_accumulation=1", recipe=QuietToyRecipe)
    _, b = train(ws, "acc2", "batch_size=4", "grad_accumulation=2", recipe=QuietToyRecipe)
    _, c = train(ws, "acc4", "batch_size=2", "grad_accumulation=4", recipe=QuietToyRecipe)
    sa, sb, sc = final_models(a), final_models(b), final_models(c)
    assert sa["step"] == sb["step"] == sc["step"] == 8
    assert_same_models(sa, sb, exact=False)
    assert_same_models(sa, sc, exact=False)


def test_resume_is_bit_exact_and_the_run_folder_is_complete(ws):
    rc, straight = train(ws, "straight")
    assert rc == 0
    rc, split = train(ws, "split", "max_steps=5")  # stops mid-epoch (3 steps per epoch)
    assert rc == 0 and list_states(split)[0].step == 5
    with pytest.raises(UserError, match="--resume latest"):
        train(ws, "split")  # states exist: must say resume or fresh
    ToyData.loads = 0
    rc, _ = train(ws, "split", resume="latest")  # max_steps 8: a resume-safe change
    assert rc == 0
    assert ToyData.loads == 3 * 8 + 4, "consumed batches are skipped, not loaded (+ one validation of 4 items)"
    s1, s2 = final_models(straight), final_models(split)
    assert s2["step"] == 8
    assert_same_models(s1, s2, exact=True)
    for name in ("main", "aux"):
        for k, v in s1["optimizers"][name]["state"].items():
            assert torch.equal(v["exp_avg_sq"], s2["optimizers"][name]["state"][k]["exp_avg_sq"])
    assert torch.equal(s1["rng"][0]["torch"], s2["rng"][0]["torch"])

    # run folder contract
    for f in ("config.yaml", "command.txt", "train.log", "metrics.jsonl", "status.json", "train.lock"):
        assert (split / f).is_file(), f
    assert [s.step for s in list_states(split)] == [8, 5], "keep_states=2 prunes older states"
    side = json.loads((split / "states" / "step_00000008.json").read_text())
    assert side["step"] == 8 and side["val_loss"] is not None and side["train_loss"] is not None
    records = read_metrics(split / "metrics.jsonl")
    train_steps = [r["step"] for r in records if not r.get("validation")]
    assert train_steps == list(range(1, 9)), "resume must not duplicate or lose logged steps"
    rec = records[0]
    for k in ("step", "epoch", "time", "elapsed", "lr", "grad_norm_main", "grad_norm_aux", "samples_per_s", "loss"):
        assert k in rec, k
    val = [r for r in records if r.get("validation")]
    assert [r["step"] for r in val] == [4, 5, 8] and all("val_loss" in r for r in val)
    assert (split / "samples" / "step_00000004" / "clip000.wav").is_file()
    assert (split / "samples" / "step_00000004" / "clip000_ref.wav").is_file()
    assert (split / "checkpoints" / "toy_00000008.pt").is_file()
    assert list((split / "tensorboard").glob("events.out.tfevents.*"))
    status = read_status(split)
    assert status["state"] == "finished" and status["step"] == 8 and status["total_steps"] == 8
    assert status["steps_per_epoch"] == 3
    assert lock_holder(split) is None, "the lock is released at exit"
    # lr follows the schedule: exponential gamma 0.999 per epoch, 3 steps per epoch
    assert [r["lr"] for r in records if r.get("step") in (3, 4) and not r.get("validation")] == pytest.approx(
        [0.01, 0.01 * 0.999])


def test_resume_from_an_older_state_path(ws):
    _, straight = train(ws, "ref", "max_steps=8")
    _, run = train(ws, "older", "max_steps=8", "save_every_steps=2", "keep_states=4")
    older = run / "states" / "step_00000004.pt"
    rc, _ = train(ws, "older", "max_steps=8", "save_every_steps=2", "keep_states=4", resume=str(older))
    assert rc == 0
    assert_same_models(final_models(straight), final_models(run), exact=True)
    assert [s.step for s in list_states(run)] == [8, 6, 4, 2]
    abandoned = list((run / "states").glob("abandoned-*/step_*.pt"))
    assert sorted(p.name for p in abandoned) == ["step_00000006.pt", "step_00000008.pt"]
    steps = [r["step"] for r in read_metrics(run / "metrics.jsonl") if not r.get("validation")]
    assert steps == list(range(1, 9))


def test_changed_config_is_refused_unless_forced(ws):
    train(ws, "cfg", "max_steps=4")
    with pytest.raises(UserError) as err:
        train(ws, "cfg", "max_steps=6", "learning_rate=0.02", "batch_size=4", resume="latest")
    assert "learning_rate" in str(err.value) and "batch_size" in str(err.value) and "--force" in str(err.value)
    log = (ws.root / "training" / "toy" / "runs" / "cfg" / "train.log").read_text()
    assert f"error: {err.value}\n" in log, "the refusal must reach the run's train.log (the Run tab's console)"
    rc, run = train(ws, "cfg", "max_steps=6", "learning_rate=0.02", resume="latest", force=True)
    assert rc == 0 and list_states(run)[0].step == 6
    rc, _ = train(ws, "cfg", "max_steps=8", "learning_rate=0.02", "epochs=50", "save_every_steps=2",
                  "keep_states=3", resume="latest")  # now only resume-safe keys differ
    assert rc == 0


def test_corrupt_state_falls_back_to_the_previous_one(ws, capsys):
    _, straight = train(ws, "ref", "max_steps=8")
    _, run = train(ws, "torn", "max_steps=6", "save_every_steps=2", "keep_states=3")
    newest = run / "states" / "step_00000006.pt"
    newest.write_bytes(newest.read_bytes()[:1000])  # a torn write
    rc, _ = train(ws, "torn", "max_steps=8", "save_every_steps=2", "keep_states=3", resume="latest")
    assert rc == 0
    out = capsys.readouterr().out
    assert "step_00000006.pt" in out and "unreadable" in out and "resuming from" in out and "step_00000004" in out
    assert_same_models(final_models(straight), final_models(run), exact=True)
    for f in (run / "states").glob("*.pt"):
        f.write_bytes(b"garbage")
    with pytest.raises(UserError, match="no readable state"):
        train(ws, "torn", "max_steps=10", "save_every_steps=2", "keep_states=3", resume="latest")


def test_nonfinite_loss_stops_with_a_diagnostic(ws):
    rc, run = train(ws, "nan", "save_every_steps=2", "keep_states=5", recipe=NanToyRecipe)
    assert rc == 3
    status = read_status(run)
    assert status["state"] == "failed" and "non-finite" in status["message"] and "step_00000004" in status["message"]
    assert [s.step for s in list_states(run)] == [4, 2], "no state is written after the NaN"
    diag = json.loads((run / "diagnostics" / "nonfinite_step_00000005.json").read_text())
    assert diag["step"] == 5 and "x" in diag["batch"]
    state = final_models(run)
    assert all(torch.isfinite(v).all() for v in state["models"]["net"].values())


def test_out_of_memory_names_the_knobs(ws):
    rc, run = train(ws, "oom", recipe=OomToyRecipe)
    assert rc == 4
    msg = read_status(run)["message"]
    for knob in ("batch_size 8", "hifigan.segment_size 8192", "precision fp32", "grad_accumulation 1"):
        assert knob in msg, msg


def test_second_trainer_on_a_locked_run_is_refused(ws):
    c, path = make_config(ws, "locked")
    run = ws.root / "training" / "toy" / "runs" / "locked"
    lock = RunLock(run / "train.lock")
    lock.acquire({"pid": 4242})
    try:
        assert lock_holder(run)["pid"] == 4242
        with pytest.raises(UserError, match="another trainer .pid 4242"):
            Trainer(c, ws, path, recipe_cls=ToyRecipe).run()
        assert not (run / "train.log").exists(), "the refused trainer must not write into the running one's log"
    finally:
        lock.release()


@pytest.mark.parametrize("proc_locks", [True, False], ids=["proc-locks", "flock-fallback"])
def test_lock_probe_both_ways(tmp_path, monkeypatch, proc_locks):
    """The one lock probe: /proc/locks on Linux, a shared-flock probe where that is unusable."""
    from modules.run_manager.probes import lock_holder as holder_pid
    from modules.trainer import runfolder

    if not proc_locks:
        monkeypatch.setattr(runfolder, "proc_locks_usable", lambda folder: False)
    run = tmp_path / "run"
    assert lock_holder(run) is None and holder_pid(run) is None
    lock = RunLock(run / "train.lock")
    lock.acquire({"pid": 4242, "started": 1.0})
    try:
        assert lock_holder(run) == {"pid": 4242, "started": 1.0} and holder_pid(run) == 4242
    finally:
        lock.release()
    assert (run / "train.lock").is_file() and lock_holder(run) is None and holder_pid(run) is None


def test_fresh_keeps_the_old_run_folder(ws):
    train(ws, "again", "max_steps=2")
    rc, run = train(ws, "again", "max_steps=2", fresh=True)
    assert rc == 0
    olds = [p for p in run.parent.iterdir() if p.name.startswith("again-")]
    assert len(olds) == 1 and list_states(olds[0])


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_runs(ws, precision):
    rc, run = train(ws, f"p_{precision}", f"precision={precision}", "max_steps=3", recipe=QuietToyRecipe)
    assert rc == 0
    state = final_models(run)
    assert (len(state["scalers"]) == 2) == (precision == "fp16")
    assert all(torch.isfinite(v).all() for v in state["models"]["net"].values())


# ---------------------------------------------------------------- subprocesses
def cli(ws, *args):
    return [sys.executable, "-m", "modules", "--workspace", str(ws.root), *args]


def sigterm_trainer_when(ws, path, recipe: str, ready, timeout: float = 90):
    """Start ``train`` in its own process group, wait until ``ready()`` (or the process ends),
    SIGTERM the whole group as the UI does, and return ``(process, console output)``."""
    proc = subprocess.Popen(cli(ws, "train", str(path), "--recipe", recipe),
                            cwd=REPO, env=python_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        deadline = time.time() + timeout
        while time.time() < deadline and proc.poll() is None and not ready():
            time.sleep(0.05)
        assert proc.poll() is None, "the trainer exited before the stop"
        os.killpg(proc.pid, signal.SIGTERM)  # the whole group, loader workers included
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc, out


def test_sigterm_saves_and_exits_zero_then_resume_matches(ws):
    _, straight = train(ws, "ref", "max_steps=40", "save_every_steps=100", "validate_every_steps=100")
    _, path = make_config(ws, "term", "max_steps=40", "save_every_steps=100", "validate_every_steps=100",
                          "num_workers=1")
    run = ws.root / "training" / "toy" / "runs" / "term"
    proc, out = sigterm_trainer_when(ws, path, "tests.helpers.trainer_toy:SlowToyRecipe",
                                     lambda: (read_status(run) or {}).get("step", 0) >= 3)
    assert proc.returncode == 0, out
    status = read_status(run)
    assert status["state"] == "stopped" and "SIGTERM" in status["message"], status
    stopped_at = list_states(run)[0].step
    assert 3 <= stopped_at < 40
    rc, _ = train(ws, "term", "max_steps=40", "save_every_steps=100", "validate_every_steps=100", resume="latest")
    assert rc == 0
    assert_same_models(final_models(straight), final_models(run), exact=True)


def test_sigterm_while_building_exits_zero_as_stopped(ws):
    """A stop while models are still being built: no kill, status says stopped, nothing saved."""
    _, path = make_config(ws, "early")
    run = ws.root / "training" / "toy" / "runs" / "early"
    proc, out = sigterm_trainer_when(ws, path, "tests.helpers.trainer_toy:SlowBuildToyRecipe",
                                     lambda: (read_status(run) or {}).get("message") == "building models")
    assert proc.returncode == 0, out
    status = read_status(run)
    assert status["state"] == "stopped" and "nothing to save" in status["message"], status
    assert status["pid"] == proc.pid and status["step"] == 0
    assert "train items" not in out, "the build was interrupted, not finished first"
    assert list_states(run) == [] and not (run / "checkpoints").exists()
    assert lock_holder(run) is None


def test_two_process_gloo_equals_one_process(ws):
    _, one = train(ws, "one", "batch_size=8", "max_steps=6", recipe=QuietToyRecipe)
    _, path = make_config(ws, "two", "batch_size=4", "max_steps=6")
    r = subprocess.run(cli(ws, "train", str(path), "--gpus", "2", "--recipe",
                           "tests.helpers.trainer_toy:QuietToyRecipe"),
                       cwd=REPO, env=python_env(), capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    two = ws.root / "training" / "toy" / "runs" / "two"
    s1, s2 = final_models(one), final_models(two)
    assert s2["world_size"] == 2 and s2["step"] == 6 and len(s2["rng"]) == 2
    assert_same_models(s1, s2, exact=False, atol=1e-5)
    steps = [r["step"] for r in read_metrics(two / "metrics.jsonl") if not r.get("validation")]
    assert steps == list(range(1, 7)), "only rank 0 writes metrics"
    l1 = [r["loss"] for r in read_metrics(one / "metrics.jsonl") if not r.get("validation")]
    l2 = [r["loss"] for r in read_metrics(two / "metrics.jsonl") if not r.get("validation")]
    assert l1 == pytest.approx(l2, rel=1e-4), "logged losses are averaged over ranks"
