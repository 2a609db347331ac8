"""The editor table: load, edit text, change split, delete clips, save; stats for the histogram."""

from __future__ import annotations

import json

import pytest

from modules.errors import UserError
from modules.prepare.editor import COLUMNS, dataset_stats, load_table, save_table
from modules.prepare.options import PrepareOptions
from modules.prepare.pipeline import prepare_voice
from modules.workspace import Workspace


@pytest.fixture
def dataset(demo_workspace):
    return prepare_voice(Workspace.open(demo_workspace), "demo", PrepareOptions(transcriber="none")).dataset_dir


def test_load_table_matches_the_manifests(dataset):
    table = load_table(dataset)
    assert list(table.columns) == COLUMNS and len(table) == 30
    assert set(table["split"]) == {"train", "validation"}
    assert (table["split"] == "validation").sum() == 2
    row = table[table["file"] == "audio/001.wav"].iloc[0]
    assert row["text"] == "The quick brown fox jumps over the lazy dog." and row["duration"] > 1.0


def test_edit_delete_and_resplit(dataset):
    table = load_table(dataset)
    table.loc[table["file"] == "audio/001.wav", "text"] = "An edited | transcript\nwith a newline"
    table.loc[table["file"] == "audio/002.wav", "split"] = "validation"
    table.loc[table["file"] == "audio/004.wav", "text"] = "   "
    table = table[table["file"] != "audio/003.wav"]
    save_table(dataset, table)

    train = (dataset / "train.txt").read_text(encoding="utf-8")
    validation = (dataset / "validation.txt").read_text(encoding="utf-8")
    assert "audio/001.wav|An edited transcript with a newline\n" in train
    assert "audio/002.wav|" in validation and "audio/002.wav|" not in train
    assert "audio/003.wav" not in train + validation and not (dataset / "audio" / "003.wav").exists()
    meta = json.loads((dataset / "dataset.json").read_text())
    assert len(meta["clips"]) == 29 and meta["removed"] == ["audio/003.wav"]
    flags = {c["file"]: c["flags"] for c in meta["clips"]}
    assert flags["audio/004.wav"] == ["empty_text"]
    assert load_table(dataset).set_index("file").loc["audio/004.wav", "flags"] == "empty_text"

    # fixing the text clears the flag again
    table = load_table(dataset)
    table.loc[table["file"] == "audio/004.wav", "text"] = "We will meet at the library after lunch."
    save_table(dataset, table)
    assert load_table(dataset).set_index("file").loc["audio/004.wav", "flags"] == ""


def test_external_edit_of_train_txt_shows_up(dataset):
    path = dataset / "train.txt"
    path.write_text(path.read_text().replace("The quick brown fox", "A slow red fox"))
    row = load_table(dataset).set_index("file").loc["audio/001.wav"]
    assert row["text"].startswith("A slow red fox")


def test_save_refuses_unknown_files_and_empty_training(dataset):
    table = load_table(dataset)
    bad = table.copy()
    bad.loc[0, "file"] = "audio/../../etc/passwd"
    with pytest.raises(UserError, match="not a clip"):
        save_table(dataset, bad)
    allval = table.copy()
    allval["split"] = "validation"
    with pytest.raises(UserError, match="no training clip"):
        save_table(dataset, allval)
    with pytest.raises(UserError, match="no training clip"):
        save_table(dataset, table.iloc[0:0])
    assert len(load_table(dataset)) == 30  # refused saves changed nothing


def test_stats(dataset):
    stats = dataset_stats(dataset)
    assert stats["clips"] == 30 and len(stats["durations"]) == 30
    assert abs(stats["total_seconds"] - sum(stats["durations"])) < 1e-2
    assert abs(stats["mean_seconds"] - stats["total_seconds"] / 30) < 1e-2
    assert (stats["train"], stats["validation"]) == (28, 2)


def test_missing_dataset_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="run prepare"):
        load_table(tmp_path)
