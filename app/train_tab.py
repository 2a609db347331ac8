"""Run Training tab: start/stop/resume trainer processes and watch them live.

Nothing here holds training state: every refresh reads the run folder
(``status.json``, ``train.lock``, ``metrics.jsonl``, ``states/``, ``samples/``)
through ``modules.run_manager``, so a restarted UI or a second browser tab shows the
same run. The trainer is a detached process; this tab only launches and signals it.
The pure helpers (``status_html``, ``resume_choices``, ...) are testable without a browser.
"""

from __future__ import annotations

import argparse
import html
import os
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modules import run_manager as runs
from modules.errors import UserError
from modules.run_manager.metrics import format_duration
from modules.workspace import Workspace

if TYPE_CHECKING:
    import gradio as gr
    import pandas as pd

REFRESH_S = 2.0
STOP_TIMEOUT_S = 120.0
SAMPLE_SLOTS = 6
PLOT_POINTS = 1000  # per series: a 1400 px wide plot shows no more, and the browser redraws fast
CONSOLE_LINES = 12  # fewer than the box shows, so wrapped lines still leave the newest in view
LATEST = "latest"
FRESH = ""
GPU_CHOICES = [("from the config", ""), ("1", "1"), ("2", "2"), ("3", "3"), ("4", "4"), ("8", "8")]
STATE_COLOURS = {"running": "#2563eb", "starting": "#2563eb", "finished": "#15803d", "stopped": "#a16207",
                 "failed": "#b91c1c", "idle": "#6b7280"}


# --------------------------------------------------------------------------------------------
# pure helpers
# --------------------------------------------------------------------------------------------

def config_choices(ws: Workspace) -> list[str]:
    """Saved configs as ``NAME/configs/CONFIG.yaml`` (relative to ``training/``)."""
    return [runs.config_label(ws, p) for p in runs.list_configs(ws)]


def config_path(ws: Workspace, label: str) -> Path:
    """The config file of a dropdown label (inside ``training/``)."""
    if not label:
        raise UserError("pick a config first (save one in the Generate Configuration tab)")
    return ws.inside(ws.training / label)


def run_dir_of(ws: Workspace, label: str) -> Path | None:
    """The run folder a config trains into (None when no config or it cannot be read)."""
    try:
        return runs.run_dir_for_config(ws, config_path(ws, label))
    except (UserError, ValueError, OSError):
        return None


def resume_choices(ws: Workspace, run_dir: Path | None) -> list[tuple[str, str]]:
    """"start fresh" first, then the run's states newest first with step, epoch, val loss, time."""
    out = [("start fresh", FRESH)]
    if run_dir is None:
        return out
    for s in runs.list_states(run_dir):
        out.append((s.label(), _rel(ws, s.path)))
    return out


def active_config(ws: Workspace) -> str | None:
    """The config of a run that is training now (reconnect on page load), else None."""
    for label in config_choices(ws):
        run_dir = run_dir_of(ws, label)
        if run_dir is not None and run_dir.is_dir() and runs.run_status(run_dir).active:
            return label
    return None


def status_html(st: "runs.RunStatus", prog: dict[str, Any] | None, run_label: str) -> str:
    """State badge, step/total, epoch, speed, ETA and a progress bar; data-* attributes for tests."""
    prog = prog or {}
    step = st.step if st.step is not None else prog.get("step")
    total = st.total_steps
    colour = STATE_COLOURS.get(st.state, "#6b7280")
    parts = [f'<b style="color:{colour}" class="vt-state">{html.escape(st.state)}</b>']
    if run_label:
        parts.append(html.escape(run_label))
    if step is not None:
        parts.append(f"step {step}" + (f" / {total}" if total else ""))
    if st.epoch is not None:
        parts.append(f"epoch {st.epoch:.4g}")
    if prog.get("its"):
        parts.append(f"{prog['its']:.2f} it/s")
    if st.active and prog.get("eta_s") is not None:
        parts.append(f"ETA {format_duration(prog['eta_s'])}")
    if st.pid and st.active:
        parts.append(f"pid {st.pid}")
    frac = prog.get("fraction")
    if frac is None and step is not None and total:
        frac = min(1.0, step / total)
    bar = (f'<progress max="1" value="{frac:.4f}" style="width:100%"></progress>' if frac is not None else "")
    return (f'<div id="train-progress" data-state="{html.escape(st.state)}" data-step="{step if step is not None else ""}"'
            f' data-pid="{st.pid or ""}">{" · ".join(parts)}{bar}</div>')


