"""Run Training tab: start/stop/resume trainer processes and watch them live (layout and wiring).

Nothing here holds training state: every refresh reads the run folder
(``status.json``, ``train.lock``, ``metrics.jsonl``, ``states/``, ``samples/``)
through ``modules.run_manager``, so a restarted UI or a second browser tab shows the
same run. The trainer is a detached process; this tab only launches and signals it.
The pure helpers live beside it and are testable without a browser: ``app.train_runs`` (configs,
runs, states), ``app.train_status`` (progress text), ``app.train_plots`` (plot series and colours)
and ``app.try_it`` (the Try it panel).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from app.access import playable
from app.evaluation_view import best_step, evaluation_markdown, export_best
from app.live_audio import PLAY_CHUNK_JS
from app.queue_panel import build_queue_panel
from app.train_plots import PLOT_POINTS, PLOT_TITLES, plot_update, series_colours, series_selection, shown_series_frame
from app.train_runs import (
    FRESH,
    LATEST,
    RUNS_HEADERS,
    active_config,
    config_choices,
    config_path,
    rel_path,
    resolve_sample_step,
    resume_choices,
    run_dir_of,
    run_model,
    runs_table,
    sample_step_choices,
)
from app.train_status import failure_text, status_html
from app.try_it import checkpoint_choices, clip_list, dataset_clips, speak_stream, synthesize_defaults, vocode_clip
from modules import model_registry
from modules import run_manager as runs
from modules.trainer.runfolder import RunPaths
from modules.workspace import Workspace

if TYPE_CHECKING:
    import gradio as gr

REFRESH_S = 2.0
STOP_TIMEOUT_S = 120.0
SAMPLE_SLOTS = 6
CONSOLE_LINES = 12  # fewer than the box shows, so wrapped lines still leave the newest in view
GPU_CHOICES = [("from the config", ""), ("1", "1"), ("2", "2"), ("3", "3"), ("4", "4"), ("8", "8")]


def build(workspace: Workspace, demo: "gr.Blocks") -> None:
    """Create the tab's widgets inside the current ``gr.Tab``."""
    import gradio as gr
    from gradio.context import Context

    from app.common import describe_exception, error, info, md_escape, ok

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
        start_btn = gr.Button("Start now", variant="primary", elem_id="train-start")
        queue_btn = gr.Button("Add to queue", elem_id="train-queue-add")
        stop_btn = gr.Button("Stop", variant="stop", elem_id="train-stop", interactive=False)
        refresh_btn = gr.Button("Refresh", elem_id="train-refresh")
    message = gr.Markdown("", elem_id="train-message")
    status = gr.HTML(status_html(runs.RunStatus("idle"), None, ""), elem_id="train-status")
    failure = gr.Textbox("", label="Failure", lines=8, max_lines=20, visible=False, interactive=False,
                         elem_id="train-failure")
    # validation scoring: the best step, the overfitting alarm, a scorer that is off
    eval_md = gr.Markdown("", elem_id="train-eval")
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
        with gr.Row():
            try_engine = gr.Radio([("PyTorch", "torch"), ("ONNX Runtime (CPU)", "onnx")], value="torch",
                                  label="Engine (HiFi-GAN runs)", elem_id="train-try-engine", scale=1)
            try_btn = gr.Button("Vocode / speak", elem_id="train-try-run", scale=2)
        try_msg = gr.Markdown("", elem_id="train-try-message")
        # speech chunks as they are decoded, played in the browser by app.live_audio's script
        try_live = gr.Textbox("", visible=False, elem_id="train-try-live")
        try_out = gr.Audio(None, type="filepath", label="Result", interactive=False, elem_id="train-try-out")

    with gr.Accordion("Runs", open=True, elem_id="train-runs"):
        runs_df = gr.Dataframe(runs_table(ws), headers=RUNS_HEADERS, interactive=False, wrap=True,
                               column_widths=["14%", "7%", "7%", "5%", "5%", "19%", "14%", "14%", "15%"],
                               elem_id="train-runs-table")
        with gr.Row():
            run_pick = gr.Dropdown([r[0] for r in runs_table(ws)], label="Run", elem_id="train-run-pick", scale=3)
            keep = gr.Number(1, precision=0, minimum=0, label="States to keep", elem_id="train-keep", scale=1)
            export_btn = gr.Button("Write exports", elem_id="train-export", scale=1)
            export_best_btn = gr.Button("Export best", elem_id="train-export-best", scale=1)
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
    build_queue_panel(ws, config, resume, gpus, queue_btn, timer)

    # ---- refresh (timer, page load, config change) -----------------------------------------
    sample_outputs = [sample_note] + [c for slot in slots for c in slot]
    plot_outputs = {"loss": loss_plot, "quality": quality_plot, "lr": lr_plot, "grad_norm": grad_plot}
    live_outputs = [status, failure, eval_md, console, start_btn, stop_btn, *plot_outputs.values(),
                    resume, sample_step, config, series, runs_df, try_ckpt, try_clip, cache] + sample_outputs

    def refresh(label, x, smooth, step_choice, resume_value, shown, cache_in):
        cache_out = dict(cache_in or {})
        choices = config_choices(ws)
        config_up = gr.update(choices=choices) if choices != cache_out.get("configs") else gr.update()
        cache_out["configs"] = choices
        run_dir = run_dir_of(ws, label) if label else None
        if run_dir is None:
            st = runs.RunStatus("idle")
            ups = [status_html(st, None, ""), gr.update(visible=False, value=""), "", "",
                   gr.update(interactive=bool(label)), gr.update(interactive=False),
                   *[gr.update()] * len(plot_outputs), gr.update(), gr.update(), config_up, gr.update(),
                   gr.update(), gr.update(), gr.update(), cache_out]
            return ups + _sample_updates(None, None, cache_out)
        st = runs.run_status(run_dir)
        reader = runs.read_metrics(RunPaths(run_dir).metrics)
        prog = runs.progress(reader, st.step, st.total_steps)
        run_label = f"{run_dir.parent.parent.name}/{run_dir.name}"
        fail = failure_text(st)
        # plots only when data or view changed (a redraw every tick would flicker)
        best = best_step(run_dir)
        plot_key = (str(run_dir), reader.version, x, round(float(smooth or 0), 3), tuple(shown or ()),
                    best.step if best else None)
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
            if best is not None:  # the best-scored checkpoint, a vertical line on the quality plot
                drawn["quality"] = runs.best_marker(drawn["quality"], best.step, x=x or "step",
                                                    steps_per_epoch=st.steps_per_epoch,
                                                    label=f"best: step {best.step}")
            # colour maps go out in the follow-up event (``recolour``), never with the data
            cache_out["colours"] = {k: series_colours(list(dict.fromkeys(frames[k]["series"])), drawn[k])
                                    for k in plot_outputs}
            plots = [plot_update(drawn[k], x or "step", PLOT_TITLES[k]) for k in plot_outputs]
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
        eval_text = evaluation_markdown(run_dir)
        eval_up = gr.update(value=eval_text) if eval_text != cache_out.get("eval") else gr.update()
        cache_out["eval"] = eval_text
        ups = [status_html(st, prog, run_label), gr.update(visible=bool(fail), value=fail), eval_up,
               runs.log_tail(run_dir, CONSOLE_LINES), gr.update(interactive=not st.active),
               gr.update(interactive=st.active),
               *plots, resume_up, step_up, config_up, series_up, runs_up, *try_ups, cache_out]
        return ups + _sample_updates(run_dir, resolve_sample_step(run_dir, step_choice), cache_out)

    def _sample_updates(run_dir, step, cache_out) -> list:
        clips = runs.sample_clips(run_dir, step) if run_dir is not None and step is not None else []
        key = (str(run_dir), step, tuple((n, str(w), str(r)) for n, w, r in clips))
        if key == cache_out.get("samples"):
            return [gr.update()] * len(sample_outputs)
        cache_out["samples"] = key
        info = runs.sample_info(run_dir, step) if clips else {}
        by = sorted({str(v.get("rendered_by")) for v in info.values() if v.get("rendered_by")})
        note = (f"Validation step **{step}**: generated clips beside their reference recordings"
                + (f", rendered by {'; '.join(by)}." if by else ".") if clips else "No validation audio yet.")
        out: list = [note]
        for i, (_row, _gen, _ref) in enumerate(slots):
            if i < len(clips):
                name, wav, ref_wav = clips[i]
                rendered = (info.get(name) or {}).get("rendered_by")
                label = f"{name} (step {step}" + (f", {rendered})" if rendered else ")")
                out += [gr.update(visible=True), gr.update(value=playable(wav), label=label),
                        gr.update(value=playable(ref_wav) if ref_wav else None, label=f"{name} reference",
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
    def on_try(label, ckpt, clips, uploads, text, penalty, engine):
        """Vocode a clip, or speak the text; speech plays in the browser chunk by chunk as it is decoded."""
        from app.live_audio import chunk_payload

        sources = clip_list(uploads) + clip_list(clips)
        if not ckpt:
            yield error("no checkpoint yet: the run writes one at every save"), gr.update(), None
            return
        if not sources:
            yield error("pick a dataset clip or upload one"), gr.update(), None
            return
        try:
            model = run_model(run_dir_of(ws, label) if label else None)
            if model in model_registry.SPECS and model_registry.get(model).ui.try_it == "text":
                chunks = 0
                for kind, value in speak_stream(ws, ckpt, sources, text, penalty):
                    if kind == "chunk":
                        rate, samples = value
                        yield info(f"Speaking… chunk {chunks + 1}"), chunk_payload(chunks, rate, samples), gr.update()
                        chunks += 1
                    else:
                        out, by = value
                done = (f"Spoke with `{Path(ckpt).name}` and {len(sources)} reference clip(s), rendered by "
                        f"{md_escape(by)} ({chunks} chunk(s) played as decoded)")
            else:
                out = vocode_clip(ws, ckpt, sources[0], engine or "torch")
                done = f"Vocoded `{Path(sources[0]).name}` with `{Path(ckpt).name}`" + (
                    " on ONNX Runtime" if engine == "onnx" else "")
        except Exception as exc:  # noqa: BLE001
            yield describe_exception(exc, "Try it"), gr.update(), None
            return
        yield ok(f"{done} → `{rel_path(ws, out)}`"), gr.update(), playable(out)

    # minutes of inference run in their own queue group: the other tabs' callbacks keep their workers
    try_btn.click(on_try, [config, try_ckpt, try_clip, try_upload, try_text, try_penalty, try_engine],
                  [try_msg, try_live, try_out], concurrency_id="try-it", concurrency_limit=1)
    try_live.change(None, try_live, None, js=PLAY_CHUNK_JS)

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

    def on_export(run):
        """g_/do_ or _gpt.pth of the newest state, when they were pruned or a kill cut them short."""
        try:
            res = runs.write_exports(ws, ws.inside(run or ""))
        except Exception as exc:  # noqa: BLE001
            return describe_exception(exc, "Write exports")
        return ok(f"Writing the exports of `{run}`'s newest state (pid {res.pid}); they appear in its checkpoints/.")

    export_btn.click(on_export, run_pick, runs_msg)

    def on_export_best(run):
        """The best-scored checkpoint's interchange files and scores.json, into models/exports/."""
        try:
            res = export_best(ws, ws.inside(run or ""))
        except Exception as exc:  # noqa: BLE001
            return describe_exception(exc, "Export best")
        note = f" ({res.note})" if res.note else ""
        return ok(f"Exported step {res.step} of `{run}` to `{rel_path(ws, res.out_dir)}`: "
                  f"{', '.join(p.name for p in res.files)}{note}")

    export_best_btn.click(on_export_best, run_pick, runs_msg)

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

    # deleting runs or states is a button in this page only, never a public API route
    confirm_btn.click(on_confirm, [confirm_what, run_pick, keep], [confirm_row, confirm_what, runs_msg, runs_df,
                                                                    run_pick], api_visibility="private")
    cancel_btn.click(lambda: (gr.update(visible=False), ""), None, [confirm_row, confirm_what])
