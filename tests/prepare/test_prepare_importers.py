"""Importers: find audio recursively, attach transcripts from metadata.csv / train.txt / .txt / .lab, copy uploads."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from modules.errors import UserError
from modules.prepare.importers import import_files, parse_list_file, parse_metadata_csv, scan_voice
from modules.workspace import Workspace


def _wav(path, seconds=0.3, rate=16000):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), (0.1 * np.random.default_rng(0).standard_normal(int(rate * seconds))).astype(np.float32), rate)
    return path


def test_ljspeech_metadata_with_wavs_folder_prefers_normalized(tmp_path):
    voice = tmp_path / "v"
    _wav(voice / "wavs" / "LJ001-0001.wav")
    _wav(voice / "wavs" / "LJ001-0002.wav")
    (voice / "metadata.csv").write_text(
        "LJ001-0001|Dr. Smith paid $5.|Doctor Smith paid five dollars.\nLJ001-0002|Plain text only\n", encoding="utf-8")
    scan = scan_voice(voice)
    texts = {p.name: t for p, t in scan.transcripts.items()}
    assert texts == {"LJ001-0001.wav": "Doctor Smith paid five dollars.", "LJ001-0002.wav": "Plain text only"}
    assert scan.skipped == []


def test_ai_voice_cloning_lists_and_sidecars(tmp_path):
    voice = tmp_path / "v"
    for name in ("a", "b", "c", "d"):
        _wav(voice / "audio" / f"{name}.wav")
    (voice / "train.txt").write_text("audio/a.wav|From the train list.\naudio/b.wav|Also listed|extra\n",
                                     encoding="utf-8")
    (voice / "validation.txt").write_text("audio/c.wav|From validation.\n", encoding="utf-8")
    (voice / "audio" / "b.lab").write_text("The lab file wins.\n", encoding="utf-8")
    (voice / "audio" / "d.txt").write_text("\ufeffA text file\nover two lines.", encoding="utf-8")
    scan = scan_voice(voice)
    texts = {p.name: t for p, t in scan.transcripts.items()}
    assert texts == {"a.wav": "From the train list.", "b.wav": "The lab file wins.", "c.wav": "From validation.",
                     "d.wav": "A text file over two lines."}
    assert scan.transcript_sources[voice / "audio" / "b.wav"] == "audio/b.lab"
    assert [p.name for p in scan.audio] == ["a.wav", "b.wav", "c.wav", "d.wav"]


def test_non_audio_files_are_reported_hidden_ignored(tmp_path):
    voice = tmp_path / "v"
    _wav(voice / "sub" / "deeper" / "x.flac")
    (voice / "notes.pdf").write_bytes(b"%PDF-1.4")
    (voice / ".hidden.wav").write_bytes(b"junk")
    (voice / "README.md").write_text("about this voice")
    scan = scan_voice(voice)
    assert [p.relative_to(voice).as_posix() for p in scan.audio] == ["sub/deeper/x.flac"]
    assert [f for f, _ in scan.skipped] == ["notes.pdf"]
    assert "not an audio file" in scan.skipped[0][1]


def test_parsers_tolerate_junk_lines(tmp_path):
    meta = tmp_path / "metadata.csv"
    meta.write_text("\nno separator\n|missing id\nx|a | b\n", encoding="utf-8")
    assert parse_metadata_csv(meta) == {"x": "b"}
    lst = tmp_path / "train.txt"
    lst.write_text("audio\\y.wav|Windows path\nnothing\n", encoding="utf-8")
    assert parse_list_file(lst) == {"audio/y.wav": "Windows path"}


def test_import_files_copies_without_overwriting(tmp_path):
    ws = Workspace.open(tmp_path / "ws")
    a = _wav(tmp_path / "up" / "take.wav")
    b = _wav(tmp_path / "other" / "take.wav", seconds=0.5)
    lab = tmp_path / "up" / "take.lab"
    lab.write_text("hello")
    first = import_files(ws, "new voice", [a, lab])
    assert [p.name for p in first] == ["take.wav", "take.lab"] and first[0].parent == ws.voices / "new voice"
    again = import_files(ws, "new voice", [a])  # identical: reused, not duplicated
    assert again == [first[0]]
    other = import_files(ws, "new voice", [b])  # same name, other content: renamed
    assert other[0].name == "take_1.wav"
    assert first[0].read_bytes() == a.read_bytes()


@pytest.mark.parametrize("name", ["../x", "/abs/path", "a/b", "..", ""])
def test_import_refuses_names_that_leave_the_workspace(tmp_path, name):
    ws = Workspace.open(tmp_path / "ws")
    a = _wav(tmp_path / "up" / "take.wav")
    with pytest.raises(UserError, match="not allowed"):
        import_files(ws, name, [a])
    assert not (tmp_path / "x").exists() and list(ws.voices.iterdir()) == []


def test_import_refuses_non_audio(tmp_path):
    ws = Workspace.open(tmp_path / "ws")
    bad = tmp_path / "virus.exe"
    bad.write_bytes(b"MZ")
    with pytest.raises(UserError, match="virus.exe"):
        import_files(ws, "v", [bad])