def failure_text(st: "runs.RunStatus") -> str:
    """The trainer's own message for a failed run, then the tail of its log."""
    if st.state != "failed":
        return ""
    text = st.message or "The run failed."
    if st.log_tail:
        text += "\n\n--- last log lines ---\n" + st.log_tail
    return text


def runs_table(ws: Workspace) -> list[list[Any]]:
    """Rows of the runs list: run, model, state, step, states, last metrics, command."""
    rows = []
    for run_dir in runs.list_runs(ws):
        s = runs.run_summary(ws, run_dir)
        rows.append([s["path"], s["model"], s["state"], s["step"], s["states"], s["last train"],
                     s["last validation"], s["command"]])
    return rows


RUNS_HEADERS = ["run folder", "model", "state", "step", "states", "last train metrics", "last validation",
                "command"]


def sample_step_choices(run_dir: Path | None) -> list[tuple[str, str]]:
    steps = runs.list_sample_steps(run_dir) if run_dir else []
    return [("latest", LATEST)] + [(f"step {s}", str(s)) for s in steps]


def resolve_sample_step(run_dir: Path | None, choice: str | None) -> int | None:
    steps = runs.list_sample_steps(run_dir) if run_dir else []
    if not steps:
        return None
    if choice and choice != LATEST and choice.isdigit() and int(choice) in steps:
        return int(choice)
    return steps[0]


def dataset_clips(ws: Workspace, run_dir: Path | None) -> list[tuple[str, str]]:
    """Clips of the run's dataset for the Try-it panel: validation clips first, then training clips."""
    if run_dir is None:
        return []
    dataset = run_dir.parent.parent
    out = []
    for name in ("validation.txt", "train.txt"):
        try:
            lines = (dataset / name).read_text(encoding="utf-8").splitlines()
        except OSError:
            continue
        for line in lines[:200]:
            rel = line.split("|", 1)[0].strip()
            if rel:
                text = line.split("|", 1)[1][:60] if "|" in line else ""
                out.append((f"{rel} ({name.split('.')[0]}) {text}".strip(), _rel(ws, dataset / rel)))
    return out


def checkpoint_choices(ws: Workspace, run_dir: Path | None) -> list[tuple[str, str]]:
    """Exported checkpoints then training states of a run, newest first."""
    if run_dir is None:
        return []
    out = [(f"{p.name} (export)", _rel(ws, p)) for p in runs.list_checkpoints(run_dir)]
    out += [(f"state {s.label()}", _rel(ws, s.path)) for s in runs.list_states(run_dir)]
    return out


def upload_root() -> Path:
    """Gradio's upload/cache folder: the only place outside the workspace a clip may come from."""
    base = os.environ.get("GRADIO_TEMP_DIR") or str(Path(tempfile.gettempdir()) / "gradio")
    return Path(base).expanduser().resolve()


def resolve_clip(ws: Workspace, clip: str) -> Path:
    """A Try-it clip as a file: an upload (absolute, under ``upload_root()``) or a path inside the
    workspace (relative to it or absolute). Anything else is refused with a UserError."""
    src = Path(str(clip)).expanduser()
    uploads = upload_root()
    if src.is_absolute() and uploads in src.resolve().parents:
        path = src.resolve()
    else:
        try:
            path = ws.inside(src)
        except ValueError:  # WorkspaceError: the path leaves the workspace
            raise UserError(f"{clip}: refused, a clip must be a dataset clip, a file inside the workspace "
                            f"{ws.root} or an upload") from None
    if not path.is_file():
        raise UserError(f"{clip}: clip not found")
    return path


def _clip_list(clips: str | list[str] | None) -> list[str]:
    if not clips:
        return []
    return [clips] if isinstance(clips, (str, os.PathLike)) else [c for c in clips if c]


def _try_inputs(ws: Workspace, checkpoint: str, clips: str | list[str]) -> tuple[Path, list[Path], Path]:
    """(checkpoint, clips, output folder): the checkpoint inside the workspace, each clip a dataset
    clip / workspace file or an upload (``resolve_clip``), the output under ``RUN/try_it/``."""
    ckpt = ws.inside(checkpoint)
    names = _clip_list(clips)
    if not names:
        raise UserError("pick a dataset clip or upload one")
    srcs = [resolve_clip(ws, c) for c in names]
    run_dir = ckpt.parent.parent  # RUN/checkpoints/FILE or RUN/states/FILE
    return ckpt, srcs, run_dir / "try_it" / time.strftime("%Y%m%d-%H%M%S")


