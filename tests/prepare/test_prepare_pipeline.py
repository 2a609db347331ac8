"""prepare_voice end to end without whisper: manifests, bad inputs, formats, atomic replacement."""

from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pytest
import soundfile as sf

from modules.errors import UserError
from modules.prepare.options import PrepareOptions
from modules.prepare.pipeline import prepare_voice
from modules.workspace import Workspace
from tests.conftest import DEMO_VOICE

NONE = PrepareOptions(transcriber="none")


def _tree_digest(root):
    """Hash of every file's path, bytes and mtime under ``root``: proves originals are untouched."""
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode())
            h.update(p.read_bytes())
            h.update(str(p.stat().st_mtime_ns).encode())
    return h.hexdigest()


def _speech(seconds: float, rate: int, lead: float = 0.5, tail: float = 0.5) -> np.ndarray:
    """A voiced-like tone burst with silence around it."""
    t = np.arange(int(seconds * rate)) / rate
    body = 0.4 * np.sin(2 * np.pi * 180 * t) * (0.7 + 0.3 * np.sin(2 * np.pi * 4 * t))
    return np.concatenate([np.zeros(int(lead * rate)), body, np.zeros(int(tail * rate))]).astype(np.float32)


def test_demo_voice_with_given_transcripts(demo_workspace):
    ws = Workspace.open(demo_workspace)
    before = _tree_digest(ws.voices)
    events = []
    result = prepare_voice(ws, "demo", NONE, progress=lambda f, m: events.append(f))
    assert _tree_digest(ws.voices) == before
    assert (result.clips, result.train, result.validation) == (30, 28, 2)
    assert result.dataset_dir == ws.training / "demo"
    metadata = dict(line.split("|")[:2] for line in (DEMO_VOICE / "metadata.csv").read_text().splitlines())
    lines = (result.dataset_dir / "train.txt").read_text().splitlines()
    lines += (result.dataset_dir / "validation.txt").read_text().splitlines()
    assert len(lines) == 30
    for line in lines:
        file, text = line.split("|")
        assert file.startswith("audio/") and text == metadata[file[len("audio/"):-len(".wav")]]
        info = sf.info(str(result.dataset_dir / file))
        assert (info.samplerate, info.channels, info.subtype) == (22050, 1, "PCM_16")
    meta = json.loads((result.dataset_dir / "dataset.json").read_text())
    assert meta["settings"]["transcriber"] == "none" and meta["skipped"] == []
    clip = meta["clips"][0]
    assert clip["source"] == "001.flac" and clip["text_source"] == "metadata.csv" and 0 <= clip["start"] < clip["end"]
    assert abs(sum(c["duration"] for c in meta["clips"]) - result.total_seconds) < 1e-6
    assert events == sorted(events) and events[-1] == 1.0
    assert not [p for p in ws.training.iterdir() if p.name.startswith((".build", ".replaced"))]


def test_trimming_resampling_and_normalisation(workspace):
    ws = Workspace.open(workspace)
    voice = ws.voices / "v"
    voice.mkdir()
    sf.write(str(voice / "a.wav"), _speech(1.0, 48000) * 0.1, 48000, subtype="PCM_24")
    (voice / "a.txt").write_text("a quiet tone")
    result = prepare_voice(ws, "v", PrepareOptions(transcriber="none", sample_rate=16000, normalize="peak",
                                                   padding_seconds=0.1))
    data, rate = sf.read(str(result.dataset_dir / "audio" / "a.wav"), dtype="float32")
    assert rate == 16000
    assert 1.15 <= len(data) / rate <= 1.25  # 1 s of sound + 2 x 0.1 s padding; the 0.5 s silences are trimmed
    assert abs(np.max(np.abs(data)) - 10 ** (-1 / 20)) < 0.01  # peak at -1 dBFS
    loud = prepare_voice(ws, "v", PrepareOptions(transcriber="none", normalize="loudness", trim_silence=False))
    data, rate = sf.read(str(loud.dataset_dir / "audio" / "a.wav"), dtype="float32")
    assert abs(len(data) / rate - 2.0) < 0.01  # nothing trimmed
    from modules.prepare.normalize import loudness

    assert abs(loudness(data, rate) - (-20.0)) < 1.0


