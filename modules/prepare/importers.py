"""Find a voice's recordings and the transcripts that came with them; copy uploads into a voice.

Transcript sources, most specific first: a ``.txt``/``.lab`` file beside the audio file,
then ai-voice-cloning ``train.txt``/``validation.txt`` (``audio/x.wav|text``), then
LJSpeech ``metadata.csv`` (``id|text[|normalized]``). Files are never modified.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from modules.audio.io import AUDIO_EXTENSIONS
from modules.errors import UserError
from modules.fileutil import file_digest
from modules.workspace import Workspace, WorkspaceError

SIDE_TRANSCRIPT_EXTENSIONS = (".txt", ".lab")
LIST_FILES = ("train.txt", "validation.txt")
METADATA_FILES = ("metadata.csv",)
# files that are neither audio nor a transcript but are harmless in a voice folder: not reported
_IGNORED_NAMES = {"readme.md", "readme.txt", "license", "license.txt", ".ds_store", "thumbs.db", "desktop.ini"}
UPLOAD_EXTENSIONS = AUDIO_EXTENSIONS + SIDE_TRANSCRIPT_EXTENSIONS + (".csv",)


@dataclass
class VoiceScan:
    """What a voice folder holds: audio files, their given transcripts, files that are not usable."""

    audio: list[Path] = field(default_factory=list)
    transcripts: dict[Path, str] = field(default_factory=dict)  # audio path -> text
    transcript_sources: dict[Path, str] = field(default_factory=dict)  # audio path -> where the text came from
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file relative to the voice, reason)


def is_audio_file(path: Path) -> bool:
    return path.suffix.lower() in AUDIO_EXTENSIONS


def _visible_files(root: Path) -> list[Path]:
    """All regular files under ``root`` recursively, skipping hidden files and folders, sorted."""
    out = []
    for p in root.rglob("*"):
        rel = p.relative_to(root)
        if any(part.startswith(".") for part in rel.parts):
            continue
        if p.is_file():
            out.append(p)
    return sorted(out, key=lambda p: str(p.relative_to(root)).lower())


def _clean_text(text: str) -> str:
    """One line of transcript: no newlines, no '|' (the manifest separator), single spaces."""
    return " ".join(text.replace("|", " ").replace("\ufeff", "").split())


def _read_text(path: Path) -> str | None:
    """Read a small text file as UTF-8 (falling back to Latin-1); None if unreadable."""
    try:
        raw = path.read_bytes()
    except OSError:
        return None
    for enc in ("utf-8-sig", "latin-1"):
        try:
            return raw.decode(enc)
        except UnicodeDecodeError:
            continue
    return None


def parse_metadata_csv(path: Path) -> dict[str, str]:
    """LJSpeech ``id|text[|normalized]`` lines -> {id: text}; the normalized column wins when present
    because it spells out numbers and abbreviations, which is what a TTS model must learn to say."""
    text = _read_text(path) or ""
    out: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split("|")
        if len(parts) < 2 or not parts[0].strip():
            continue
        key = parts[0].strip()
        value = parts[2] if len(parts) >= 3 and parts[2].strip() else parts[1]
        out[key] = _clean_text(value)
    return out


def parse_list_file(path: Path) -> dict[str, str]:
    """ai-voice-cloning / DLAS ``audio/x.wav|text`` lines -> {relative path: text}."""
    text = _read_text(path) or ""
    out: dict[str, str] = {}
    for line in text.splitlines():
        if "|" not in line:
            continue
        rel, _, value = line.partition("|")
        rel = rel.strip().replace("\\", "/")
        if rel:
            out[rel] = _clean_text(value.split("|")[0] if value.count("|") else value)
    return out


def _lookup_keys(audio: Path, base: Path) -> list[str]:
    """Keys under which a list/metadata file may name ``audio``: relative path with and without
    extension, and the bare stem (LJSpeech ids omit the ``wavs/`` folder and the extension)."""
    try:
        rel = audio.relative_to(base).as_posix()
    except ValueError:
        return []
    no_ext = rel[: -len(audio.suffix)] if audio.suffix else rel
    return [rel, no_ext, audio.name, audio.stem]


def scan_voice(voice_dir: Path) -> VoiceScan:
    """List audio files recursively and attach the transcripts that came with them."""
    scan = VoiceScan()
    files = []
    for p in _visible_files(voice_dir):
        rel = p.relative_to(voice_dir).as_posix()
        try:
            rel.encode("utf-8")
        except UnicodeEncodeError:  # bytes that are not UTF-8 (surrogate-escaped by the OS layer)
            shown = rel.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
            scan.skipped.append((shown, "the file name is not valid UTF-8; rename the file"))
            continue
        files.append(p)
    audio = [p for p in files if is_audio_file(p)]
    audio_stems = {p.with_suffix("") for p in audio}
    scan.audio = audio

    lists: list[tuple[Path, dict[str, str]]] = []
    for p in files:
        name = p.name.lower()
        if name in LIST_FILES:
            lists.append((p, parse_list_file(p)))
        elif name in METADATA_FILES:
            lists.append((p, parse_metadata_csv(p)))
    # deeper list files first: they are closer to the audio they describe
    lists.sort(key=lambda item: (-len(item[0].parts), item[0].name.lower() not in LIST_FILES))

    for a in audio:
        for ext in SIDE_TRANSCRIPT_EXTENSIONS:
            side = a.with_suffix(ext)
            if side.is_file():
                text = _read_text(side)
                if text is not None:
                    scan.transcripts[a] = _clean_text(text)
                    scan.transcript_sources[a] = side.relative_to(voice_dir).as_posix()
                    break
        if a in scan.transcripts:
            continue
        for list_path, table in lists:
            for key in _lookup_keys(a, list_path.parent):
                if key in table:
                    scan.transcripts[a] = table[key]
                    scan.transcript_sources[a] = list_path.relative_to(voice_dir).as_posix()
                    break
            if a in scan.transcripts:
                break

    for p in files:
        name = p.name.lower()
        if is_audio_file(p) or name in LIST_FILES or name in METADATA_FILES or name in _IGNORED_NAMES:
            continue
        if p.suffix.lower() in SIDE_TRANSCRIPT_EXTENSIONS and p.with_suffix("") in audio_stems:
            continue
        scan.skipped.append((p.relative_to(voice_dir).as_posix(),
                             f"not an audio file (extension {p.suffix or 'none'!r}; "
                             f"use {', '.join(AUDIO_EXTENSIONS)})"))
    return scan


def _safe_upload_name(name: str) -> str:
    """The base name of an upload, refusing names that are empty or hidden."""
    base = Path(str(name).replace("\\", "/")).name.strip()
    if not base or base in (".", "..") or base.startswith("."):
        raise UserError(f"upload file name {name!r} is not allowed; rename it (no leading '.', no folders)")
    return base


def import_files(workspace: Workspace, voice: str, files: list[Path]) -> list[Path]:
    """Copy uploaded files into ``voices/NAME`` (created if missing) and return the new paths.

    Audio and transcript files are accepted (wav/flac/mp3/ogg/..., .txt/.lab, metadata.csv);
    anything else is refused with a UserError naming it. An identical file already there is
    reused; a different file with the same name gets a ``_1``, ``_2``... suffix, so nothing
    in ``voices/`` is ever overwritten.
    """
    try:
        voice_dir = workspace.voice_dir(voice)
    except WorkspaceError as exc:
        raise UserError(str(exc)) from exc
    sources = [Path(f) for f in files]
    for src in sources:
        if not src.is_file():
            raise UserError(f"{src}: no such file to import")
        if src.suffix.lower() not in UPLOAD_EXTENSIONS:
            raise UserError(f"{src.name}: not an audio or transcript file; upload {', '.join(UPLOAD_EXTENSIONS)} files")
    voice_dir.mkdir(parents=True, exist_ok=True)
    out: list[Path] = []
    for src in sources:
        base = _safe_upload_name(src.name)
        dest = voice_dir / base
        n = 0
        while dest.exists():
            if dest.is_file() and file_digest(dest) == file_digest(src):
                break
            n += 1
            dest = voice_dir / f"{Path(base).stem}_{n}{Path(base).suffix}"
        if not dest.exists():
            tmp = dest.with_name(f".tmp-{dest.name}")
            shutil.copyfile(src, tmp)
            tmp.replace(dest)
        out.append(dest)
    return out
