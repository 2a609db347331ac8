"""The Prepare tab: its helpers, its defaults (the CLI's), and the whole flow in Chromium.

The browser test prepares the committed demo voice with transcriber "none" (its metadata.csv),
checks the table and stats against the files on disk, edits a transcript in the side editor and
another one in the table itself, deletes a clip, saves, and finds all of it in train.txt /
validation.txt. Screenshots go to test-artifacts/ (scripts/update_screenshots.py copies them into docs/).
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from app import prepare_editor, prepare_form, prepare_stats
from modules.errors import UserError
from modules.prepare.options import PrepareOptions
from modules.workspace import Workspace, WorkspaceError
from tests.conftest import DEMO_VOICE
from tests.helpers.browser import gradio_ready, open_tab, ui  # noqa: F401  (the fixture)

# --------------------------------------------------------------------------- helpers (no browser)

def _table(rows: list[tuple[str, str, float, str, str]]) -> pd.DataFrame:
    base = pd.DataFrame(rows, columns=["file", "split", "duration", "text", "flags"])
    return prepare_editor.with_delete_column(base)


def test_merge_view_matches_rows_by_file_not_position() -> None:
    full = _table([("audio/a.wav", "train", 1.0, "one", ""), ("audio/b.wav", "train", 2.0, "two", "too_short"),
                   ("audio/c.wav", "validation", 3.0, "three", "")])
    # a filtered view (only the flagged row), edited: text changed and ticked for deletion
    view = prepare_editor.visible_rows(full, only_flagged=True)
    assert list(view["file"]) == ["audio/b.wav"]
    view.loc[0, "text"] = "two edited"
    view.loc[0, "delete"] = True
    merged = prepare_editor.merge_view(full, view, only_flagged=True)
    assert list(merged["text"]) == ["one", "two edited", "three"]
    assert list(merged["delete"]) == [False, True, False]
    # non-editable columns are never taken from the view
    view.loc[0, "duration"] = 99.0
    assert prepare_editor.merge_view(full, view, only_flagged=True)["duration"].tolist() == [1.0, 2.0, 3.0]


def test_merge_view_drops_rows_removed_with_the_table_menu() -> None:
    full = _table([("audio/a.wav", "train", 1.0, "one", ""), ("audio/b.wav", "train", 2.0, "two", "clipped"),
                   ("audio/c.wav", "train", 3.0, "three", "clipped")])
    view = prepare_editor.visible_rows(full, only_flagged=True).iloc[[1]]  # b removed from the flagged view
    merged = prepare_editor.merge_view(full, view, only_flagged=True)
    assert list(merged["file"]) == ["audio/a.wav", "audio/c.wav"]  # a was not shown, so it stays
    # a blank row added in the table is ignored; an empty view (nothing loaded) changes nothing
    blank = pd.concat([prepare_editor.visible_rows(full, False), pd.DataFrame([{"file": "", "text": "x"}])])
    assert prepare_editor.merge_view(full, blank).equals(full)
    assert prepare_editor.merge_view(full, prepare_editor.empty_table()).equals(full)


def test_table_operations_return_new_tables_and_counts() -> None:
    full = _table([("audio/a.wav", "train", 1.0, "one", ""), ("audio/b.wav", "train", 2.0, "two", "clipped"),
                   ("audio/c.wav", "validation", 3.0, "three", "too_short")])
    before = full.copy()
    edited = prepare_editor.set_clip_text(full, "audio/b.wav", "  two\n edited ")
    assert list(edited["text"]) == ["one", "two edited", "three"]
    ticked, flagged = prepare_editor.tick_flagged(edited)
    assert flagged == 2 and list(ticked["delete"]) == [False, True, True]
    kept, dropped = prepare_editor.drop_ticked(ticked)
    assert dropped == 2 and list(kept["file"]) == ["audio/a.wav"] and list(kept.index) == [0]
    assert list(prepare_editor.drop_clip(full, "audio/a.wav")["file"]) == ["audio/b.wav", "audio/c.wav"]
    assert prepare_editor.find_clip(full, "audio/c.wav")["split"] == "validation"
    assert prepare_editor.find_clip(full, "audio/missing.wav") is None
    assert full.equals(before)  # the session's table is never changed in place


def test_table_stats_leave_out_ticked_rows() -> None:
    full = _table([("audio/a.wav", "train", 1.0, "one", ""), ("audio/b.wav", "validation", 2.5, "two", "clipped"),
                   ("audio/c.wav", "train", 4.0, "three", "")])
    full.loc[2, "delete"] = True
    stats = prepare_stats.table_stats(full)
    assert stats["clips"] == 2 and stats["marked"] == 1
    assert stats["total_seconds"] == pytest.approx(3.5)
    assert stats["mean_seconds"] == pytest.approx(1.75)
    assert (stats["train"], stats["validation"], stats["flagged"]) == (1, 1, 1)


def test_histogram_counts_every_clip_in_ordered_bins() -> None:
    durations = np.array([0.61, 0.9, 1.2, 3.7, 11.5])
    table = prepare_stats.histogram_table(durations, bin_seconds=0.5)
    assert int(table["clips"].sum()) == len(durations)
    assert table["seconds"].iloc[0] == "0.5–1.0" and table["seconds"].iloc[-1] == "11.5–12.0"
    assert len(table) == 23  # empty bins between are kept so the shape is honest
    assert prepare_stats.histogram_table(np.array([])).empty


def test_parse_options_defaults_and_refusals(tmp_path: Path) -> None:
    ws = Workspace.open(tmp_path)
    assert prepare_form.parse_options(ws, {}) == PrepareOptions()
    opts = prepare_form.parse_options(ws, {"validation_count": "", "seed": 3.0, "model": "models/whisper/x"})
    assert opts.validation_count is None and opts.seed == 3
    assert opts.model == str(ws.root / "models" / "whisper" / "x")
    assert prepare_form.parse_options(ws, {"validation_count": "4"}).validation_count == 4
    with pytest.raises(UserError, match="validation count"):
        prepare_form.parse_options(ws, {"validation_count": "four"})
    with pytest.raises(WorkspaceError, match="outside the workspace"):
        prepare_form.parse_options(ws, {"model": "../../elsewhere/model.pt"})
    with pytest.raises(UserError, match="max seconds"):
        prepare_form.parse_options(ws, {"min_seconds": 5.0, "max_seconds": 2.0})


def test_tab_defaults_are_the_cli_defaults(tmp_path: Path) -> None:
    """Every option of ``python -m modules prepare`` is in the tab with the same default value."""
    from app.main import build_app
    from modules.prepare import cli

    parser = argparse.ArgumentParser()
    cli.add_parser(parser.add_subparsers())
    cli_defaults = cli.options_from_args(parser.parse_args(["prepare", "demo"]))
    demo = build_app(Workspace.open(tmp_path))
    by_id = {b.elem_id: b for b in demo.blocks.values() if getattr(b, "elem_id", None)}
    expected = {
        "prepare-transcriber": cli_defaults.transcriber, "prepare-model": cli_defaults.model,
        "prepare-language": cli_defaults.language, "prepare-device": cli_defaults.device,
        "prepare-sample-rate": cli_defaults.sample_rate, "prepare-min-seconds": cli_defaults.min_seconds,
        "prepare-max-seconds": cli_defaults.max_seconds, "prepare-padding": cli_defaults.padding_seconds,
        "prepare-trim": cli_defaults.trim_silence, "prepare-normalize": cli_defaults.normalize,
        "prepare-validation-percent": cli_defaults.validation_percent, "prepare-seed": cli_defaults.seed,
        "prepare-skip-existing": cli_defaults.skip_existing,
    }
    for elem_id, value in expected.items():
        assert by_id[elem_id].value == value, elem_id
    assert by_id["prepare-validation-count"].value == ("" if cli_defaults.validation_count is None
                                                       else str(cli_defaults.validation_count))
    # and the values the form sends back parse to exactly the CLI's options
    form = {"transcriber": by_id["prepare-transcriber"].value, "model": by_id["prepare-model"].value,
            "validation_count": by_id["prepare-validation-count"].value,
            "padding_seconds": by_id["prepare-padding"].value}
    assert prepare_form.parse_options(Workspace.open(tmp_path), form) == cli_defaults


def test_messages_show_user_errors_verbatim_and_bugs_in_one_line(capsys) -> None:
    from app.common import describe_exception

    assert describe_exception(UserError("voices/my_voice: no audio"), "Preparation") == (
        "**Error:** voices/my\\_voice: no audio")
    try:
        {}["missing"]
    except KeyError as exc:
        shown = describe_exception(exc, "Saving")
    assert shown.startswith("**Error:** Saving failed: KeyError") and "\n" not in shown
    assert "Traceback" in capsys.readouterr().err  # the details go to the console for a bug report


# --------------------------------------------------------------------------- browser

def _lists(dataset: Path) -> dict[str, tuple[str, str]]:
    """file -> (split, text) from train.txt and validation.txt."""
    out = {}
    for split, name in (("train", "train.txt"), ("validation", "validation.txt")):
        path = dataset / name
        for line in path.read_text(encoding="utf-8").splitlines() if path.is_file() else []:
            file, _, text = line.partition("|")
            out[file] = (split, text)
    return out


def _row(page, file: str):
    """The visible row of ``file`` (Gradio 6 renders rows as div[role=row] in a virtual list)."""
    return page.locator("#prepare-table [role='row']").filter(has_text=file).first


def test_prepare_demo_edit_and_save_in_browser(ui, demo_workspace: Path, artifacts: Path) -> None:  # noqa: F811
    app = ui.start(demo_workspace)
    page = ui.page(width=1400, height=1000)
    page.goto(app.url)
    gradio_ready(page)
    open_tab(page, "Prepare Dataset")  # Quick start is the first tab

    page.locator("#prepare-voice input").click()
    page.get_by_role("option", name="demo", exact=True).click()
    page.locator("#prepare-transcriber input").click()
    page.get_by_role("option", name="none — use transcripts that came with the audio").click()
    page.locator("#prepare-run").click()

    stats = page.locator("#prepare-stats")
    stats.get_by_text("training/demo").wait_for(timeout=120_000)
    dataset = demo_workspace / "training" / "demo"
    on_disk = _lists(dataset)
    assert len(on_disk) >= 10, on_disk
    train_files = [f for f, (split, _) in on_disk.items() if split == "train"]
    n_val = sum(1 for split, _ in on_disk.values() if split == "validation")
    # the stats line and the table show what is on disk
    stats_text = stats.inner_text()
    assert f"Clips: {len(on_disk)} ({len(train_files)} train, {n_val} validation)" in stats_text, stats_text
    assert "Mean:" in stats_text and "Total:" in stats_text
    assert page.locator("#prepare-status").get_by_text(re.compile(r"^✓ Prepared training/demo")).is_visible()
    assert "001.flac" in page.locator("#prepare-log textarea").input_value()
    first, second, third = train_files[0], train_files[1], train_files[2]
    _row(page, first).wait_for()
    # the histogram drew bars
    page.locator("#prepare-histogram svg, #prepare-histogram canvas").first.wait_for()

    # select a clip: its audio loads in the player and its text in the editor box
    _row(page, first).locator("[role='gridcell']").filter(has_text=first).first.click()
    clip_text = page.locator("#prepare-clip-text textarea")
    page.wait_for_function(
        "t => document.querySelector('#prepare-clip-text textarea').value === t", arg=on_disk[first][1])
    link = page.locator("#prepare-audio a[data-testid='download-link']").first
    link.wait_for(state="attached")
    audio_url = link.get_attribute("href") or ""
    assert audio_url.endswith("/" + first.rsplit("/", 1)[-1]), audio_url
    served = page.request.get(audio_url)
    assert served.ok and served.body()[:4] == b"RIFF"
    assert served.body() == (dataset / first).read_bytes()  # the player gets the clip itself

    edited = "Edited in the browser, ünïcödé kept."
    clip_text.fill(edited)
    page.locator("#prepare-apply-text").click()
    page.locator("#prepare-save-status").get_by_text("not saved yet").wait_for()
    page.locator("#prepare-table").get_by_text(edited).wait_for()

    # edit another transcript directly in the table cell
    in_table = "Typed straight into the table."
    cell = _row(page, second).locator("[role='gridcell']").filter(has_text=on_disk[second][1]).first
    cell.dblclick()
    editor = _row(page, second).locator("textarea, input[type='text']").first
    editor.fill(in_table)
    editor.press("Enter")
    page.locator("#prepare-stats").get_by_text("Unsaved changes").wait_for()

    # tick a third clip for deletion and delete it
    _row(page, third).locator("input[type='checkbox']").first.check()
    page.locator("#prepare-stats").get_by_text("Ticked for deletion: 1").wait_for()
    page.locator("#prepare-delete-ticked").click()
    page.locator("#prepare-save-status").get_by_text("Removed 1 ticked clip").wait_for()
    assert _row(page, third).count() == 0

    page.screenshot(path=str(artifacts / "prepare_editing.png"), full_page=True)
    page.locator("#prepare-save").click()
    # (a plain get_by_text("Saved") would also match "not saved yet": substring, any case)
    page.locator("#prepare-save-status").get_by_text(re.compile(r"^✓ Saved training/demo")).wait_for(timeout=30_000)

    after = _lists(dataset)
    assert after[first][1] == edited
    assert after[second][1] == in_table
    assert third not in after and not (dataset / third).exists()
    assert len(after) == len(on_disk) - 1
    saved_stats = page.locator("#prepare-stats").inner_text()
    assert f"Clips: {len(after)}" in saved_stats and "Unsaved" not in saved_stats

    # for the README: the tab with a prepared dataset and a selected clip
    _row(page, first).locator("[role='gridcell']").filter(has_text=first).first.click()
    page.wait_for_function("t => document.querySelector('#prepare-clip-text textarea').value === t", arg=edited)
    page.evaluate("window.scrollTo(0, 0)")
    shot = artifacts / "prepare_tab.png"
    page.screenshot(path=str(shot), full_page=True)

    # a dataset prepared earlier opens with "Load dataset" in a fresh page
    page2 = ui.page()
    page2.goto(app.url)
    gradio_ready(page2)
    open_tab(page2, "Prepare Dataset")
    page2.locator("#prepare-dataset input").click()
    page2.get_by_role("option", name="demo", exact=True).click()
    page2.locator("#prepare-load").click()
    page2.locator("#prepare-table").get_by_text(edited).wait_for()
    assert f"Clips: {len(after)}" in page2.locator("#prepare-stats").inner_text()


def test_voice_name_that_leaves_the_workspace_is_refused(ui, workspace: Path, artifacts: Path) -> None:  # noqa: F811
    app = ui.start(workspace)
    page = ui.page()
    page.goto(app.url)
    gradio_ready(page)
    open_tab(page, "Prepare Dataset")  # Quick start is the first tab
    for bad in ("../x", "/tmp/evil"):
        page.locator("#prepare-new-voice input, #prepare-new-voice textarea").first.fill(bad)
        page.locator("#prepare-create-voice").click()
        message = page.locator("#prepare-voice-info")
        message.get_by_text("not allowed").wait_for()
        assert re.search(r"Error", message.inner_text())
    page.screenshot(path=str(artifacts / "prepare_refused_name.png"), full_page=True)
    assert not (workspace / "x").exists() and not (workspace.parent / "x").exists()
    assert sorted(p.name for p in (workspace / "voices").iterdir()) == []
    # a good name is created and becomes the selected voice
    page.locator("#prepare-new-voice input, #prepare-new-voice textarea").first.fill("narrator")
    page.locator("#prepare-create-voice").click()
    page.locator("#prepare-voice-info").get_by_text("is ready").wait_for()
    assert (workspace / "voices" / "narrator").is_dir()

    # engine errors show as one readable line, never a traceback: a bad setting, then an empty voice
    page.locator("#prepare-transcriber input").click()
    page.get_by_role("option", name="none — use transcripts that came with the audio").click()
    page.locator("#prepare-max-seconds input").fill("0.5")
    page.locator("#prepare-run").click()
    status = page.locator("#prepare-status")
    status.get_by_text("max seconds").wait_for()
    page.locator("#prepare-max-seconds input").fill("11.6")
    page.locator("#prepare-run").click()
    page.wait_for_function(  # the final message, not the "Preparing voices/narrator…" shown meanwhile
        "() => { const t = document.querySelector('#prepare-status').innerText;"
        " return t.includes('Error') && t.includes('narrator'); }", timeout=60_000)
    text = status.inner_text()
    assert "Error" in text and "Traceback" not in text and "max seconds" not in text, text
    assert not (workspace / "training" / "narrator" / "train.txt").exists()


def test_upload_into_a_new_voice(ui, workspace: Path, artifacts: Path) -> None:  # noqa: F811
    """Files chosen in the upload box are copied into voices/NAME, originals untouched."""
    app = ui.start(workspace)
    page = ui.page()
    page.goto(app.url)
    gradio_ready(page)
    open_tab(page, "Prepare Dataset")  # Quick start is the first tab
    sources = sorted(DEMO_VOICE.glob("*.flac"))[:2] + [DEMO_VOICE / "metadata.csv"]
    page.locator("#prepare-new-voice input, #prepare-new-voice textarea").first.fill("uploaded")
    page.locator("#prepare-upload input[type='file']").set_input_files([str(p) for p in sources])
    page.locator("#prepare-upload").get_by_text(sources[0].name).first.wait_for()
    page.locator("#prepare-add-files").click()
    page.locator("#prepare-voice-info").get_by_text("Added 3 file(s)").wait_for(timeout=30_000)
    voice = workspace / "voices" / "uploaded"
    for src in sources:
        assert (voice / src.name).read_bytes() == src.read_bytes()
    assert "2 with a transcript" in page.locator("#prepare-voice-info").inner_text()