def test_every_bad_and_odd_input(workspace):
    """Corrupt, empty, non-audio and untranscribed files are skipped with reasons; odd formats all work."""
    ws = Workspace.open(workspace)
    voice = ws.voices / "mixed"
    (voice / "sub" / "deeper").mkdir(parents=True)
    rate = 22050
    formats = {
        "u8.wav": (22050, "PCM_U8", 1), "s24.wav": (44100, "PCM_24", 1), "float.wav": (16000, "FLOAT", 1),
        "stereo.flac": (22050, "PCM_16", 2), "hi48k.wav": (48000, "PCM_16", 1),
        "sub/deeper/ünï 声.ogg": (24000, "VORBIS", 1),
        "take.mp3": (44100, "MPEG_LAYER_III", 1),
    }
    for name, (r, subtype, channels) in formats.items():
        data = _speech(1.2, r)
        if channels == 2:
            data = np.stack([data, 0.5 * data], axis=1)
        sf.write(str(voice / name), data, r, subtype=subtype)
        (voice / name).with_suffix(".lab").write_text(f"clip {name}", encoding="utf-8")
    (voice / "corrupt.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt garbage")
    (voice / "corrupt.txt").write_text("never used")
    (voice / "empty.flac").write_bytes(b"")
    (voice / "empty.txt").write_text("never used")
    (voice / "notes.docx").write_bytes(b"PK\x03\x04")
    sf.write(str(voice / "untranscribed.wav"), _speech(1.0, rate), rate)
    before = _tree_digest(ws.voices)

    result = prepare_voice(ws, "mixed", NONE)
    assert _tree_digest(ws.voices) == before  # originals never modified
    skipped = dict(result.skipped)
    assert set(skipped) == {"corrupt.wav", "empty.flac", "notes.docx", "untranscribed.wav"}
    assert "not readable" in skipped["corrupt.wav"] and "not an audio file" in skipped["notes.docx"]
    assert "no transcript" in skipped["untranscribed.wav"]
    assert result.clips == len(formats)
    meta = json.loads((result.dataset_dir / "dataset.json").read_text())
    assert {s["file"] for s in meta["skipped"]} == set(skipped)
    texts = {c["source"]: c["text"] for c in meta["clips"]}
    assert texts == {name: f"clip {name}" for name in formats}
    for c in meta["clips"]:
        info = sf.info(str(result.dataset_dir / c["file"]))
        assert (info.samplerate, info.channels, info.subtype) == (22050, 1, "PCM_16")
        assert 1.2 <= c["duration"] <= 1.6, c
    assert any("ünï" in c["file"] for c in meta["clips"])


def test_nothing_usable_is_a_clear_error_and_keeps_the_old_dataset(demo_workspace):
    ws = Workspace.open(demo_workspace)
    prepare_voice(ws, "demo", NONE)
    old_train = (ws.training / "demo" / "train.txt").read_text()
    (ws.voices / "empty").mkdir()
    with pytest.raises(UserError, match="no audio files"):
        prepare_voice(ws, "empty", NONE)
    for p in (ws.voices / "demo").glob("*.flac"):  # an unusable voice: audio without transcripts
        p.with_suffix(".wav").write_bytes(b"not audio at all")
    (ws.voices / "demo" / "metadata.csv").unlink()
    for p in (ws.voices / "demo").glob("*.flac"):
        p.unlink()
    with pytest.raises(UserError) as info:
        prepare_voice(ws, "demo", NONE)
    assert "001.wav" in str(info.value) and "not readable" in str(info.value)
    assert (ws.training / "demo" / "train.txt").read_text() == old_train
    assert not (ws.training / "empty").exists()


@pytest.mark.parametrize("name", ["../x", "/tmp/abs", "a/b", "..", ""])
def test_voice_names_that_leave_the_workspace_are_refused(workspace, name):
    ws = Workspace.open(workspace)
    with pytest.raises(UserError, match="not allowed"):
        prepare_voice(ws, name, NONE)
    assert sorted(p.name for p in workspace.iterdir()) == ["models", "training", "voices"]


def test_missing_voice(workspace):
    with pytest.raises(UserError, match="no folder"):
        prepare_voice(Workspace.open(workspace), "nobody", NONE)


def test_failure_midway_leaves_the_previous_dataset_intact(demo_workspace):
    ws = Workspace.open(demo_workspace)
    first = prepare_voice(ws, "demo", NONE)
    runs = first.dataset_dir / "runs" / "r1"
    runs.mkdir(parents=True)
    (runs / "metrics.jsonl").write_text("{}\n")
    snapshot = _tree_digest(first.dataset_dir)

    class Crash(RuntimeError):
        pass

    def progress(fraction, message):
        if fraction > 0.5:
            raise Crash("simulated crash half-way")

    with pytest.raises(Crash):
        prepare_voice(ws, "demo", PrepareOptions(transcriber="none", sample_rate=16000), progress=progress)
    assert _tree_digest(first.dataset_dir) == snapshot
    assert [p.name for p in ws.training.iterdir() if not p.name.startswith(".prepare-")] == ["demo"]

    # a successful second prepare replaces the dataset and carries the runs over
    second = prepare_voice(ws, "demo", PrepareOptions(transcriber="none", sample_rate=16000, validation_count=3))
    assert second.validation == 3
    assert sf.info(str(next((second.dataset_dir / "audio").glob("*.wav")))).samplerate == 16000
    assert (second.dataset_dir / "runs" / "r1" / "metrics.jsonl").read_text() == "{}\n"
    assert not [p for p in ws.training.iterdir() if p.name.startswith((".build", ".replaced"))]


