"""Quick start tab: one click from a voice folder to trained, scored checkpoints.

The pipeline is ``python -m modules quickstart VOICE`` (``modules.quickstart``) started detached, so
closing the UI does not stop it; its state is ``training/VOICE/quickstart.json`` and its log
``training/VOICE/quickstart.log``, which this tab reads on every refresh (a restarted UI shows the
same progress). Run again after a crash to continue from the stage it reached."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from modules.quickstart.pipeline import STAGES, flagged_clips, read_state, state_path
from modules.workspace import REPO_ROOT, Workspace

if TYPE_CHECKING:
    import gradio as gr

STAGE_LABELS = {"prepare": "1 prepare the recordings", "review": "2 review hint", "configs": "3 configure",
                "train": "4 train (in the queue)", "scores": "5 score the checkpoints", "done": "done: listen"}
PID_FILE = "quickstart.pid"


def log_path(ws: Workspace, voice: str) -> Path:
    return ws.training / voice / "quickstart.log"


def running(ws: Workspace, voice: str) -> bool:
    from modules.run_manager.probes import pid_alive

    try:
        pid = int((ws.training / voice / PID_FILE).read_text().strip())
    except (OSError, ValueError):
        return False
    return pid_alive(pid)


def start(ws: Workspace, voice: str, models: list[str], tiny: bool, transcriber: str,
          drop: bool = False) -> int:
    """Start (or continue) the pipeline detached; its pid."""
    from modules.errors import UserError

    if not voice:
        raise UserError("pick a voice folder (voices/NAME) first, or add one in the Prepare Dataset tab")
    if running(ws, voice):
        raise UserError(f"the quick start of {voice} is already running")
    if not models:
        raise UserError("tick at least one model")
    folder = ws.training / voice
    folder.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "modules", "--workspace", str(ws.root), "quickstart", voice,
           "--models", ",".join(models), "--transcriber", transcriber] + (["--tiny"] if tiny else []) + (
        ["--drop-flagged"] if drop else [])
    with open(log_path(ws, voice), "ab") as out:
        proc = subprocess.Popen(cmd, cwd=str(REPO_ROOT), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    (folder / PID_FILE).write_text(str(proc.pid))
    return proc.pid


def progress_markdown(ws: Workspace, voice: str | None) -> str:
    """Each stage ticked, current or waiting; the best steps when done."""
    if not voice or not state_path(ws, voice).is_file():
        return "Not started. Pick a voice and press **Run quick start**."
    state = read_state(ws, voice)
    at = STAGES.index(state.get("stage", "prepare"))
    live = running(ws, voice)
    lines = []
    for i, stage in enumerate(STAGES):
        done = i < at or stage == "done" == state.get("stage")
        mark = "✓ done" if done else ("… running" if i == at and live else "· waiting")
        lines.append(f"- {STAGE_LABELS[stage]}: **{mark}**")
    if state.get("stage") != "done" and not live:
        lines.append("\nStopped before the end: **Run quick start** continues from this stage.")
    flagged = flagged_clips(ws, voice) if at > STAGES.index("prepare") else []
    if flagged:
        shown = ", ".join(f"`{f}` ({why})" for f, why in flagged[:8])
        lines.append(f"\nFlagged by Prepare ({len(flagged)}): {shown}. Tick **Drop flagged clips** and run again "
                     "to remove them, or review them in the Prepare tab.")
    for model, why in (state.get("skipped") or {}).items():
        lines.append(f"\n{model} skipped: {why.split(': ', 1)[-1] if why.startswith(model) else why}")
    for model, step in (state.get("best") or {}).items():
        lines.append(f"\n**{model}**: best checkpoint step {step}. Listen in **Run Training → Try it** "
                     f"(config `{voice}/configs/quickstart-{model}.yaml`).")
    return "\n".join(lines)


def log_tail(ws: Workspace, voice: str | None, lines: int = 14) -> str:
    try:
        return "\n".join(log_path(ws, voice).read_text(errors="replace").splitlines()[-lines:]) if voice else ""
    except OSError:
        return ""


def build(workspace: Workspace, demo: "gr.Blocks") -> None:
    import gradio as gr

    from app.common import describe_exception, ok

    ws = workspace
    gr.Markdown("From recordings to a voice in one click: prepare the voice folder, configure every model whose "
                "base files are in `models/` (with settings derived from the data and this machine), train them "
                "one after another in the queue, score every validation step and pick the best checkpoint. It "
                "runs as its own process: close the UI whenever you like and come back.")
    voices = ws.list_voices()
    with gr.Row():
        voice = gr.Dropdown(voices, value=voices[0] if voices else None, label="Voice (voices/NAME)",
                            elem_id="qs-voice", scale=2)
        models = gr.CheckboxGroup([("HiFi-GAN vocoder", "hifigan"), ("Autoregressive", "autoregressive")],
                                  value=["hifigan", "autoregressive"], label="Models", elem_id="qs-models", scale=2)
        transcriber = gr.Dropdown(["faster-whisper", "openai-whisper", "none"], value="faster-whisper",
                                  label="Transcriber", info="none: transcripts beside the audio",
                                  elem_id="qs-transcriber", scale=1)
        tiny = gr.Checkbox(False, label="Demo sizes (a few CPU steps)", elem_id="qs-tiny", scale=1)
        drop = gr.Checkbox(False, label="Drop flagged clips", elem_id="qs-drop", scale=1)
    with gr.Accordion("…or upload recordings as a new voice", open=False, elem_id="qs-upload-box"):
        with gr.Row():
            new_voice = gr.Textbox("", label="New voice name", elem_id="qs-new-voice", scale=1)
            uploads = gr.File(None, file_count="multiple", type="filepath", label="Recordings (and transcripts)",
                              elem_id="qs-upload", scale=3)
    run_btn = gr.Button("Run quick start", variant="primary", elem_id="qs-run")
    message = gr.Markdown("", elem_id="qs-message")
    stages = gr.Markdown(progress_markdown(ws, voices[0] if voices else None), elem_id="qs-stages")
    console = gr.Textbox("", label="Quick start log (newest lines)", lines=14, max_lines=14, interactive=False,
                         elem_id="qs-log")
    timer = gr.Timer(2.0)

    def on_run(v, ms, t, tr, dr, name, files):
        try:
            if files:  # uploads become voices/NAME (the Prepare tab's importer), then that voice runs
                from modules.prepare.importers import import_files
                from modules.workspace import check_name

                if not (name or "").strip():
                    raise ValueError("type a new voice name for the uploaded recordings")
                v = check_name((name or "").strip())
                import_files(ws, v, [Path(f) for f in files])
            pid = start(ws, v, list(ms or []), bool(t), tr, bool(dr))
        except Exception as exc:  # noqa: BLE001
            return describe_exception(exc, "Quick start"), gr.update()
        return (ok(f"Quick start of `{v}` running (pid {pid}); it continues if you close this page."),
                gr.update(choices=ws.list_voices(), value=v))

    run_btn.click(on_run, [voice, models, tiny, transcriber, drop, new_voice, uploads], [message, voice])

    def refresh(v):
        return progress_markdown(ws, v), log_tail(ws, v)

    timer.tick(refresh, voice, [stages, console], show_progress="hidden", queue=True)
    voice.change(refresh, voice, [stages, console], show_progress="hidden")
    demo.load(lambda: gr.update(choices=ws.list_voices()), None, voice)