def run_model(run_dir: Path | None) -> str | None:
    """The model type of a run (from its config.yaml), None when unknown."""
    if run_dir is None:
        return None
    try:
        return runs.read_config_yaml(run_dir / "config.yaml").get("model")
    except UserError:
        return None


def vocode_clip(ws: Workspace, checkpoint: str, clip: str) -> Path:
    """Resynthesise one clip with a run's HiFi-GAN checkpoint through ``python -m modules vocode``'s code."""
    from modules.hifigan import vocode

    ckpt, srcs, out_dir = _try_inputs(ws, checkpoint, clip)
    args = argparse.Namespace(checkpoint=str(ckpt), config=None, inputs=[str(srcs[0])], out=str(out_dir),
                              device="auto")
    vocode.run(args, ws)
    return out_dir / (srcs[0].stem + ".wav")


def synthesize_defaults() -> dict[str, Any]:
    """``python -m modules synthesize``'s own option defaults, so the UI never drifts from the CLI."""
    from modules.autoregressive import synthesize

    parser = argparse.ArgumentParser()
    synthesize.add_parser(parser.add_subparsers())
    return vars(parser.parse_args(["synthesize", "--text", "x", "--reference", "x", "--out", "x"]))


def speak_text(ws: Workspace, checkpoint: str, clips: str | list[str], text: str,
               repetition_penalty: float | None = None) -> Path:
    """Text to speech with a run's autoregressive checkpoint, every clip in ``clips`` as a voice
    reference, through ``python -m modules synthesize``'s code and the run's own sampling settings and
    vocoder; ``repetition_penalty`` None takes synthesize's default."""
    from modules.autoregressive import synthesize

    if not (text or "").strip():
        raise UserError("type a sentence to speak")
    ckpt, srcs, out_dir = _try_inputs(ws, checkpoint, clips)
    try:
        section = runs.read_config_yaml(ckpt.parent.parent / "config.yaml").get("autoregressive") or {}
    except UserError:
        section = {}
    defaults = synthesize_defaults()
    out = out_dir / "speech.wav"
    args = argparse.Namespace(
        checkpoint=str(ckpt), text=[text.strip()], reference=[str(s) for s in srcs], out=str(out), tokenizer=None,
        dvae=None, mel_norms=None, vocoder=section.get("vocoder"),
        temperature=section.get("sample_temperature", defaults["temperature"]),
        top_p=section.get("sample_top_p", defaults["top_p"]),
        repetition_penalty=(defaults["repetition_penalty"] if repetition_penalty is None
                            else float(repetition_penalty)),
        max_tokens=section.get("sample_max_mel_tokens", 250), seed=0, device="auto")
    synthesize.run(args, ws)
    return out


# series a model's runs start with unticked: HiFi-GAN's total ``loss`` (~100, mostly mel L1 x 45)
# squashes every other curve to a flat line; the user can tick it back
DEFAULT_HIDDEN_SERIES: dict[str, frozenset[str]] = {"hifigan": frozenset({"loss"})}


def series_selection(names: list[str], known: list[str], shown: list[str] | None, model: str | None) -> list[str]:
    """The loss series to tick when the run's series list changes (``names``, in plot order).

    A series the user ticks stays ticked and one they unticked (``known`` but not ``shown``)
    stays hidden; a series new to the list is ticked unless the model hides it by default
    (``DEFAULT_HIDDEN_SERIES``)."""
    shown_set, known_set = set(shown or []), set(known or [])
    default_hidden = DEFAULT_HIDDEN_SERIES.get(model or "", frozenset())
    return [n for n in names if n in shown_set or (n not in known_set and n not in default_hidden)]


def shown_series_frame(frame: "pd.DataFrame", shown: list[str] | None) -> "pd.DataFrame":
    """The loss plot's rows: those of the ticked series (train and validation alike)."""
    if frame is None or frame.empty:
        return frame
    return frame[frame["series"].isin(list(shown or []))]


# Tableau 20 order: distinct colours for up to 20 series, the first ten the familiar Vega ones
PALETTE = ["#4c78a8", "#f58518", "#e45756", "#72b7b2", "#54a24b", "#eeca3b", "#b279a2", "#ff9da6", "#9d755d",
           "#bab0ac", "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf"]


def series_colours(names: list[str], frame: "pd.DataFrame | None") -> dict[str, str]:
    """A LinePlot ``color_map`` for the series drawn in ``frame``, coloured by their place in ``names``
    (all of the plot's series) so a series keeps its colour when others are ticked or unticked.

    Gradio 6's LinePlot fixes its colour domain when it builds the chart and later data-only updates
    keep it: a series new to the plot draws without a stroke and stays out of the legend. A changed
    ``color_map`` makes it rebuild the chart, so the map holds exactly the drawn series and changes
    whenever that set does."""
    if frame is None or frame.empty:
        return {}
    drawn = list(dict.fromkeys(frame["series"]))
    order = {n: i for i, n in enumerate(list(dict.fromkeys(list(names) + drawn)))}
    return {n: PALETTE[order[n] % len(PALETTE)] for n in drawn}


