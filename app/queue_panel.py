"""The Run tab's job queue: "Add to queue" beside Start, the queue as a table, remove and reorder.

The queue is ``training/queue.json`` (``modules.run_manager.queue``); adding a job starts the
detached queue runner when none works, so queued runs go on when the UI is closed."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from modules.run_manager import queue
from modules.workspace import Workspace

if TYPE_CHECKING:
    import gradio as gr

QUEUE_HEADERS = ["#", "state", "config", "added", "exit"]


def queue_rows(ws: Workspace) -> list[list[Any]]:
    rows = []
    for n, job in enumerate(queue.jobs(ws), 1):
        added = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(job.get("added", 0)))
        rows.append([n, job["state"], job["config"], added, job.get("exit", "")])
    return rows


def queue_key(ws: Workspace) -> tuple:
    """Changes whenever the queue file does (the tab redraws the table only then)."""
    try:
        st = queue.queue_path(ws).stat()
        return (st.st_mtime_ns, st.st_size)
    except OSError:
        return ()


def build_queue_panel(ws: Workspace, config: "gr.Dropdown", resume: "gr.Dropdown", gpus: "gr.Dropdown",
                      add_btn: "gr.Button", timer: "gr.Timer") -> None:
    """The queue accordion and its wiring (inside the Run tab's layout)."""
    import gradio as gr

    from app.common import describe_exception, ok
    from app.train_runs import config_path

    with gr.Accordion("Queue", open=True, elem_id="train-queue"):
        gr.Markdown("Queued runs start one after another (a failed run does not block the next). The queue is "
                    "`training/queue.json`: it survives closing the UI, and `python -m modules queue` edits it too.")
        table = gr.Dataframe(queue_rows(ws), headers=QUEUE_HEADERS, interactive=False, elem_id="train-queue-table")
        with gr.Row():
            job = gr.Number(1, precision=0, minimum=1, label="Job #", elem_id="train-queue-job", scale=1)
            up_btn = gr.Button("Move up", elem_id="train-queue-up", scale=1)
            remove_btn = gr.Button("Remove", elem_id="train-queue-remove", scale=1)
        message = gr.Markdown("", elem_id="train-queue-message")
    key = gr.State(queue_key(ws))

    def on_add(label, resume_value, gpu_value):
        try:
            added = queue.add(ws, config_path(ws, label), resume_value or None, int(gpu_value) if gpu_value else None)
            pid = queue.start_runner(ws)
        except Exception as exc:  # noqa: BLE001
            return describe_exception(exc, "Add to queue"), gr.update(), gr.update()
        how = f"the queue runner started (pid {pid})" if pid else "the queue runner will reach it"
        return ok(f"Queued `{added['config']}`; {how}."), gr.update(value=queue_rows(ws)), queue_key(ws)

    add_btn.click(on_add, [config, resume, gpus], [message, table, key])

    def on_remove(n):
        try:
            removed = queue.remove(ws, int(n or 0))
        except Exception as exc:  # noqa: BLE001
            return describe_exception(exc, "Remove"), gr.update(), gr.update()
        return ok(f"Removed `{removed['config']}`."), gr.update(value=queue_rows(ws)), queue_key(ws)

    def on_up(n):
        try:
            queue.move(ws, int(n or 0), int(n or 0) - 1)
        except Exception as exc:  # noqa: BLE001
            return describe_exception(exc, "Move up"), gr.update(), gr.update()
        return "", gr.update(value=queue_rows(ws)), queue_key(ws)

    remove_btn.click(on_remove, job, [message, table, key], api_visibility="private")
    up_btn.click(on_up, job, [message, table, key], api_visibility="private")

    def on_tick(known):
        now = queue_key(ws)
        if now == tuple(known or ()):
            return gr.update(), known
        return gr.update(value=queue_rows(ws)), now

    timer.tick(on_tick, key, [table, key], show_progress="hidden", queue=True)
