"""``python -m modules [--workspace DIR] queue add CONFIG.yaml | list | remove N | run``: the job queue
the Run tab shows (``run`` works through it in the foreground)."""

from __future__ import annotations

import argparse
import time
from typing import Any


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("queue", help="queue training runs to start one after another", description=__doc__)
    sub = p.add_subparsers(dest="queue_command", required=True, metavar="ACTION")
    a = sub.add_parser("add", help="append a config to the queue")
    a.add_argument("config", help="config YAML inside the workspace (e.g. training/NAME/configs/x.yaml)")
    a.add_argument("--resume", default=None, metavar="latest|PATH", help="resume its run instead of starting fresh")
    a.add_argument("--gpus", type=int, default=None)
    sub.add_parser("list", help="the queue, numbered")
    r = sub.add_parser("remove", help="take job N off the queue")
    r.add_argument("n", type=int, metavar="N")
    sub.add_parser("run", help="work through the queue in the foreground")


def describe(job: dict, n: int) -> str:
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(job.get("added", 0)))
    extra = f" exit {job['exit']}" if "exit" in job else ""
    return f"{n:3d}  {job['state']:8s} {job['config']}  (added {when}){extra}"


def run(args: argparse.Namespace, workspace: Any) -> int:
    from modules.run_manager import queue

    if args.queue_command == "add":
        job = queue.add(workspace, args.config, args.resume, args.gpus)
        print(f"queued {job['config']} as job {len(queue.jobs(workspace))}")
    elif args.queue_command == "list":
        all_jobs = queue.jobs(workspace)
        print("\n".join(describe(j, i) for i, j in enumerate(all_jobs, 1)) or "the queue is empty")
    elif args.queue_command == "remove":
        job = queue.remove(workspace, args.n)
        print(f"removed {job['config']}")
    else:
        ran = queue.run_queue(workspace)
        print(f"queue: {ran} job(s) run")
    return 0
