"""Orchestration of one preparation: scan, transcribe, slice, check, split, write, swap in atomically.

The dataset is built in a hidden folder under ``training/`` and renamed into ``training/NAME``
only when complete, so a crash or an error leaves the previous dataset as it was. Folders a
later stage added to the dataset (``configs/``, ``runs/``) are carried over to the new one.
Nothing under ``voices/`` is ever written.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import tempfile
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from modules.audio.io import AudioReadError, read_audio, resample, write_wav
from modules.errors import UserError
from modules.prepare import checks
from modules.prepare.importers import scan_voice
from modules.prepare.manifest import (
    DATASET_JSON,
    FORMAT_VERSION,
    TRAIN_LIST,
    VALIDATION_LIST,
    clean_line_text,
    write_dataset,
)
from modules.prepare.normalize import normalize
from modules.prepare.options import PrepareOptions
from modules.prepare.split import split_files
from modules.workspace import Workspace, WorkspaceError

ProgressFn = Callable[[float, str], None]
LogFn = Callable[[str], None]
DATASET_ENTRIES = {"audio", TRAIN_LIST, VALIDATION_LIST, DATASET_JSON}
CACHE_DIR = Path(".cache") / "transcripts"

LONG_SILENCE_SECONDS = 30.0  # near silence this long in one recording is not a pause between sentences


@dataclass
class PrepareResult:
    """What one preparation produced (the full detail is in ``dataset.json``)."""

    dataset_dir: Path
    clips: int
    train: int
    validation: int
    total_seconds: float
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)


def prepare_voice(workspace: Workspace, voice: str, options: PrepareOptions,
                  progress: ProgressFn | None = None, log: LogFn | None = None) -> PrepareResult:
    """Build ``training/VOICE`` from ``voices/VOICE``; raises UserError when nothing usable is found."""
    options.validate()
    progress = progress or (lambda fraction, message: None)
    log = log or (lambda message: None)
    try:
        voice_dir, dataset_dir = workspace.voice_dir(voice), workspace.dataset_dir(voice)
    except WorkspaceError as exc:
        raise UserError(str(exc)) from exc
    if not voice_dir.is_dir():
        raise UserError(f"voice {voice!r} has no folder {voice_dir}; put its recordings there or upload them")
    workspace.training.mkdir(parents=True, exist_ok=True)
    with _voice_lock(workspace.training, dataset_dir.name):
        _recover(workspace.training, dataset_dir)
        _refuse_if_training(dataset_dir)
        build = Path(tempfile.mkdtemp(prefix=f".build-{dataset_dir.name}-", dir=workspace.training))
        try:
            result = _build(workspace, voice_dir, build, options, progress, log)
            progress(0.99, "replacing the previous dataset")
            _swap_in(build, dataset_dir)
        except BaseException:
            shutil.rmtree(build, ignore_errors=True)
            raise
    result.dataset_dir = dataset_dir
    progress(1.0, "done")
    log(f"prepared {result.clips} clips ({result.total_seconds:.1f} s) in {dataset_dir}")
    return result


# --- building ---------------------------------------------------------------------------------

def _safe_stem(rel: str) -> str:
    """A clip base name from a source path: folders joined with '_', odd characters replaced."""
    stem = rel.rsplit(".", 1)[0] if "." in Path(rel).name else rel
    stem = re.sub(r"[^\w\-.]+", "_", stem.replace("/", "_"), flags=re.UNICODE).strip("._")
    return stem or "clip"


def _reason(exc: Exception, path: Path) -> str:
    text = str(exc)
    prefix = f"{path.name}: "
    return text[len(prefix):] if text.startswith(prefix) else text


def _build(workspace: Workspace, voice_dir: Path, build: Path, options: PrepareOptions,
           progress: ProgressFn, log: LogFn) -> PrepareResult:
    from modules.fileutil import file_digest
    from modules.prepare.slicing import Loudness, plan_clips, speech_regions, whole_file_span
    from modules.prepare.transcribe import WHISPER_RATE, TranscriptCache, describe_model, load_transcriber

    scan = scan_voice(voice_dir)
    skipped: list[tuple[str, str]] = list(scan.skipped)
    for rel, reason in scan.skipped:
        log(f"skipped {rel}: {reason}")
    if not scan.audio:
        raise UserError(_nothing_usable(voice_dir, skipped, "no audio files (wav, flac, mp3, ogg) found"))

    use_whisper = options.transcriber != "none"
    cache = TranscriptCache(workspace.training / CACHE_DIR)
    model_id = describe_model(options.transcriber, options.model, workspace.root) if use_whisper else ""
    transcriber = None
    sizes = [max(p.stat().st_size, 1) for p in scan.audio]
    total_size, done_size = float(sum(sizes)), 0.0
    rate_out = int(options.sample_rate)
    audio_dir = build / "audio"
    audio_dir.mkdir()
    clips: list[dict[str, Any]] = []
    used_names: set[str] = set()
    languages: dict[str, str] = {}
    transcribe_seconds = audio_seconds = 0.0

    for path, size in zip(scan.audio, sizes):
        rel = path.relative_to(voice_dir).as_posix()

        def file_progress(fraction: float, stage: str, _done=done_size, _size=size, _rel=rel) -> None:
            progress(0.98 * (_done + _size * min(max(fraction, 0.0), 1.0)) / total_size, f"{_rel}: {stage}")

        file_progress(0.0, "reading")
        try:
            samples, rate = read_audio(path)
        except AudioReadError as exc:
            skipped.append((rel, _reason(exc, path)))
            log(f"skipped {rel}: {_reason(exc, path)}")
            done_size += size
            continue
        duration = len(samples) / float(rate)
        loud = Loudness(samples, rate)
        silent = loud.silent_stretches(LONG_SILENCE_SECONDS)
        if silent and sum(b - a for a, b in silent) > 0.9 * duration:
            # a silent recording: transcripts given would make it one long clip, whisper hallucinates on it
            reason = f"near silence for {sum(b - a for a, b in silent):.0f} of {duration:.0f} s; nothing to learn"
            skipped.append((rel, reason))
            log(f"skipped {rel}: {reason}")
            done_size += size
            continue
        if silent:
            log(f"warning: {rel} has {len(silent)} stretch(es) of near silence of {LONG_SILENCE_SECONDS:.0f} s or "
                f"more (longest {max(b - a for a, b in silent):.0f} s); whisper may write text that was never "
                "said there: check its clips")
        if rate < rate_out:
            log(f"note: {rel} is {rate} Hz: upsampled to {rate_out} Hz, it has nothing above {rate // 2} Hz "
                "(a model learns that dullness); record or export at {rate_out} Hz or more if you can"
                .replace("{rate_out}", str(rate_out)))

        if not use_whisper:
            text = scan.transcripts.get(path)
            if text is None:
                reason = ("no transcript: add a .txt or .lab file with the same name beside it, a metadata.csv "
                          "line, or choose a whisper transcriber")
                skipped.append((rel, reason))
                log(f"skipped {rel}: {reason}")
                done_size += size
                continue
            spans = [whole_file_span(text, duration, loud, options.padding_seconds, options.trim_silence)]
            text_source = scan.transcript_sources.get(path, "")
        else:
            key = cache.key(file_digest(path), options.transcriber, model_id, options.language)
            transcript = cache.get(key) if options.skip_existing else None
            audio16k = None
            if transcript is None:
                if transcriber is None:
                    file_progress(0.0, f"loading {options.transcriber} model {Path(options.model).name}")
                    log(f"loading {options.transcriber} model {options.model}")
                    transcriber = load_transcriber(options.transcriber, options.model, options.device,
                                                   options.language, workspace.root)
                file_progress(0.05, "transcribing")
                audio16k = resample(samples, rate, WHISPER_RATE)
                started = time.perf_counter()
                try:
                    transcript = transcriber.transcribe(
                        audio16k, progress=lambda f: file_progress(0.05 + 0.85 * f, "transcribing"))
                except Exception as exc:  # one bad file must not stop the others
                    detail = (str(exc).strip().splitlines() or [""])[0][:160]
                    reason = f"transcription failed ({type(exc).__name__}: {detail})"
                    skipped.append((rel, reason))
                    log(f"skipped {rel}: {reason}")
                    done_size += size
                    continue
                transcribe_seconds += time.perf_counter() - started
                audio_seconds += duration
                cache.put(key, transcript, rel)
            else:
                log(f"{rel}: cached transcription reused")
            if transcript.language:
                languages[rel] = transcript.language
            vad_box: dict[str, Any] = {}

            def speech(_samples=samples, _rate=rate, _a16=audio16k, _box=vad_box):
                if "regions" not in _box:
                    a16 = _a16 if _a16 is not None else resample(_samples, _rate, WHISPER_RATE)
                    _box["regions"] = speech_regions(a16)
                return _box["regions"]

            spans = plan_clips(transcript.segments, duration, loud, options.min_seconds, options.max_seconds,
                               options.padding_seconds, options.trim_silence, speech)
            text_source = f"{options.transcriber}:{options.model}"
            if not spans:
                reason = "whisper heard no speech in it"
                skipped.append((rel, reason))
                log(f"skipped {rel}: {reason}")
                done_size += size
                continue

        file_progress(0.92, "cutting clips")
        target = resample(samples, rate, rate_out)
        stem = _safe_stem(rel)
        for k, span in enumerate(spans):
            name = stem if len(spans) == 1 else f"{stem}_{k + 1:03d}"
            base, n = name, 1
            while name.lower() in used_names:
                n += 1
                name = f"{base}_{n}"
            used_names.add(name.lower())
            piece = target[int(round(span.start * rate_out)): int(round(span.end * rate_out))]
            source_piece = samples[int(round(span.start * rate)): int(round(span.end * rate))]
            if len(piece) == 0:
                continue
            flags = checks.audio_flags(source_piece, rate, options.min_seconds, options.max_seconds)
            write_wav(audio_dir / f"{name}.wav", normalize(piece, rate_out, options.normalize), rate_out)
            clips.append({
                "file": f"audio/{name}.wav",
                "text": clean_line_text(span.text),
                "split": "train",
                "duration": round(len(piece) / float(rate_out), 4),
                "flags": flags,
                "source": rel,
                "start": round(span.start, 4),
                "end": round(span.end, 4),
                "text_source": text_source,
            })
        log(f"{rel}: {len(spans)} clip{'s' if len(spans) != 1 else ''}")
        file_progress(1.0, "done")
        done_size += size

    if not clips:
        raise UserError(_nothing_usable(voice_dir, skipped, "no clip could be made"))

    checks.refresh_text_flags(clips)
    dataset_warnings = checks.dataset_warnings(clips)
    for warning in dataset_warnings:
        log(f"warning: {warning}")
    train, validation = split_files([c["file"] for c in clips], options.validation_percent,
                                    options.validation_count, options.seed)
    val_set = set(validation)
    for c in clips:
        c["split"] = "validation" if c["file"] in val_set else "train"
    total = float(sum(c["duration"] for c in clips))
    meta = {
        "format": FORMAT_VERSION,
        "voice": voice_dir.name,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "sample_rate": rate_out,
        "settings": options.to_dict(),
        "transcriber": {"backend": options.transcriber, "model": model_id or None,
                        "languages": sorted(set(languages.values())),
                        "seconds": round(transcribe_seconds, 3), "audio_seconds": round(audio_seconds, 3)},
        "totals": {"clips": len(clips), "train": len(train), "validation": len(validation),
                   "seconds": round(total, 3), "flagged": sum(1 for c in clips if c["flags"])},
        "clips": clips,
        "skipped": [{"file": f, "reason": r} for f, r in skipped],
        "warnings": dataset_warnings,
    }
    write_dataset(build, meta)
    return PrepareResult(build, len(clips), len(train), len(validation), total, skipped)


def _nothing_usable(voice_dir: Path, skipped: list[tuple[str, str]], what: str) -> str:
    lines = [f"nothing usable in {voice_dir}: {what}."]
    lines += [f"  {f}: {r}" for f, r in skipped[:20]]
    if len(skipped) > 20:
        lines.append(f"  ... and {len(skipped) - 20} more")
    lines.append("Add wav/flac/mp3/ogg recordings (with transcripts when using --transcriber none) and run again.")
    return "\n".join(lines)


# --- atomic replacement -----------------------------------------------------------------------

@contextmanager
def _voice_lock(training: Path, name: str) -> Iterator[None]:
    """One preparation per dataset at a time (a second one gets a clear error, not a mixed folder)."""
    lock_path = training / f".prepare-{name}.lock"
    fh = open(lock_path, "a+")
    try:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise UserError(f"dataset {name!r} is being prepared by another process; wait for it to finish") from exc
        yield
    finally:
        fh.close()


def _refuse_if_training(dataset_dir: Path) -> None:
    """Replacing a dataset under a running trainer would pull its files away: refuse instead."""
    from modules.trainer.runfolder import lock_holder

    for lock in sorted(dataset_dir.glob("runs/*/train.lock")):
        if lock_holder(lock.parent) is not None:
            raise UserError(f"{lock.parent}: a training run is using this dataset; stop it before preparing again")


def _carry_over(old: Path, new: Path) -> None:
    """Move what later stages added (configs/, runs/, ...) from the replaced dataset to the new one."""
    for entry in old.iterdir():
        if entry.name in DATASET_ENTRIES or entry.name.startswith(".tmp-"):
            continue
        if not (new / entry.name).exists():
            os.rename(entry, new / entry.name)


def _swap_in(build: Path, dataset_dir: Path) -> None:
    if not dataset_dir.exists():
        os.rename(build, dataset_dir)
        return
    old = dataset_dir.parent / f".replaced-{dataset_dir.name}-{uuid.uuid4().hex[:8]}"
    os.rename(dataset_dir, old)
    os.rename(build, dataset_dir)
    _carry_over(old, dataset_dir)
    shutil.rmtree(old, ignore_errors=True)


def _recover(training: Path, dataset_dir: Path) -> None:
    """Finish a swap that a crash interrupted, and remove builds that a crash left behind."""
    for old in sorted(training.glob(f".replaced-{dataset_dir.name}-*")):
        if not old.is_dir():
            continue
        if not dataset_dir.exists():
            os.rename(old, dataset_dir)
        else:
            _carry_over(old, dataset_dir)
            shutil.rmtree(old, ignore_errors=True)
    for stale in training.glob(f".build-{dataset_dir.name}-*"):
        shutil.rmtree(stale, ignore_errors=True)
