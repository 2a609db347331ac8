"""The job queue: three queued tiny runs run in order, one failing on purpose; the file is the truth."""

from __future__ import annotations

import json
import subprocess
import sys

from modules.config.schema import config_from_dict, save_config
from modules.run_manager import queue
from modules.workspace import Workspace
from tests.conftest import REPO, python_env
from tests.helpers.hifigan_helpers import demo_src, tiny_config, ws  # noqa: F401


def _cli(root, *args):
    return subprocess.run([sys.executable, "-m", "modules", "--workspace", str(root), "queue", *args], cwd=REPO,
                          env=python_env(), capture_output=True, text=True, timeout=600)


def test_queued_runs_run_in_order_and_a_failure_does_not_block(ws):  # noqa: F811
    configs = ws / "training" / "demo" / "configs"
    for name, over in (("first", {}), ("broken", {"dataset": "training/nowhere"}), ("third", {})):
        save_config(config_from_dict(tiny_config(max_steps=2, save_every_steps=2, **over)), configs / f"{name}.yaml")
    for name in ("first", "broken", "third"):
        assert _cli(ws, "add", f"training/demo/configs/{name}.yaml").returncode == 0
    listed = _cli(ws, "list").stdout.splitlines()
    assert [line.split()[0:2] for line in listed] == [["1", "queued"], ["2", "queued"], ["3", "queued"]]
    done = _cli(ws, "run")
    assert done.returncode == 0 and "3 job(s) run" in done.stdout, done.stderr
    jobs = json.loads((ws / "training" / "queue.json").read_text())["jobs"]
    assert [(j["config"].split("/")[-1], j["state"]) for j in jobs] == [
        ("first.yaml", "done"), ("broken.yaml", "failed"), ("third.yaml", "done")]
    assert jobs[0]["ended"] <= jobs[1]["started"] and jobs[1]["ended"] <= jobs[2]["started"]  # one after another
    assert jobs[1]["exit"] != 0
    for name in ("first", "third"):
        assert (ws / "training" / "demo" / "runs" / name / "states" / "step_00000002.pt").is_file()
    assert _cli(ws, "remove", "2").returncode == 0
    assert [j["config"].split("/")[-1] for j in queue.jobs(Workspace.open(ws))] == ["first.yaml", "third.yaml"]
    again = _cli(ws, "run")
    assert "0 job(s) run" in again.stdout  # nothing queued: the finished jobs are not run twice


def test_queue_edits_and_a_runner_left_behind(ws):  # noqa: F811
    w = Workspace.open(ws)
    path = save_config(config_from_dict(tiny_config()), ws / "training" / "demo" / "configs" / "a.yaml")
    a, b = queue.add(w, path), queue.add(w, path, resume="latest")
    queue.move(w, 2, 1)
    assert [j["id"] for j in queue.jobs(w)] == [b["id"], a["id"]]
    data = json.loads(queue.queue_path(w).read_text())
    data["jobs"][0].update(state="running", runner=999_999_999)  # a runner that died mid-job
    queue.queue_path(w).write_text(json.dumps(data))
    queue.mark_interrupted(w)
    first = queue.jobs(w)[0]
    assert first["state"] == "failed" and "stopped while this job ran" in first["message"]
    assert not queue.runner_active(w)


def test_a_job_that_cannot_start_fails_alone(ws):  # noqa: F811
    w = Workspace.open(ws)
    good = save_config(config_from_dict(tiny_config(max_steps=1, save_every_steps=1)),
                       ws / "training" / "demo" / "configs" / "good.yaml")
    queue.add(w, good)
    data = json.loads(queue.queue_path(w).read_text())
    data["jobs"].insert(0, dict(data["jobs"][0], id="bad", config="../../outside.yaml"))  # edited by hand
    queue.queue_path(w).write_text(json.dumps(data))
    assert queue.run_queue(w, log=lambda _: None) == 2
    states = {j["id"]: j for j in queue.jobs(w)}
    assert states["bad"]["state"] == "failed" and "outside" in states["bad"]["message"]
    assert [j["state"] for j in queue.jobs(w) if j["id"] != "bad"] == ["done"]

