"""The "Prepare Dataset" tab: layout and event wiring only.

The tab is a thin layer over :mod:`modules.prepare`: the same ``PrepareOptions`` (and so the same
defaults) as ``python -m modules prepare``, the same ``prepare_voice`` engine, and the editor's
``load_table``/``save_table``. The engine is imported inside the callbacks so the UI starts fast.
The work itself lives in small modules: :mod:`app.prepare_form` (form values <-> options),
:mod:`app.prepare_editor` (the clip table), :mod:`app.prepare_stats` (stats and histogram data),
:mod:`app.prepare_runner` (the engine in a worker thread), :mod:`app.prepare_voices` (voice folder summary).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Iterator

import gradio as gr
import pandas as pd

from app import prepare_runner
from app.access import playable
from app.common import USER_ERRORS, describe_exception, error, info, md_escape, ok
from app.prepare_editor import (
    EDITABLE_COLUMNS,
    VIEW_COLUMNS,
    clip_path,
    drop_clip,
    drop_ticked,
    empty_table,
    find_clip,
    merge_view,
    set_clip_text,
    tick_flagged,
    ticked_mask,
    visible_rows,
    with_delete_column,
)
from app.prepare_form import DEFAULTS, LANGUAGES, TRANSCRIBER_LABELS, blank_if_none, model_choices, parse_options
from app.prepare_stats import format_seconds, histogram_table, stats_markdown, table_stats
from app.prepare_voices import voice_summary
from modules.prepare.options import DEFAULT_MAX_SECONDS, DEVICES, NORMALIZE_MODES, TRANSCRIBERS, PrepareOptions
from modules.workspace import Workspace, check_name

# page CSS this tab needs (app.main collects CSS from every tab module): rows come only from the dataset
CSS = "#prepare-table .add-row-button { display: none; }"
LOG_LINES_SHOWN = 400
POLL_SECONDS = 0.4
EDITOR_QUEUE: dict[str, Any] = {"concurrency_limit": 1, "concurrency_id": "prepare-editor"}
_SCROLL_LOG_JS = """() => { setTimeout(() => { const t = document.querySelector('#prepare-log textarea');
  if (t) { t.scrollTop = t.scrollHeight; } }, 30); }"""


def histogram_plot(stats: dict[str, Any]) -> gr.BarPlot:
    """The duration histogram update (only value and bin order: re-sending x/y blanks the plot in Gradio 6)."""
    table = histogram_table(stats["durations"])
    return gr.BarPlot(value=table, sort=list(table["seconds"]))


def build(workspace: Workspace, demo: gr.Blocks) -> None:
    """Lay out the Prepare tab inside the current ``gr.Tab`` and wire its events."""
    voices = workspace.list_voices()

    gr.Markdown(
        "Turn a voice's recordings into a training dataset: transcribe, slice at word boundaries, "
        "clean, check and split. Then review every clip below, fix transcripts and delete bad clips.",
    )
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=320):
            gr.Markdown("### 1. Voice")
            with gr.Row():
                voice = gr.Dropdown(choices=voices, value=voices[0] if voices else None, label="Voice",
                                    info="a folder under voices/", elem_id="prepare-voice", scale=4)
                refresh = gr.Button("↻", elem_id="prepare-refresh", scale=0, min_width=40, size="sm")
            with gr.Row():
                new_voice = gr.Textbox(label="New voice name", placeholder="e.g. narrator",
                                       elem_id="prepare-new-voice", scale=3)
                create = gr.Button("Create voice", elem_id="prepare-create-voice", scale=1, min_width=100)
            uploads = gr.File(label="Recordings and transcripts to add", file_count="multiple",
                              type="filepath", elem_id="prepare-upload", height=140)
            add_files = gr.Button("Add files to voice", elem_id="prepare-add-files")
            voice_info = gr.Markdown(voice_summary(workspace, voices[0] if voices else None),
                                     elem_id="prepare-voice-info")
        with gr.Column(scale=2, min_width=420):
            gr.Markdown("### 2. Settings")
            with gr.Row():
                transcriber = gr.Dropdown(
                    choices=[(TRANSCRIBER_LABELS.get(t, t), t) for t in TRANSCRIBERS],
                    value=DEFAULTS.transcriber, label="Transcriber", elem_id="prepare-transcriber", scale=2)
                model = gr.Dropdown(choices=model_choices(workspace), value=DEFAULTS.model,
                                    allow_custom_value=True, label="Whisper model",
                                    info="a name, or a path under the workspace (models/whisper/ is searched first)",
                                    elem_id="prepare-model", scale=2)
            with gr.Row():
                language = gr.Dropdown(choices=LANGUAGES, value=DEFAULTS.language, allow_custom_value=True,
                                       label="Language", info="auto-detect or a language code",
                                       elem_id="prepare-language")
                device = gr.Radio(choices=list(DEVICES), value=DEFAULTS.device, label="Device",
                                  elem_id="prepare-device")
            with gr.Accordion("Slicing and cleaning", open=True):
                with gr.Row():
                    # no bounds here: PrepareOptions.validate() says what is wrong and what to use
                    min_seconds = gr.Number(value=DEFAULTS.min_seconds, label="Min clip seconds",
                                            info="shorter segments are merged", step=0.1,
                                            elem_id="prepare-min-seconds")
                    max_seconds = gr.Number(value=DEFAULTS.max_seconds, label="Max clip seconds",
                                            info=f"longer ones split at a pause; {DEFAULT_MAX_SECONDS} s fits tortoise",
                                            step=0.1, elem_id="prepare-max-seconds")
                    padding = gr.Number(value=DEFAULTS.padding_seconds, label="Padding seconds",
                                        info="kept before and after the words", step=0.05,
                                        elem_id="prepare-padding")
                with gr.Row():
                    sample_rate = gr.Number(value=DEFAULTS.sample_rate, label="Target sample rate (Hz)",
                                            precision=0, elem_id="prepare-sample-rate")
                    normalize = gr.Radio(choices=list(NORMALIZE_MODES),
                                         value=DEFAULTS.normalize, label="Normalise", elem_id="prepare-normalize")
                    trim = gr.Checkbox(value=DEFAULTS.trim_silence, label="Trim leading/trailing silence",
                                       elem_id="prepare-trim")
            with gr.Accordion("Validation split", open=True):
                with gr.Row():
                    validation_percent = gr.Number(value=DEFAULTS.validation_percent, label="Validation %",
                                                   step=1, elem_id="prepare-validation-percent")
                    validation_count = gr.Textbox(value=blank_if_none(DEFAULTS.validation_count),
                                                  label="Validation count", info="overrides % when set",
                                                  placeholder="empty: use %", elem_id="prepare-validation-count")
                    seed = gr.Number(value=DEFAULTS.seed, label="Seed", precision=0, elem_id="prepare-seed")
                    skip_existing = gr.Checkbox(value=DEFAULTS.skip_existing,
                                                label="Skip existing (reuse cached transcriptions)",
                                                elem_id="prepare-skip-existing")
            run = gr.Button("Prepare", variant="primary", elem_id="prepare-run")
            status = gr.Markdown("", elem_id="prepare-status")
            log = gr.Textbox(label="Log", lines=8, max_lines=14, autoscroll=True, interactive=False,
                             elem_id="prepare-log")

    gr.Markdown("### 3. Review and edit")
    with gr.Row():
        datasets = workspace.list_datasets()
        dataset_pick = gr.Dropdown(choices=datasets, value=None, label="Prepared dataset",
                                   info="a folder under training/", elem_id="prepare-dataset", scale=3)
        load = gr.Button("Load dataset", elem_id="prepare-load", scale=1)
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=260):
            stats_md = gr.Markdown(stats_markdown(None, {}, False), elem_id="prepare-stats")
        with gr.Column(scale=2, min_width=360):
            histogram = gr.BarPlot(value=None, x="seconds", y="clips", y_lim=[0, None],
                                   title="Clip durations", x_title="seconds", y_title="clips",
                                   height=220, elem_id="prepare-histogram")
    only_flagged = gr.Checkbox(value=False, label="Show only flagged clips", elem_id="prepare-only-flagged")
    table = gr.Dataframe(
        value=empty_table(), label="Clips — click a row to listen; edit text/split in place or below; "
        "tick 'delete' to remove", interactive=True, wrap=True, max_height=420,
        datatype=["bool", "str", "str", "number", "str", "str"],
        static_columns=[VIEW_COLUMNS.index(c) for c in VIEW_COLUMNS if c not in EDITABLE_COLUMNS],
        column_widths=["104px", "200px", "110px", "104px", "45%", "18%"],
        elem_id="prepare-table")
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=300):
            audio = gr.Audio(label="Selected clip", type="filepath", interactive=False, elem_id="prepare-audio")
        with gr.Column(scale=2, min_width=360):
            selected_md = gr.Markdown("Click a row of the table to select a clip.", elem_id="prepare-selected")
            clip_text = gr.Textbox(label="Transcript of the selected clip", lines=2, elem_id="prepare-clip-text")
            with gr.Row():
                apply_text = gr.Button("Apply text", elem_id="prepare-apply-text")
                delete_clip = gr.Button("Delete selected clip", elem_id="prepare-delete-clip")
                delete_ticked = gr.Button("Delete ticked clips", elem_id="prepare-delete-ticked")
                delete_flagged = gr.Button("Tick all flagged", elem_id="prepare-tick-flagged")
    with gr.Row():
        save = gr.Button("Save", variant="primary", elem_id="prepare-save", scale=1)
        revert = gr.Button("Discard changes", elem_id="prepare-revert", scale=1)
    save_status = gr.Markdown("", elem_id="prepare-save-status")

    dataset_state = gr.State(None)  # name of the dataset in the editor
    full_state = gr.State(empty_table())  # every clip (the table shows all or only flagged)
    selected_state = gr.State(None)  # file of the selected clip
    dirty_state = gr.State(False)  # unsaved edits

    option_inputs = {
        "transcriber": transcriber, "model": model, "language": language, "device": device,
        "sample_rate": sample_rate, "min_seconds": min_seconds, "max_seconds": max_seconds,
        "padding_seconds": padding, "trim_silence": trim, "normalize": normalize,
        "validation_percent": validation_percent, "validation_count": validation_count, "seed": seed,
        "skip_existing": skip_existing,
    }
    missing = {f.name for f in dataclasses.fields(PrepareOptions)} - set(option_inputs)
    if missing:  # a new engine option must get a control here (the CLI and the tab offer the same)
        raise RuntimeError(f"Prepare tab lacks controls for options {sorted(missing)}")
    option_names = list(option_inputs)

    editor_outputs = [dataset_state, full_state, dirty_state, table, stats_md, histogram, selected_state,
                      audio, selected_md, clip_text]

    def editor_view(name: str | None, full: pd.DataFrame, dirty: bool, flagged_only: bool,
                    keep_selection: str | None = None) -> tuple:
        """Values for ``editor_outputs`` after any change of the table."""
        stats = table_stats(full)
        view = visible_rows(full, flagged_only)
        if keep_selection is not None:
            return (name, full, dirty, view, stats_markdown(name, stats, dirty), histogram_plot(stats),
                    gr.skip(), gr.skip(), gr.skip(), gr.skip())
        return (name, full, dirty, view, stats_markdown(name, stats, dirty), histogram_plot(stats),
                None, None, "Click a row of the table to select a clip.", "")

    def open_dataset(name: str, flagged_only: bool) -> tuple:
        from modules.prepare.editor import load_table

        full = with_delete_column(load_table(workspace.dataset_dir(name)))
        return editor_view(name, full, False, flagged_only)

    # ---- voice --------------------------------------------------------------------------------
    def refresh_lists(current_voice: str | None, current_dataset: str | None):
        names = workspace.list_voices()
        pick = current_voice if current_voice in names else (names[0] if names else None)
        sets = workspace.list_datasets()
        return (gr.Dropdown(choices=names, value=pick), voice_summary(workspace, pick),
                gr.Dropdown(choices=sets, value=current_dataset if current_dataset in sets else None),
                gr.Dropdown(choices=model_choices(workspace)))

    refresh_outputs = [voice, voice_info, dataset_pick, model]
    refresh.click(refresh_lists, [voice, dataset_pick], refresh_outputs)
    demo.load(refresh_lists, [voice, dataset_pick], refresh_outputs)
    # .input (the user picked a voice), not .change: a programmatic pick already shows its own message
    voice.input(lambda v: voice_summary(workspace, v), voice, voice_info)

    def create_voice(name: str):
        try:
            folder = workspace.voice_dir(name)
            folder.mkdir(parents=True, exist_ok=True)
        except USER_ERRORS + (OSError,) as exc:
            return gr.skip(), describe_exception(exc, "Creating the voice"), gr.skip()
        name = check_name(name)
        return (gr.Dropdown(choices=workspace.list_voices(), value=name),
                ok(f"Voice `voices/{md_escape(name)}` is ready: add recordings below.") + "  \n"
                + voice_summary(workspace, name), "")

    create.click(create_voice, new_voice, [voice, voice_info, new_voice])
    new_voice.submit(create_voice, new_voice, [voice, voice_info, new_voice])

    def add_to_voice(name: str | None, new_name: str, files: list[str] | None):
        from modules.prepare.importers import import_files

        target = (new_name or "").strip() or name
        if not target:
            return gr.skip(), error("pick a voice or type a new voice name before adding files"), gr.skip(), gr.skip()
        if not files:
            return gr.skip(), error("choose some files to upload first"), gr.skip(), gr.skip()
        try:
            copied = import_files(workspace, target, [Path(f) for f in files])
        except Exception as exc:
            return gr.skip(), describe_exception(exc, "Adding files"), gr.skip(), gr.skip()
        target = check_name(target)
        return (gr.Dropdown(choices=workspace.list_voices(), value=target),
                ok(f"Added {len(copied)} file(s) to `voices/{md_escape(target)}`.") + "  \n"
                + voice_summary(workspace, target), None, "")

    add_files.click(add_to_voice, [voice, new_voice, uploads], [voice, voice_info, uploads, new_voice])

    def transcriber_changed(choice: str):
        """Whisper settings mean nothing when the transcripts come with the audio: grey them out."""
        active = choice != "none"
        return gr.Dropdown(interactive=active), gr.Dropdown(interactive=active), gr.Radio(interactive=active)

    transcriber.change(transcriber_changed, transcriber, [model, language, device])

    # ---- prepare ------------------------------------------------------------------------------
    def run_prepare(name: str | None, flagged_only: bool, *values, progress=gr.Progress()) -> Iterator[tuple]:
        """Run the engine in a worker thread and stream its log; then open the result in the editor."""
        skip_editor = tuple(gr.skip() for _ in editor_outputs)
        try:
            if not name:
                raise _NoVoice()
            voice_name = check_name(name, "voice")
            options = parse_options(workspace, dict(zip(option_names, values)))
        except _NoVoice:
            yield (error("pick a voice first (or create one and add recordings)"), "", gr.skip()) + skip_editor
            return
        except Exception as exc:
            yield (describe_exception(exc, "Reading the settings"), "", gr.skip()) + skip_editor
            return

        lines: list[str] = [f"Preparing voices/{voice_name} with {options.transcriber}"
                            + (f" ({options.model})" if options.transcriber != "none" else "")]
        state, thread = prepare_runner.start(workspace, voice_name, options)
        progress(0.0, desc="starting")
        yield (info(f"Preparing `voices/{md_escape(voice_name)}`…"), "\n".join(lines), gr.skip()) + skip_editor
        while not state.done.wait(POLL_SECONDS):
            if prepare_runner.drain(state.lines, lines):
                yield (gr.skip(), "\n".join(lines[-LOG_LINES_SHOWN:]), gr.skip()) + skip_editor
            progress(max(0.0, min(1.0, state.fraction)), desc=state.message)
        thread.join()
        prepare_runner.drain(state.lines, lines)
        log_text = "\n".join(lines[-LOG_LINES_SHOWN:])
        if state.exception is not None:
            yield (describe_exception(state.exception, "Preparation"), log_text, gr.skip()) + skip_editor
            return
        result = state.result
        name_out = Path(result.dataset_dir).name
        summary = (f"Prepared `training/{md_escape(name_out)}`: {result.clips} clips "
                   f"({result.train} train, {result.validation} validation), "
                   f"{format_seconds(result.total_seconds)} of audio.")
        if result.skipped:
            skipped = "; ".join(f"{md_escape(f)} ({md_escape(r)})" for f, r in result.skipped[:10])
            more = f" and {len(result.skipped) - 10} more" if len(result.skipped) > 10 else ""
            summary += f"  \nSkipped {len(result.skipped)} file(s): {skipped}{more}."
        try:
            editor = open_dataset(name_out, flagged_only)
        except Exception as exc:
            yield (describe_exception(exc, "Opening the dataset"), log_text, gr.skip()) + skip_editor
            return
        datasets_now = workspace.list_datasets()
        yield (ok(summary), log_text, gr.Dropdown(choices=datasets_now, value=name_out)) + editor

    # keep the newest log line in view while lines stream in (Gradio's autoscroll misses streamed updates)
    log.change(None, None, None, js=_SCROLL_LOG_JS, queue=False)
    run.click(run_prepare, [voice, only_flagged, *option_inputs.values()],
              [status, log, dataset_pick, *editor_outputs],
              concurrency_limit=1, concurrency_id="prepare", show_progress_on=[status])

    # ---- editor -------------------------------------------------------------------------------
    # Editor events run one at a time in the order they were sent: each one reads the full table from
    # the session state and writes it back, so two in flight at once could undo each other's edit.
    def load_dataset(name: str | None, flagged_only: bool):
        if not name:
            return (error("pick a prepared dataset to load"),) + tuple(gr.skip() for _ in editor_outputs)
        try:
            return (ok(f"Loaded `training/{md_escape(name)}`."),) + open_dataset(name, flagged_only)
        except Exception as exc:
            return (describe_exception(exc, "Loading the dataset"),) + tuple(gr.skip() for _ in editor_outputs)

    load.click(load_dataset, [dataset_pick, only_flagged], [save_status, *editor_outputs], **EDITOR_QUEUE)

    def toggle_flagged(name, full, view, dirty, flagged_only):
        # the shown table still has the rows of the filter before this change
        merged = merge_view(full, view, not flagged_only)
        return editor_view(name, merged, dirty or not merged.equals(full), flagged_only, keep_selection="keep")

    only_flagged.change(toggle_flagged, [dataset_state, full_state, table, dirty_state, only_flagged],
                        editor_outputs, **EDITOR_QUEUE)

    def on_edit(name, full, view, dirty, flagged_only):
        """The user typed in or ticked a cell: keep the full table and the stats in step."""
        merged = merge_view(full, view, flagged_only)
        dirty = bool(dirty) or not merged.equals(full)
        stats = table_stats(merged)
        return merged, dirty, stats_markdown(name, stats, dirty), histogram_plot(stats)

    table.input(on_edit, [dataset_state, full_state, table, dirty_state, only_flagged],
                [full_state, dirty_state, stats_md, histogram], **EDITOR_QUEUE)

    def on_select(name, full, view, flagged_only, evt: gr.SelectData):
        if not name or evt.row_value is None:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip()
        row = dict(zip(VIEW_COLUMNS, evt.row_value))
        file = str(row.get("file", ""))
        full = merge_view(full, view, flagged_only)
        clip = find_clip(full, file)
        if clip is None:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip()
        try:
            path = clip_path(workspace, name, file)
        except Exception as exc:
            return full, None, None, describe_exception(exc, "Opening the clip"), gr.skip()
        flags = str(clip["flags"] or "")
        label = (f"**{md_escape(file)}** · {clip['split']} · {float(clip['duration']):.2f} s"
                 + (f" · flags: {md_escape(flags)}" if flags.strip() else ""))
        return full, file, playable(path) if path.is_file() else None, label, str(clip["text"])

    table.select(on_select, [dataset_state, full_state, table, only_flagged],
                 [full_state, selected_state, audio, selected_md, clip_text], **EDITOR_QUEUE)

    def apply_clip_text(name, full, view, selected, text, flagged_only):
        if not name or not selected:
            return (error("select a clip in the table first"),) + tuple(gr.skip() for _ in editor_outputs)
        full = set_clip_text(merge_view(full, view, flagged_only), selected, text)
        return (info(f"Text of {md_escape(selected)} changed (not saved yet)."),) + editor_view(
            name, full, True, flagged_only, keep_selection=selected)

    apply_text.click(apply_clip_text, [dataset_state, full_state, table, selected_state, clip_text, only_flagged],
                     [save_status, *editor_outputs], **EDITOR_QUEUE)
    clip_text.submit(apply_clip_text, [dataset_state, full_state, table, selected_state, clip_text, only_flagged],
                     [save_status, *editor_outputs], **EDITOR_QUEUE)

    def delete_selected(name, full, view, selected, flagged_only):
        if not name or not selected:
            return (error("select a clip in the table first"),) + tuple(gr.skip() for _ in editor_outputs)
        full = drop_clip(merge_view(full, view, flagged_only), selected)
        return (info(f"Removed {md_escape(selected)} from the table (not saved yet)."),) + editor_view(
            name, full, True, flagged_only)

    delete_clip.click(delete_selected, [dataset_state, full_state, table, selected_state, only_flagged],
                      [save_status, *editor_outputs], **EDITOR_QUEUE, api_visibility="private")

    def delete_ticked_rows(name, full, view, flagged_only):
        if not name:
            return (error("load a dataset first"),) + tuple(gr.skip() for _ in editor_outputs)
        full, count = drop_ticked(merge_view(full, view, flagged_only))
        if not count:
            return (error("no clip is ticked in the 'delete' column"),) + tuple(gr.skip() for _ in editor_outputs)
        return (info(f"Removed {count} ticked clip(s) from the table (not saved yet)."),) + editor_view(
            name, full, True, flagged_only)

    delete_ticked.click(delete_ticked_rows, [dataset_state, full_state, table, only_flagged],
                        [save_status, *editor_outputs], **EDITOR_QUEUE)

    def tick_flagged_clips(name, full, view, flagged_only):
        if not name:
            return (error("load a dataset first"),) + tuple(gr.skip() for _ in editor_outputs)
        full, count = tick_flagged(merge_view(full, view, flagged_only))
        return (info(f"Ticked {count} flagged clip(s); press **Delete ticked clips** to remove them."),
                ) + editor_view(name, full, True, flagged_only, keep_selection="keep")

    delete_flagged.click(tick_flagged_clips, [dataset_state, full_state, table, only_flagged],
                         [save_status, *editor_outputs], **EDITOR_QUEUE)

    def save_dataset(name, full, view, flagged_only):
        from modules.prepare.editor import COLUMNS, save_table

        if not name:
            return (error("nothing to save: load or prepare a dataset first"),) + tuple(
                gr.skip() for _ in editor_outputs)
        full = merge_view(full, view, flagged_only)
        ticked_rows = ticked_mask(full)
        ticked = int(ticked_rows.sum())
        kept = full[~ticked_rows]
        try:
            save_table(workspace.dataset_dir(name), kept[COLUMNS].reset_index(drop=True))
            editor = open_dataset(name, flagged_only)
        except Exception as exc:
            return (describe_exception(exc, "Saving"),) + tuple(gr.skip() for _ in editor_outputs)
        note = f" ({ticked} ticked clip(s) deleted)" if ticked else ""
        return (ok(f"Saved `training/{md_escape(name)}`: train.txt, validation.txt and dataset.json{note}."),
                ) + editor

    save.click(save_dataset, [dataset_state, full_state, table, only_flagged], [save_status, *editor_outputs],
               **EDITOR_QUEUE)

    def discard(name, flagged_only):
        if not name:
            return (gr.skip(),) + tuple(gr.skip() for _ in editor_outputs)
        try:
            return (info("Changes discarded; showing the saved dataset."),) + open_dataset(name, flagged_only)
        except Exception as exc:
            return (describe_exception(exc, "Reloading"),) + tuple(gr.skip() for _ in editor_outputs)

    revert.click(discard, [dataset_state, only_flagged], [save_status, *editor_outputs], **EDITOR_QUEUE)


class _NoVoice(Exception):
    pass

