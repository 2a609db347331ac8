"""Run management (modules.run_manager): launch, lock, stop, reconnect, failure detection, metrics.

Process-management mechanics use a small stand-in trainer that follows the run-folder contract
(lock, status.json, metrics.jsonl, states on SIGTERM); the real trainer is exercised in
tests/run_manager/test_runs_trainer.py and the browser test.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from modules.errors import UserError
from modules.run_manager import (
    MetricsReader,
    delete_old_states,
    delete_run,
    launch,
    list_base_models,
    list_checkpoints,
    list_configs,
    list_runs,
    list_sample_steps,
    list_states,
    lock_holder,
    metric_frames,
    pid_alive,
    run_dir_for_config,
    run_status,
    run_summary,
    sample_clips,
    stop,
)
from modules.run_manager.metrics import downsample, progress, smooth
from modules.run_manager.process import spawn_detached
from modules.trainer.runfolder import launcher_paths
from modules.workspace import Workspace, WorkspaceError
from tests.conftest import python_env

STAND_IN = textwrap.dedent(r'''
    """Stand-in trainer for process tests: follows the run-folder contract, trains nothing."""
    import fcntl, json, os, signal, sys, time
    run, steps, delay, mode = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
    os.makedirs(run + "/states", exist_ok=True)
    lock = open(run + "/train.lock", "a+")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        print("another trainer holds the lock", flush=True); sys.exit(3)
    lock.seek(0); lock.truncate(); lock.write(json.dumps({"pid": os.getpid()})); lock.flush()
    stop = []
    if mode == "ignore-term":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    else:
        signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
    started = time.time()
    def status(state, step, message=""):
        tmp = run + "/.status.tmp"
        with open(tmp, "w") as f:
            json.dump({"state": state, "pid": os.getpid(), "step": step, "epoch": step // 5, "total_steps": steps,
                       "steps_per_epoch": 5, "message": message, "started": started, "updated": time.time()}, f)
        os.replace(tmp, run + "/status.json")
    def save(step):
        open(run + f"/states/step_{step:08d}.pt", "wb").write(b"state")
        json.dump({"step": step, "epoch": step // 5, "time": time.time(), "train_loss": 1.0 / step,
                   "val_loss": None}, open(run + f"/states/step_{step:08d}.json", "w"))
    status("running", 0)
    print("stand-in trainer started", flush=True)
    for step in range(1, steps + 1):
        time.sleep(delay)
        with open(run + "/metrics.jsonl", "a") as m:
            m.write(json.dumps({"step": step, "epoch": step // 5, "time": time.time(), "lr": 1e-3,
                                "grad_norm": 1.0, "loss": 1.0 / step}) + "\n")
        print(f"step {step} loss {1.0 / step:.3f}", flush=True)
        if mode == "nan" and step == 3:
            status("failed", step, "loss became NaN at step 3; lower the learning rate")
            sys.exit(1)
        status("running", step)
        if stop:
            save(step); status("stopped", step); print("saved and stopped", flush=True); sys.exit(0)
    save(steps); status("finished", steps)
''')


@pytest.fixture
def ws(workspace) -> Workspace:
    return Workspace.open(workspace)


@pytest.fixture
def stand_in(tmp_path) -> Path:
    path = tmp_path / "stand_in_trainer.py"
    path.write_text(STAND_IN)
    return path


def _config(ws: Workspace, name: str = "tiny", run_name: str | None = None) -> Path:
    ds = ws.training / "demo"
    (ds / "configs").mkdir(parents=True, exist_ok=True)
    (ds / "train.txt").write_text("audio/a.wav|hello\n")
    cfg = ds / "configs" / f"{name}.yaml"
    cfg.write_text(yaml.safe_dump({"model": "hifigan", "dataset": "training/demo", "run_name": run_name}))
    return cfg


def _spawn(stand_in: Path, run_dir: Path, steps: int = 400, delay: float = 0.05, mode: str = "normal"):
    return spawn_detached(run_dir, [sys.executable, str(stand_in), str(run_dir), str(steps), str(delay), mode])


def _wait(predicate, timeout: float = 20.0, what: str = "condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def cleanup():
    pids: list[int] = []
    yield pids
    for pid in pids:
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def test_discovery_configs_runs_and_run_dir(ws):
    a = _config(ws, "tiny")
    b = _config(ws, "other", run_name="named")
    assert list_configs(ws) == sorted([a, b])
    assert run_dir_for_config(ws, a) == ws.training / "demo" / "runs" / "tiny"
    assert run_dir_for_config(ws, b) == ws.training / "demo" / "runs" / "named"
    (ws.training / "demo" / "runs" / "tiny").mkdir(parents=True)
    assert list_runs(ws) == [ws.training / "demo" / "runs" / "tiny"]
    with pytest.raises(WorkspaceError):
        run_dir_for_config(ws, "/etc/passwd")
    bad = ws.training / "demo" / "configs" / "bad.yaml"
    bad.write_text("model: [unclosed")
    with pytest.raises(UserError, match="bad.yaml"):
        run_dir_for_config(ws, bad)


def test_states_listed_newest_first_from_sidecars(tmp_path):
    states = tmp_path / "run" / "states"
    states.mkdir(parents=True)
    for step, val in [(100, 0.5), (300, None), (200, 0.25)]:
        (states / f"step_{step:08d}.pt").write_bytes(b"x")
        (states / f"step_{step:08d}.json").write_text(json.dumps(
            {"step": step, "epoch": step // 100, "time": 1.7e9, "train_loss": 1.5, "val_loss": val}))
    (states / "step_00000400.pt").write_bytes(b"x")  # no sidecar: step from the name
    (states / "notes.txt").write_text("ignored")
    listed = list_states(tmp_path / "run")
    assert [s.step for s in listed] == [400, 300, 200, 100]
    assert listed[2].val_loss == 0.25 and "val loss 0.25" in listed[2].label()
    assert "train loss 1.5" in listed[1].label() and "epoch 3" in listed[1].label()


def test_checkpoints_samples_and_base_models(ws):
    run = ws.training / "demo" / "runs" / "r"
    (run / "checkpoints").mkdir(parents=True)
    for n in ("g_00000010", "g_00000020", "do_00000020", "config.json"):
        (run / "checkpoints" / n).write_bytes(b"x")
    (run / "config.yaml").write_text("model: hifigan\n")
    assert [p.name for p in list_checkpoints(run)] == ["g_00000020", "g_00000010"]
    (ws.models / "hifigan" / "universal").mkdir(parents=True)
    (ws.models / "hifigan" / "universal" / "g_02500000").write_bytes(b"x")
    (ws.models / "hifigan" / "universal" / "config.json").write_text("{}")
    (ws.models / "tortoise").mkdir()
    (ws.models / "tortoise" / "autoregressive.pth").write_bytes(b"x")
    (ws.models / "tortoise" / "dvae.pth").write_bytes(b"x")
    assert list_base_models(ws, "hifigan") == [
        "models/hifigan/universal/g_02500000", "training/demo/runs/r/checkpoints/g_00000020",
        "training/demo/runs/r/checkpoints/g_00000010"]
    assert list_base_models(ws, "autoregressive") == ["models/tortoise/autoregressive.pth"]

    for step in (5, 10):
        d = run / "samples" / f"step_{step:08d}"
        d.mkdir(parents=True)
        (d / "clip_a.wav").write_bytes(b"x")
        (d / "clip_a_ref.wav").write_bytes(b"x")
        (d / "clip_b.wav").write_bytes(b"x")
    assert list_sample_steps(run) == [10, 5]
    clips = sample_clips(run, 10)
    assert [(n, w.name, r.name if r else None) for n, w, r in clips] == [
        ("clip_a", "clip_a.wav", "clip_a_ref.wav"), ("clip_b", "clip_b.wav", None)]


def test_lock_probe_never_creates_the_file_and_sees_a_holder(tmp_path, stand_in, cleanup):
    run = tmp_path / "run"
    run.mkdir()
    assert lock_holder(run) is None
    assert not (run / "train.lock").exists()
    res = _spawn(stand_in, run)
    cleanup.append(res.pid)
    assert _wait(lambda: lock_holder(run), what="lock") == res.pid
    os.killpg(res.pid, signal.SIGKILL)
    _wait(lambda: not pid_alive(res.pid), what="exit")
    assert lock_holder(run) is None  # the kernel released the dead holder's lock


def test_launch_refused_while_the_run_holds_its_lock(ws, stand_in, cleanup):
    cfg = _config(ws)
    run = run_dir_for_config(ws, cfg)
    res = _spawn(stand_in, run)
    cleanup.append(res.pid)
    _wait(lambda: run_status(run).state == "running", what="running")
    with pytest.raises(UserError, match="already training"):
        launch(ws, cfg)
    # a second stand-in on the same folder is refused by the lock itself
    second = spawn_detached(run / "other", [sys.executable, str(stand_in), str(run), "5", "0.01", "normal"])
    cleanup.append(second.pid)
    _wait(lambda: not pid_alive(second.pid), what="second exits")
    assert "another trainer holds the lock" in launcher_paths(run / "other")[1].read_text()


def test_stop_waits_for_the_trainer_to_save(tmp_path, stand_in, cleanup):
    run = tmp_path / "run"
    res = _spawn(stand_in, run)
    cleanup.append(res.pid)
    _wait(lambda: (run_status(run).step or 0) >= 3, what="steps")
    result = stop(run, timeout=20)
    assert result.outcome == "saved", result
    assert not pid_alive(res.pid)
    st = run_status(run)
    assert st.state == "stopped" and st.step == result.step
    assert list_states(run)[0].step == result.step
    assert f"step {result.step}" in result.message
    assert stop(run).outcome == "not running"


def test_stop_kills_a_trainer_that_ignores_sigterm(tmp_path, stand_in, cleanup):
    run = tmp_path / "run"
    res = _spawn(stand_in, run, mode="ignore-term")
    cleanup.append(res.pid)
    _wait(lambda: run_status(run).state == "running", what="running")
    t0 = time.monotonic()
    result = stop(run, timeout=1.5)
    assert result.outcome == "killed", result
    assert time.monotonic() - t0 < 12
    assert not pid_alive(res.pid)
    st = run_status(run)
    assert st.state == "failed" and "killed" in st.message


def test_sigkilled_trainer_reads_as_failed_with_its_log_tail(tmp_path, stand_in, cleanup):
    run = tmp_path / "run"
    res = _spawn(stand_in, run)
    cleanup.append(res.pid)
    _wait(lambda: (run_status(run).step or 0) >= 2, what="steps")
    os.kill(res.pid, signal.SIGKILL)
    _wait(lambda: not pid_alive(res.pid), what="death")
    st = run_status(run)
    assert st.state == "failed"
    assert "stopped without saving" in st.message
    assert "stand-in trainer started" in st.log_tail and "loss" in st.log_tail


def test_reconnect_from_another_process(tmp_path, stand_in, cleanup):
    """A restarted UI (a process that did not launch the trainer) sees the same running run."""
    run = tmp_path / "run"
    res = _spawn(stand_in, run)
    cleanup.append(res.pid)
    _wait(lambda: run_status(run).state == "running", what="running")
    code = f"from modules.run_manager import run_status; s = run_status({str(run)!r}); print(s.state, s.pid)"
    out = subprocess.run([sys.executable, "-c", code], env=python_env(), capture_output=True, text=True,
                         timeout=60, check=True).stdout.split()
    assert out == ["running", str(res.pid)]
    # stopping from that other process works too: signals go to the trainer's process group
    code = f"from modules.run_manager import stop; r = stop({str(run)!r}, timeout=20); print(r.outcome)"
    out = subprocess.run([sys.executable, "-c", code], env=python_env(), capture_output=True, text=True,
                         timeout=60, check=True).stdout.split()
    assert out == ["saved"]


def test_trainer_message_shown_for_nan_exit_and_failed_start(tmp_path, stand_in, cleanup):
    run = tmp_path / "run"
    res = _spawn(stand_in, run, delay=0.01, mode="nan")
    cleanup.append(res.pid)
    _wait(lambda: not pid_alive(res.pid), what="exit")
    st = run_status(run)
    assert st.state == "failed" and st.message == "loss became NaN at step 3; lower the learning rate"

    bad = tmp_path / "bad"
    res = spawn_detached(bad, [sys.executable, "-c", "import sys; print('error: config broken'); sys.exit(2)"])
    cleanup.append(res.pid)
    _wait(lambda: not pid_alive(res.pid), what="exit")
    st = run_status(bad)
    assert st.state == "failed" and "exit code 2" in st.message and "error: config broken" in st.log_tail


def test_delete_states_and_run_inside_workspace_only(ws, stand_in, cleanup):
    run = ws.training / "demo" / "runs" / "r"
    (run / "states").mkdir(parents=True)
    for step in (1, 2, 3):
        (run / "states" / f"step_{step:08d}.pt").write_bytes(b"x")
        (run / "states" / f"step_{step:08d}.json").write_text(json.dumps({"step": step}))
    removed = delete_old_states(ws, run, keep=1)
    assert sorted(p.name for p in removed) == ["step_00000001.json", "step_00000001.pt",
                                               "step_00000002.json", "step_00000002.pt"]
    assert [s.step for s in list_states(run)] == [3]
    with pytest.raises(UserError, match="not a run folder"):
        delete_run(ws, ws.training / "demo")
    with pytest.raises(WorkspaceError):
        delete_run(ws, ws.root.parent)
    res = _spawn(stand_in, run)
    cleanup.append(res.pid)
    _wait(lambda: run_status(run).active, what="active")
    with pytest.raises(UserError, match="stop it"):
        delete_run(ws, run)
    os.killpg(res.pid, signal.SIGKILL)
    _wait(lambda: not pid_alive(res.pid), what="death")
    summary = run_summary(ws, run)
    assert summary["run"] == "demo/r" and summary["states"] >= 1 and summary["state"] == "failed"
    assert launcher_paths(run)[0].is_file()
    assert delete_run(ws, run) == run and not run.exists()
    assert not launcher_paths(run)[0].exists() and list_runs(ws) == []


def _write_records(path: Path, records: list[dict], mode: str = "a") -> None:
    with open(path, mode) as fh:
        for r in records:
            fh.write(json.dumps(r) + "\n")


def test_metrics_reader_is_incremental_and_splits_validation(tmp_path):
    path = tmp_path / "metrics.jsonl"
    reader = MetricsReader(path)
    assert not reader.update() and reader.train.empty
    _write_records(path, [{"step": s, "epoch": 0, "time": 100.0 + s, "lr": 1e-3, "grad_norm": 2.0,
                           "mel_l1": 1.0 / s, "disc": 0.5} for s in range(1, 11)])
    with open(path, "a") as fh:  # a torn last line waits for its end
        fh.write('{"step": 11, "epoch": 0, "time": 111.0, "lr": 0.001, "mel_l1"')
    assert reader.update()
    assert len(reader.train) == 10
    with open(path, "a") as fh:
        fh.write(': 0.09}\n{"step": 10, "validation": true, "val_mel_l1": 0.3}\n')
    assert reader.update()
    assert len(reader.train) == 11 and list(reader.validation["val_mel_l1"]) == [0.3]
    assert not reader.update()
    frames = metric_frames(reader, x="step")
    loss = frames["loss"]
    assert set(loss["series"]) == {"mel_l1", "disc", "val_mel_l1 (validation)"}
    assert loss[loss["series"] == "mel_l1"]["value"].iloc[-1] == pytest.approx(0.09)
    assert set(frames["lr"]["series"]) == {"lr"} and set(frames["grad_norm"]["series"]) == {"grad_norm"}
    by_epoch = metric_frames(reader, x="epoch", steps_per_epoch=5)["loss"]
    assert by_epoch[by_epoch["series"] == "mel_l1"]["epoch"].iloc[-1] == pytest.approx(11 / 5)
    # a fresh start replaces the file: the reader starts over
    path.unlink()
    _write_records(path, [{"step": 1, "time": 1.0, "mel_l1": 5.0}], mode="w")
    reader.update()
    assert list(reader.train["mel_l1"]) == [5.0]
    p = progress(reader, 1, 100)
    assert p["step"] == 1 and p["fraction"] == pytest.approx(0.01)


def test_progress_speed_and_eta(tmp_path):
    path = tmp_path / "metrics.jsonl"
    _write_records(path, [{"step": s, "time": 1000.0 + s / 4.0, "loss": 1.0} for s in range(0, 41, 10)])
    reader = MetricsReader(path)
    reader.update()
    p = progress(reader, 40, 140)
    assert p["its"] == pytest.approx(4.0) and p["eta_s"] == pytest.approx(25.0)


def test_smoothing_matches_a_debiased_ema():
    y = np.array([1.0, 0.0, 1.0, 0.0])
    w = 0.6
    expect, num, den = [], 0.0, 0.0
    for v in y:
        num = w * num + v
        den = w * den + 1
        expect.append(num / den)
    np.testing.assert_allclose(smooth(y, w), expect)
    np.testing.assert_array_equal(smooth(y, 0.0), y)


def test_downsampling_bounds_points_and_keeps_ends():
    n = 100_000
    x = np.arange(n, dtype=float)
    y = np.sin(x / 1000.0)
    xd, yd = downsample(x, y, 2000)
    assert len(xd) <= 2000 and len(xd) >= 1900
    assert xd[-1] == x[-1] and yd[-1] == y[-1]
    assert np.all(np.diff(xd) > 0)
    assert np.max(np.abs(np.interp(xd, x, y) - yd)) < 0.01  # bucket means follow the curve


def test_hundred_thousand_logged_points_become_small_frames(tmp_path):
    path = tmp_path / "metrics.jsonl"
    with open(path, "w") as fh:
        for s in range(100_000):
            fh.write(json.dumps({"step": s, "epoch": s // 1000, "time": s * 0.1, "lr": 1e-4, "grad_norm": 1.0,
                                 "mel_l1": 1.0, "gen": 2.0, "disc": 3.0}) + "\n")
            if s % 1000 == 0:
                fh.write(json.dumps({"step": s, "validation": True, "val_mel_l1": 0.5}) + "\n")
    reader = MetricsReader(path)
    reader.update()
    frames = metric_frames(reader, smoothing=0.9, max_points=2000)
    counts = frames["loss"].groupby("series").size()
    assert set(counts.index) == {"mel_l1", "gen", "disc", "val_mel_l1 (validation)"}
    assert counts.max() <= 2000 and counts["val_mel_l1 (validation)"] == 100
    assert isinstance(frames["loss"], pd.DataFrame) and list(frames["loss"].columns) == ["step", "value", "series"]


def test_tensorboard_starts_on_localhost(tmp_path):
    from modules.run_manager import start_tensorboard, stop_all_tensorboards

    run = tmp_path / "run"
    with pytest.raises(UserError, match="no TensorBoard logs"):
        start_tensorboard(run)
    (run / "tensorboard").mkdir(parents=True)
    try:
        url = start_tensorboard(run, wait_s=90)
        assert url.startswith("http://127.0.0.1:")
        assert start_tensorboard(run) == url  # one server per run
        with urllib.request.urlopen(url, timeout=10) as resp:
            assert resp.status == 200
    finally:
        stop_all_tensorboards()


def test_stop_during_start_up_reads_as_stopped(tmp_path, cleanup):
    """A trainer that dies of SIGTERM before its first step (no handler yet) was stopped, not crashed."""
    run = tmp_path / "run"
    code = ("import json, os, time, fcntl; r = %r; os.makedirs(r, exist_ok=True); "
            "l = open(r + '/train.lock', 'a+'); fcntl.flock(l, fcntl.LOCK_EX); "
            "json.dump({'state': 'running', 'pid': os.getpid(), 'step': 0, 'message': 'building models', "
            "'started': time.time(), 'updated': time.time()}, open(r + '/status.json', 'w')); "
            "time.sleep(60)") % str(run)
    res = spawn_detached(run, [sys.executable, "-c", code])
    cleanup.append(res.pid)
    _wait(lambda: run_status(run).state == "running", what="running")
    result = stop(run, timeout=20)
    assert result.outcome == "exited" and "nothing to save" in result.message
    assert run_status(run).state == "stopped"


def test_stop_before_the_trainer_wrote_anything_reads_as_stopped(tmp_path, cleanup):
    """Stopped while Python was still importing (no lock, no status.json yet): stopped, not failed."""
    run = tmp_path / "run"
    res = spawn_detached(run, [sys.executable, "-c", "import time; time.sleep(60)"])
    cleanup.append(res.pid)
    assert run_status(run).state == "starting"
    result = stop(run, timeout=20)
    assert result.outcome == "exited" and "nothing to save" in result.message
    st = run_status(run)
    assert st.state == "stopped" and not (run / "status.json").exists()


def test_lock_probe_does_not_take_the_lock(tmp_path):
    """A UI probing the lock in a loop must never make a starting trainer find the lock taken.

    (A probe that flocks the file itself collides a few percent of the time in this loop.)"""
    import fcntl

    from modules.trainer import runfolder

    run = tmp_path / "run"
    run.mkdir()
    (run / "train.lock").write_text("{}")
    assert runfolder.proc_locks_usable(run)  # on Linux the probe reads /proc/locks
    code = ("import time; from modules.run_manager import lock_holder; end = time.time() + 3\n"
            f"while time.time() < end: lock_holder({str(run)!r})")
    prober = subprocess.Popen([sys.executable, "-c", code], env=python_env())
    try:
        time.sleep(0.8)  # let the prober start looping
        collisions = attempts = 0
        end = time.monotonic() + 1.5
        while time.monotonic() < end:
            attempts += 1
            with open(run / "train.lock", "a+") as fh:
                try:
                    fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    fcntl.flock(fh, fcntl.LOCK_UN)
                except BlockingIOError:
                    collisions += 1
    finally:
        prober.wait(timeout=30)
    assert prober.returncode == 0
    assert attempts > 1000 and collisions == 0