def plot_frame(frame: "pd.DataFrame", x: str) -> "pd.DataFrame | None":
    """A long frame for a LinePlot with the x column named ``x``; None when empty.

    An empty frame must never reach the plot: Gradio then loses the colour encoding and later
    points draw without a stroke."""
    if frame is None or frame.empty:
        return None
    return frame.rename(columns={x: "x"}) if x != "x" else frame


PLOT_TITLES = {"loss": "Losses", "quality": "Validation quality (higher is better)", "lr": "Learning rate",
               "grad_norm": "Gradient norm"}


def _plot_update(frame, x: str, title: str):
    import gradio as gr

    # the x column is always "x" and its name goes into the label: changing the axis title in
    # the same update as the data makes Gradio keep the old data
    return gr.update(value=plot_frame(frame, x), label=f"{title} (x: {x})")


def _rel(ws: Workspace, p: Path) -> str:
    try:
        return str(Path(p).resolve().relative_to(ws.root))
    except ValueError:
        return str(p)


# --------------------------------------------------------------------------------------------
# Gradio wiring
# --------------------------------------------------------------------------------------------

def build(workspace: Workspace, demo: "gr.Blocks") -> None:
    """Create the tab's widgets inside the current ``gr.Tab``."""
    import gradio as gr
    from gradio.context import Context

    from app.common import describe_exception, error, info, ok

    ws = workspace
    configs = config_choices(ws)
    tab = Context.block if isinstance(Context.block, gr.Tab) else None

    gr.Markdown("Start a saved config, watch it, stop it and resume it. The trainer runs as its own process: "
                "closing or restarting this UI does not stop it, and this tab reconnects when it opens.")
    with gr.Row():
        config = gr.Dropdown(configs, value=configs[0] if configs else None, label="Config", scale=4,
                             elem_id="train-config")
        resume = gr.Dropdown([("start fresh", FRESH)], value=FRESH, label="Resume from", scale=4,
                             elem_id="train-resume", info="the run's saved states, newest first")
        gpus = gr.Dropdown(GPU_CHOICES, value="", label="GPUs", scale=1, elem_id="train-gpus")
    with gr.Row():
        start_btn = gr.Button("Start", variant="primary", elem_id="train-start")
        stop_btn = gr.Button("Stop", variant="stop", elem_id="train-stop", interactive=False)
        refresh_btn = gr.Button("Refresh", elem_id="train-refresh")
    message = gr.Markdown("", elem_id="train-message")
    status = gr.HTML(status_html(runs.RunStatus("idle"), None, ""), elem_id="train-status")
    failure = gr.Textbox("", label="Failure", lines=8, max_lines=20, visible=False, interactive=False,
                         elem_id="train-failure")
    with gr.Row():
        x_axis = gr.Radio(["step", "epoch"], value="step", label="x axis", elem_id="train-x", scale=1)
        smoothing = gr.Slider(0.0, 0.99, value=0.6, step=0.01, label="Smoothing (train curves)",
                              elem_id="train-smoothing", scale=2)
    series = gr.CheckboxGroup([], value=[], label="Loss series shown (untick to hide; validation series are "
                              "marked '(validation)')", elem_id="train-series")
    # the plot's label pushes the chart down and the block clips the legend at the bottom
    gr.HTML("<style>#train-loss-plot, #train-quality-plot, #train-lr-plot, #train-grad-plot "
            "{overflow: visible !important; "
            "margin-bottom: 32px;}</style>", padding=False)
    plot_kw = dict(x="x", x_title=" ", y="value", color="series")
    loss_plot = gr.LinePlot(None, label="Losses", height=420, elem_id="train-loss-plot", **plot_kw)
    # accuracies and PESQ rise as the model improves and live on their own scale: not on the loss axis
    quality_plot = gr.LinePlot(None, label="Validation quality", height=300, elem_id="train-quality-plot",
                               visible=False, **plot_kw)
    with gr.Row():
        lr_plot = gr.LinePlot(None, label="Learning rate", height=300, elem_id="train-lr-plot", **plot_kw)
        grad_plot = gr.LinePlot(None, label="Gradient norm", height=300, elem_id="train-grad-plot", **plot_kw)
    console = gr.Textbox("", label="Console (train.log, newest lines)", lines=16, max_lines=16, interactive=False,
                         autoscroll=True, elem_id="train-console")

    with gr.Accordion("Validation samples", open=True, elem_id="train-samples"):
        sample_step = gr.Dropdown([("latest", LATEST)], value=LATEST, label="Validation step",
                                  elem_id="train-sample-step")
        sample_note = gr.Markdown("No validation audio yet.", elem_id="train-sample-note")
        slots = []
        for i in range(SAMPLE_SLOTS):
            with gr.Row(visible=False) as row:
                gen = gr.Audio(None, type="filepath", label="generated", interactive=False,
                               elem_id=f"train-sample-{i}")
                ref = gr.Audio(None, type="filepath", label="reference", interactive=False,
                               elem_id=f"train-sample-ref-{i}")
            slots.append((row, gen, ref))

    with gr.Accordion("TensorBoard", open=False):
        with gr.Row():
            tb_btn = gr.Button("Start TensorBoard for this run", elem_id="train-tb")
            tb_link = gr.Markdown("", elem_id="train-tb-link")

    with gr.Accordion("Try it", open=False, elem_id="train-try"):
        gr.Markdown("Listen to any checkpoint of this run. HiFi-GAN: the clip is resynthesised. "
                    "Autoregressive: the text is spoken with the clip as the voice reference.")
        with gr.Row():
            try_ckpt = gr.Dropdown([], label="Checkpoint", elem_id="train-try-ckpt", scale=2)
            try_clip = gr.Dropdown([], value=[], multiselect=True, label="Dataset clips",
                                   info="HiFi-GAN vocodes the first; autoregressive uses all as voice references",
                                   elem_id="train-try-clip", scale=2)
            try_upload = gr.File(None, file_count="multiple", file_types=["audio"], type="filepath",
                                 label="…and/or upload clips", elem_id="train-try-upload", scale=2)
        with gr.Row():
            try_text = gr.Textbox("", label="Text to speak (autoregressive runs)", elem_id="train-try-text", scale=3)
            try_penalty = gr.Slider(1.0, 10.0, value=float(synthesize_defaults()["repetition_penalty"]), step=0.1,
                                    label="Repetition penalty (autoregressive)", elem_id="train-try-penalty",
                                    scale=1)
        try_btn = gr.Button("Vocode / speak", elem_id="train-try-run")
        try_msg = gr.Markdown("", elem_id="train-try-message")
        try_out = gr.Audio(None, type="filepath", label="Result", interactive=False, elem_id="train-try-out")

    with gr.Accordion("Runs", open=True, elem_id="train-runs"):
        runs_df = gr.Dataframe(runs_table(ws), headers=RUNS_HEADERS, interactive=False, wrap=True,
                               column_widths=["16%", "8%", "8%", "6%", "6%", "22%", "16%", "18%"],
                               elem_id="train-runs-table")
        with gr.Row():
            run_pick = gr.Dropdown([r[0] for r in runs_table(ws)], label="Run", elem_id="train-run-pick", scale=3)
            keep = gr.Number(1, precision=0, minimum=0, label="States to keep", elem_id="train-keep", scale=1)
            del_states_btn = gr.Button("Delete old states", elem_id="train-del-states", scale=1)
            del_run_btn = gr.Button("Delete run…", variant="stop", elem_id="train-del-run", scale=1)
        with gr.Row(visible=False) as confirm_row:
            confirm_md = gr.Markdown("")
            confirm_btn = gr.Button("Yes, delete", variant="stop", elem_id="train-confirm")
            cancel_btn = gr.Button("Cancel", elem_id="train-cancel")
        confirm_what = gr.State("")
        runs_msg = gr.Markdown("", elem_id="train-runs-message")

    timer = gr.Timer(REFRESH_S)
    cache = gr.State({})

    # ---- refresh (timer, page load, config change) -----------------------------------------
    sample_outputs = [sample_note] + [c for slot in slots for c in slot]
    plot_outputs = {"loss": loss_plot, "quality": quality_plot, "lr": lr_plot, "grad_norm": grad_plot}
    live_outputs = [status, failure, console, start_btn, stop_btn, *plot_outputs.values(),
                    resume, sample_step, config, series, runs_df, try_ckpt, try_clip, cache] + sample_outputs

    def refresh(label, x, smooth, step_choice, resume_value, shown, cache_in):
        cache_out = dict(cache_in or {})
        choices = config_choices(ws)
        config_up = gr.update(choices=choices) if choices != cache_out.get("configs") else gr.update()
        cache_out["configs"] = choices
        run_dir = run_dir_of(ws, label) if label else None
        if run_dir is None:
            st = runs.RunStatus("idle")
            ups = [status_html(st, None, ""), gr.update(visible=False, value=""), "",
                   gr.update(interactive=bool(label)), gr.update(interactive=False),
                   *[gr.update()] * len(plot_outputs), gr.update(), gr.update(), config_up, gr.update(),
                   gr.update(), gr.update(), gr.update(), cache_out]
            return ups + _sample_updates(None, None, cache_out)
        st = runs.run_status(run_dir)
        reader = runs.read_metrics(run_dir / "metrics.jsonl")
        prog = runs.progress(reader, st.step, st.total_steps)
        run_label = f"{run_dir.parent.parent.name}/{run_dir.name}"
        fail = failure_text(st)
        # plots only when data or view changed (a redraw every tick would flicker)
        plot_key = (str(run_dir), reader.version, x, round(float(smooth or 0), 3), tuple(shown or ()))
        series_up = gr.update()
        if plot_key != cache_out.get("plot_key"):
            cache_out["plot_key"] = plot_key
            frames = runs.metric_frames(reader, x=x or "step", smoothing=float(smooth or 0), max_points=PLOT_POINTS,
                                        steps_per_epoch=st.steps_per_epoch)
            names = list(dict.fromkeys(frames["loss"]["series"]))
            known = cache_out.get("series") or []
            if names != known:  # new series are shown (but a model's default-hidden ones); hidden stay hidden
                shown = series_selection(names, known, shown, run_model(run_dir))
                cache_out["series"] = names
                series_up = gr.update(choices=names, value=shown)
            drawn = dict(frames, loss=shown_series_frame(frames["loss"], shown))
            # colour maps go out in the follow-up event (``recolour``), never with the data
            cache_out["colours"] = {k: series_colours(list(dict.fromkeys(frames[k]["series"])), drawn[k])
                                    for k in plot_outputs}
            plots = [_plot_update(drawn[k], x or "step", PLOT_TITLES[k]) for k in plot_outputs]
            plots[list(plot_outputs).index("quality")]["visible"] = not frames["quality"].empty
        else:
            plots = [gr.update()] * len(plot_outputs)
        # resume list when the states change; keep the user's pick if it still exists
        rchoices = resume_choices(ws, run_dir)
        try_ups = [gr.update(), gr.update()]
        if rchoices != cache_out.get("resume"):
            cache_out["resume"] = rchoices
            # only reset the value when the pick is gone: the input may be stale (a pick made
            # while this refresh ran must survive it)
            values = [v for _, v in rchoices]
            resume_up = (gr.update(choices=rchoices) if resume_value in values
                         else gr.update(choices=rchoices, value=FRESH))
            ck = checkpoint_choices(ws, run_dir)  # new states come with new exported checkpoints
            try_ups[0] = gr.update(choices=ck, value=ck[0][1] if ck else None)
            if not cache_out.get("clips_for") == str(run_dir):
                cache_out["clips_for"] = str(run_dir)
                clips = dataset_clips(ws, run_dir)
                try_ups[1] = gr.update(choices=clips, value=[clips[0][1]] if clips else [])
        else:
            resume_up = gr.update()
        schoices = sample_step_choices(run_dir)
        if schoices != cache_out.get("sample_steps"):
            cache_out["sample_steps"] = schoices
            step_up = (gr.update(choices=schoices) if step_choice in [v for _, v in schoices]
                       else gr.update(choices=schoices, value=LATEST))
        else:
            step_up = gr.update()
        # the runs list follows state changes and new states of the watched run
        runs_key = (str(run_dir), st.state, len(rchoices))
        runs_up = gr.update()
        if runs_key != cache_out.get("runs_key"):
            cache_out["runs_key"] = runs_key
            runs_up = gr.update(value=runs_table(ws))
        ups = [status_html(st, prog, run_label), gr.update(visible=bool(fail), value=fail),
               runs.log_tail(run_dir, CONSOLE_LINES), gr.update(interactive=not st.active), gr.update(interactive=st.active),
               *plots, resume_up, step_up, config_up, series_up, runs_up, *try_ups, cache_out]
        return ups + _sample_updates(run_dir, resolve_sample_step(run_dir, step_choice), cache_out)

    def _sample_updates(run_dir, step, cache_out) -> list:
        clips = runs.sample_clips(run_dir, step) if run_dir is not None and step is not None else []
        key = (str(run_dir), step, tuple((n, str(w), str(r)) for n, w, r in clips))
        if key == cache_out.get("samples"):
            return [gr.update()] * len(sample_outputs)
        cache_out["samples"] = key
        note = (f"Validation step **{step}**: generated clips beside their reference recordings."
                if clips else "No validation audio yet.")
        out: list = [note]
        for i, (row, gen, ref) in enumerate(slots):
            if i < len(clips):
                name, wav, ref_wav = clips[i]
                out += [gr.update(visible=True), gr.update(value=str(wav), label=f"{name} (step {step})"),
                        gr.update(value=str(ref_wav) if ref_wav else None, label=f"{name} reference",
                                  visible=ref_wav is not None)]
            else:
                out += [gr.update(visible=False), gr.update(value=None), gr.update(value=None)]
        return out

    def recolour(cache_in):
        """Send each plot's colour map when its drawn series changed, in an update of its own: with the
        data in the same update Gradio would rebuild the chart from the previous data."""
        cache_out = dict(cache_in or {})
        want, sent = cache_out.get("colours") or {}, dict(cache_out.get("colours_sent") or {})
        ups = []
        for k in plot_outputs:
            if k in want and want[k] and want[k] != sent.get(k):
                sent[k] = want[k]
                ups.append(gr.update(color_map=want[k]))
            else:
                ups.append(gr.update())
        cache_out["colours_sent"] = sent
        return ups + [cache_out]

    def then_recolour(dep) -> None:
        dep.then(recolour, cache, [*plot_outputs.values(), cache], show_progress="hidden", queue=True)

    refresh_inputs = [config, x_axis, smoothing, sample_step, resume, series, cache]
    then_recolour(timer.tick(refresh, refresh_inputs, live_outputs, show_progress="hidden", queue=True))
    then_recolour(refresh_btn.click(refresh, refresh_inputs, live_outputs, show_progress="hidden"))
    for comp in (x_axis, smoothing, sample_step):
        then_recolour(comp.change(refresh, refresh_inputs, live_outputs, show_progress="hidden"))
    then_recolour(series.input(refresh, refresh_inputs, live_outputs, show_progress="hidden"))

    def on_config(label, x, smooth, step_choice, resume_value, shown, cache_in):
        cache_in = {}  # another run: everything is new
        return refresh(label, x, smooth, None, None, [], cache_in)  # None: reset the resume and step picks

    then_recolour(config.input(on_config, refresh_inputs, live_outputs))

    def on_load(label, x, smooth, step_choice, resume_value, shown, cache_in):
        """Reconnect: prefer a config whose run is training now; the disk is the truth."""
        active = active_config(ws)
        choices = config_choices(ws)
        pick = active or (label if label in choices else (choices[0] if choices else None))
        out = on_config(pick, x, smooth, step_choice, resume_value, [], {})
        out[live_outputs.index(config)] = gr.update(choices=choices, value=pick)
        msg = info(f"Reconnected to the running run of `{pick}`.") if active else ""
        rows = runs_table(ws)
        out[live_outputs.index(runs_df)] = gr.update(value=rows)
        return out + [msg, gr.update(choices=[r[0] for r in rows])]

    then_recolour(demo.load(on_load, refresh_inputs, live_outputs + [message, run_pick]))

    def on_tab_selected(label, x, smooth, step_choice, resume_value, shown, cache_in):
        """Updates sent while the tab was hidden may not reach its widgets: send everything again."""
        out = refresh(label, x, smooth, step_choice, resume_value, shown, {})
        out[live_outputs.index(config)] = gr.update(choices=config_choices(ws), value=label)
        rows = runs_table(ws)
        out[live_outputs.index(runs_df)] = gr.update(value=rows)
        return out + [gr.update(choices=[r[0] for r in rows])]

    if tab is not None:
        then_recolour(tab.select(on_tab_selected, refresh_inputs, live_outputs + [run_pick],
                                 show_progress="hidden"))

    # ---- start / stop -------------------------------------------------------------------------
    def on_start(label, resume_value, gpu_value):
        try:
            res = runs.launch(ws, config_path(ws, label), resume=resume_value or None,
                              gpus=int(gpu_value) if gpu_value else None)
        except Exception as exc:  # noqa: BLE001
            return describe_exception(exc, "Start")
        how = f"resuming from `{resume_value}`" if resume_value else "from scratch"
        return ok(f"Started the trainer (pid {res.pid}) {how}: `{' '.join(res.command[1:])}`")

    then_recolour(start_btn.click(on_start, [config, resume, gpus], message).then(
        refresh, refresh_inputs, live_outputs, show_progress="hidden"))

    def on_stop(label):
        run_dir = run_dir_of(ws, label) if label else None
        if run_dir is None:
            return error("pick a config first")
        try:
            result = runs.stop(run_dir, timeout=STOP_TIMEOUT_S)
        except Exception as exc:  # noqa: BLE001
            return describe_exception(exc, "Stop")
        if result.outcome == "saved":
            return ok(result.message)
        if result.outcome == "killed":
            return error(result.message)
        return info(result.message)

    then_recolour(stop_btn.click(on_stop, config, message, concurrency_limit=None).then(
        refresh, refresh_inputs, live_outputs, show_progress="hidden"))

    # ---- tensorboard ----------------------------------------------------------------------------
    def on_tensorboard(label):
        run_dir = run_dir_of(ws, label) if label else None
        if run_dir is None:
            return error("pick a config first")
        try:
            url = runs.start_tensorboard(run_dir)
        except Exception as exc:  # noqa: BLE001
            return describe_exception(exc, "TensorBoard")
        return f'TensorBoard is running: <a href="{url}" target="_blank" id="train-tb-url">{url}</a>'

    tb_btn.click(on_tensorboard, config, tb_link)

    # ---- try it ---------------------------------------------------------------------------------
    def on_try(label, ckpt, clips, uploads, text, penalty):
        sources = _clip_list(uploads) + _clip_list(clips)
        if not ckpt:
            return error("no checkpoint yet: the run writes one at every save"), None
        if not sources:
            return error("pick a dataset clip or upload one"), None
        try:
            if run_model(run_dir_of(ws, label) if label else None) == "autoregressive":
                out = speak_text(ws, ckpt, sources, text, penalty)
                done = f"Spoke with `{Path(ckpt).name}` and {len(sources)} reference clip(s)"
            else:
                out = vocode_clip(ws, ckpt, sources[0])
                done = f"Vocoded `{Path(sources[0]).name}` with `{Path(ckpt).name}`"
        except Exception as exc:  # noqa: BLE001
            return describe_exception(exc, "Try it"), None
        return ok(f"{done} → `{_rel(ws, out)}`"), str(out)

    try_btn.click(on_try, [config, try_ckpt, try_clip, try_upload, try_text, try_penalty], [try_msg, try_out])

    # ---- runs list --------------------------------------------------------------------------------
    def on_runs_refresh():
        rows = runs_table(ws)
        return gr.update(value=rows), gr.update(choices=[r[0] for r in rows])

    refresh_btn.click(on_runs_refresh, None, [runs_df, run_pick])

    def on_runs_changed(current):
        names = [r[0] for r in runs_table(ws)]
        return gr.update(choices=names, value=current if current in names else None)

    runs_df.change(on_runs_changed, run_pick, run_pick, show_progress="hidden")

    def on_delete_states(run, n):
        try:
            removed = runs.delete_old_states(ws, ws.inside(run or ""), keep=int(n or 0))
        except Exception as exc:  # noqa: BLE001
            return (describe_exception(exc, "Delete states"),) + on_runs_refresh()
        return (ok(f"Removed {len([p for p in removed if p.suffix == '.pt'])} old state(s) of `{run}`."),
                *on_runs_refresh())

    def ask_delete(run, what):
        if not run:
            return gr.update(visible=False), "", "", error("pick a run first")
        text = (f"Delete all but the newest states of `{run}`?" if what == "states"
                else f"Delete the whole run `{run}` (states, checkpoints, samples, logs)?")
        return gr.update(visible=True), f"**{text}**", what, ""

    del_states_btn.click(lambda r: ask_delete(r, "states"), run_pick, [confirm_row, confirm_md, confirm_what,
                                                                          runs_msg])
    del_run_btn.click(lambda r: ask_delete(r, "run"), run_pick, [confirm_row, confirm_md, confirm_what, runs_msg])

    def on_confirm(what, run, n):
        if what == "states":
            msg, df, pick = on_delete_states(run, n)
        else:
            try:
                runs.delete_run(ws, ws.inside(run or ""))
                msg = ok(f"Deleted `{run}`.")
            except Exception as exc:  # noqa: BLE001
                msg = describe_exception(exc, "Delete run")
            df, pick = on_runs_refresh()
        return gr.update(visible=False), "", msg, df, pick

    confirm_btn.click(on_confirm, [confirm_what, run_pick, keep], [confirm_row, confirm_what, runs_msg, runs_df,
                                                                    run_pick])
    cancel_btn.click(lambda: (gr.update(visible=False), ""), None, [confirm_row, confirm_what])