def test_interrupted_swap_is_recovered(demo_workspace):
    """A crash between the two renames of the swap leaves .replaced-NAME; the next prepare restores it."""
    ws = Workspace.open(demo_workspace)
    first = prepare_voice(ws, "demo", NONE)
    (first.dataset_dir / "configs").mkdir()
    (first.dataset_dir / "configs" / "c.yaml").write_text("model: hifigan\n")
    first.dataset_dir.rename(ws.training / ".replaced-demo-deadbeef")
    stale = ws.training / ".build-demo-killed"  # what a killed process leaves behind
    (stale / "audio").mkdir(parents=True)
    shutil.rmtree(ws.voices / "demo")
    (ws.voices / "demo").mkdir()
    with pytest.raises(UserError, match="no audio files"):  # the voice is now unusable, but the old dataset comes back
        prepare_voice(ws, "demo", NONE)
    assert (ws.training / "demo" / "configs" / "c.yaml").is_file()
    assert (ws.training / "demo" / "train.txt").is_file()
    assert not (ws.training / ".replaced-demo-deadbeef").exists() and not stale.exists()


def test_refused_while_a_trainer_holds_a_run_lock_of_the_dataset(workspace):
    """Replacing a dataset under a running trainer is refused; a stale train.lock file is not a trainer."""
    from modules.trainer.runfolder import RunLock

    ws = Workspace.open(workspace)
    voice = ws.voices / "v"
    voice.mkdir()
    sf.write(str(voice / "a.wav"), _speech(1.0, 22050), 22050)
    (voice / "a.txt").write_text("a tone")
    run = ws.training / "v" / "runs" / "r"
    lock = RunLock(run / "train.lock")
    lock.acquire({"pid": 4242})
    try:
        with pytest.raises(UserError, match="a training run is using this dataset"):
            prepare_voice(ws, "v", NONE)
    finally:
        lock.release()
    assert (run / "train.lock").is_file()  # left behind, but nobody holds it
    result = prepare_voice(ws, "v", NONE)
    assert result.clips == 1 and (result.dataset_dir / "runs" / "r" / "train.lock").is_file()


def test_a_file_name_that_is_not_utf8_is_reported_not_fatal(tmp_path):
    """Such a name once crashed the writing of dataset.json and lost every valid clip with it."""
    import os

    import numpy as np
    import soundfile as sf

    from modules.prepare.options import PrepareOptions
    from modules.prepare.pipeline import prepare_voice
    from modules.workspace import Workspace

    ws = Workspace.open(tmp_path / "ws")
    voice = ws.voices / "odd"
    voice.mkdir()
    t = np.arange(22050 * 2) / 22050
    tone = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    sf.write(voice / "good.wav", tone, 22050)
    (voice / "good.txt").write_text("A good clip with its text.")
    bad = os.fsencode(str(voice)) + b"/bad\xff.wav"
    with open(bad, "wb") as fh:
        sf.write(fh, tone, 22050, format="WAV")
    result = prepare_voice(ws, "odd", PrepareOptions(transcriber="none"))
    assert result.clips == 1
    assert any("not valid UTF-8" in why and "bad" in name for name, why in result.skipped), result.skipped
    assert (ws.training / "odd" / "dataset.json").is_file()


def test_silent_recordings_are_skipped_and_long_silences_flagged(tmp_path):
    """A 30-minute silent take once became one 1,800 s clip (or 60 hallucinated "You" clips)."""
    import numpy as np
    import soundfile as sf

    from modules.prepare.options import PrepareOptions
    from modules.prepare.pipeline import prepare_voice
    from modules.workspace import Workspace

    ws = Workspace.open(tmp_path / "ws")
    voice = ws.voices / "quiet"
    voice.mkdir()
    rate = 22050
    t = np.arange(rate * 3) / rate
    tone = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    hiss = (0.0005 * np.random.default_rng(0).standard_normal(rate * 60)).astype(np.float32)  # about -66 dBFS
    sf.write(voice / "speech.wav", tone, rate)
    sf.write(voice / "silent.wav", hiss, rate)
    sf.write(voice / "gap.wav", np.concatenate([tone, hiss[: rate * 40], tone]), rate)
    for name in ("speech", "silent", "gap"):
        (voice / f"{name}.txt").write_text(f"Some words for {name}.")
    lines: list[str] = []
    result = prepare_voice(ws, "quiet", PrepareOptions(transcriber="none", max_seconds=120.0), log=lines.append)
    assert any(name == "silent.wav" and "near silence for 60 of 60 s" in why for name, why in result.skipped)
    assert result.clips == 2
    assert any(line.startswith("warning: gap.wav has 1 stretch(es) of near silence") for line in lines), lines
