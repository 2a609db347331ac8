"""Whisper transcription with word timestamps: faster-whisper (default) or openai-whisper, offline-first.

Audio is decoded by us (soundfile) and passed as 16 kHz float32 arrays, so no ffmpeg is needed.
Models are looked up in ``models/whisper/`` first; a missing model gives a UserError that says
which file to put where. Results are cached per source file (content hash + backend + model +
language) under ``training/.cache/transcripts/`` so re-runs with ``skip_existing`` are instant.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from modules.errors import UserError
from modules.fileutil import atomic_write_json

WHISPER_RATE = 16000
CACHE_VERSION = 1
_FW_URL = "https://huggingface.co/Systran/faster-whisper-{name}"
_CT2_FILES = "model.bin, config.json, tokenizer.json and vocabulary.txt/json"
# openai-whisper downloads with urllib and no timeout: a network that never answers would hang
# prepare forever. Any single connect/read stalling this long fails the download instead.
DOWNLOAD_TIMEOUT_S = 30.0
_TIMEOUT_ENV = "VOICETUNE_DOWNLOAD_TIMEOUT"


@dataclass
class Word:
    start: float
    end: float
    text: str


@dataclass
class Segment:
    start: float
    end: float
    text: str
    words: list[Word] = field(default_factory=list)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Segment":
        return cls(float(d["start"]), float(d["end"]), str(d.get("text", "")),
                   [Word(float(w["start"]), float(w["end"]), str(w["text"])) for w in d.get("words", [])])


@dataclass
class Transcript:
    segments: list[Segment]
    language: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"language": self.language, "segments": [asdict(s) for s in self.segments]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Transcript":
        return cls([Segment.from_dict(s) for s in d.get("segments", [])], d.get("language"))


FileProgress = Callable[[float], None]


class Transcriber:
    """A loaded whisper model. ``transcribe`` takes 16 kHz mono float32 samples."""

    backend = ""
    model_id = ""  # identifies the weights in the cache key

    def transcribe(self, audio16k: np.ndarray, progress: FileProgress | None = None) -> Transcript:
        raise NotImplementedError


def _first_line(exc: BaseException, limit: int = 160) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:limit] if lines else ""


def offline_mode() -> bool:
    """True when the user asked for no downloads (``HF_HUB_OFFLINE=1``, honoured by both backends)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def download_timeout() -> float:
    """Seconds a download connection may stall (``VOICETUNE_DOWNLOAD_TIMEOUT`` overrides the default)."""
    raw = os.environ.get(_TIMEOUT_ENV, "").strip()
    try:
        value = float(raw) if raw else DOWNLOAD_TIMEOUT_S
    except ValueError:
        raise UserError(f"{_TIMEOUT_ENV}={raw!r} is not a number of seconds; unset it or set e.g. 30") from None
    return value if value > 0 else DOWNLOAD_TIMEOUT_S


def _download_whisper(name: str, root: Path, timeout: float) -> Path:
    """Fetch openai-whisper's ``NAME.pt`` into ``root`` with a stall timeout on this connection only
    (whisper's own downloader has none), checked against the SHA-256 in its URL, renamed into place
    only when whole."""
    import hashlib
    import urllib.request

    import whisper

    from modules.fileutil import atomic_replace

    url = whisper._MODELS[name]
    target = Path(root) / f"{name}.pt"
    expected = url.split("/")[-2]
    if target.is_file() and hashlib.sha256(target.read_bytes()).hexdigest() == expected:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()

    with atomic_replace(target) as out, urllib.request.urlopen(url, timeout=timeout) as source:
        while chunk := source.read(1 << 20):
            digest.update(chunk)
            out.write(chunk)
        if digest.hexdigest() != expected:
            raise OSError(f"the download of {name}.pt is damaged (checksum mismatch); try again")
    return target


def _probe_hub() -> None:
    """Fail fast when the Hugging Face endpoint does not answer.

    huggingface_hub lists a repo's files with no timeout, so a network that drops traffic would
    hang prepare forever; any HTTP answer (even an error status) means downloads can be tried."""
    import urllib.error
    import urllib.request

    from huggingface_hub import constants

    url = constants.ENDPOINT.rstrip("/") + "/"
    try:
        urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=download_timeout()).close()
    except urllib.error.HTTPError:
        return
    except (OSError, ValueError) as exc:  # URLError, refused, timed out, bad URL
        reason = getattr(exc, "reason", exc)
        raise ConnectionError(f"{url} did not answer ({reason})") from exc


def _language_arg(language: str) -> str | None:
    lang = (language or "auto").strip().lower()
    if lang in ("", "auto"):
        return None
    from whisper.tokenizer import LANGUAGES, TO_LANGUAGE_CODE

    if lang in LANGUAGES:
        return lang
    if lang in TO_LANGUAGE_CODE:
        return TO_LANGUAGE_CODE[lang]
    raise UserError(f"language {language!r} is not one whisper knows; use 'auto' or a code such as en, de, fr")


def resolve_device(device: str) -> str:
    """auto -> cuda when a GPU is visible, else cpu; an explicit cuda without a GPU is a UserError."""
    device = (device or "auto").lower()
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except Exception:
        has_cuda = False
    if device == "auto":
        return "cuda" if has_cuda else "cpu"
    if device == "cuda" and not has_cuda:
        raise UserError("device 'cuda' was asked for but no CUDA GPU is visible; use --device cpu or auto")
    return device


def _candidate_paths(model: str, workspace_root: Path | None, backend: str = "") -> list[Path]:
    """Where a model given by name or path may live: models/whisper/ first, then the path as typed.
    faster-whisper looks for CTranslate2 folders there, openai-whisper for ``NAME.pt`` files."""
    out: list[Path] = []
    raw = Path(model).expanduser()
    if workspace_root is not None:
        wdir = workspace_root / "models" / "whisper"
        if backend == "faster-whisper":
            out += [wdir / model, wdir / f"faster-whisper-{model}"]
        elif backend == "openai-whisper":
            out += [wdir / model, wdir / f"{model}.pt"]
        else:
            out += [wdir / model, wdir / f"{model}.pt", wdir / f"faster-whisper-{model}"]
        if not raw.is_absolute():
            out.append(workspace_root / raw)
    out.append(raw if raw.is_absolute() else Path.cwd() / raw)
    return out


def _looks_like_path(model: str) -> bool:
    return "/" in model or "\\" in model or model.endswith(".pt") or model.startswith(".")


def _is_ct2_dir(path: Path) -> bool:
    return path.is_dir() and (path / "model.bin").is_file()


class FasterWhisperTranscriber(Transcriber):
    backend = "faster-whisper"

    def __init__(self, model: str, device: str, language: str, workspace_root: Path | None = None,
                 beam_size: int = 5) -> None:
        self.language = _language_arg(language)
        self.device = resolve_device(device)
        self.beam_size = beam_size
        local = next((p for p in _candidate_paths(model, workspace_root, self.backend) if p.exists()), None)
        if local is not None:
            if local.is_file() and local.suffix == ".pt":
                raise UserError(f"{local}: this is an openai-whisper .pt file; "
                                "use --transcriber openai-whisper with it, "
                                f"or give faster-whisper a CTranslate2 folder ({_CT2_FILES})")
            if not _is_ct2_dir(local):
                raise UserError(f"{local}: not a CTranslate2 whisper folder (it needs {_CT2_FILES})")
            self.model_id = str(local.resolve())
            # a local folder never reaches for the hub: local_files_only, and its own tokenizer.json
            self._load(str(local), local_only=True, model_name=model)
        elif _looks_like_path(model):
            raise UserError(f"whisper model {model!r}: no such file or folder "
                            f"(looked in models/whisper/ and {Path(model)})")
        else:
            self.model_id = model
            self._load(model, local_only=False, model_name=model, workspace_root=workspace_root)

    def _load(self, ref: str, local_only: bool, model_name: str, workspace_root: Path | None = None) -> None:
        from faster_whisper import WhisperModel

        compute_type = "float16" if self.device == "cuda" else "int8"
        threads = int(os.environ.get("OMP_NUM_THREADS", "0") or 0)
        try:
            try:  # the Hugging Face cache first, without any network
                self.model = WhisperModel(ref, device=self.device, compute_type=compute_type, cpu_threads=threads,
                                          local_files_only=True)
            except Exception:
                if local_only or offline_mode():
                    raise
                _probe_hub()
                self.model = WhisperModel(ref, device=self.device, compute_type=compute_type, cpu_threads=threads)
        except Exception as exc:
            where = ((workspace_root / "models" / "whisper" / model_name) if workspace_root
                     else Path("models/whisper") / model_name)
            if local_only:
                raise UserError(f"{ref}: faster-whisper could not load this CTranslate2 folder ({exc}); "
                                f"it needs {_CT2_FILES}") from exc
            raise UserError(
                f"faster-whisper model {model_name!r} is not available offline and could not be downloaded "
                f"({type(exc).__name__}: {_first_line(exc)}). Put its CTranslate2 files ({_CT2_FILES}) in {where}/ "
                f"(e.g. from {_FW_URL.format(name=model_name)}), or pass --model PATH to such a folder, "
                f"or use --transcriber none with transcripts beside the audio") from exc

    def transcribe(self, audio16k: np.ndarray, progress: FileProgress | None = None) -> Transcript:
        duration = len(audio16k) / WHISPER_RATE
        segments, info = self.model.transcribe(
            np.ascontiguousarray(audio16k, dtype=np.float32), language=self.language, beam_size=self.beam_size,
            word_timestamps=True, condition_on_previous_text=False, vad_filter=False)
        out = []
        for seg in segments:
            words = [Word(float(w.start), float(w.end), w.word) for w in (seg.words or [])]
            out.append(Segment(float(seg.start), float(seg.end), seg.text, words))
            if progress and duration > 0:
                progress(min(1.0, float(seg.end) / duration))
        return Transcript(out, getattr(info, "language", None))


class OpenAIWhisperTranscriber(Transcriber):
    backend = "openai-whisper"

    def __init__(self, model: str, device: str, language: str, workspace_root: Path | None = None) -> None:
        import whisper

        self.language = _language_arg(language)
        self.device = resolve_device(device)
        local = next((p for p in _candidate_paths(model, workspace_root, self.backend) if p.is_file()), None)
        if local is None:
            folder = next((p for p in _candidate_paths(model, workspace_root, self.backend) if p.is_dir()), None)
            if folder is not None and model not in whisper.available_models():
                raise UserError(f"{folder}: a folder, but openai-whisper needs a .pt file "
                                f"(a CTranslate2 folder goes with --transcriber faster-whisper)")
        try:
            if local is not None:
                self.model_id = str(local.resolve())
                self.model = whisper.load_model(str(local), device=self.device)
            elif model in whisper.available_models():
                self.model_id = model
                cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "whisper"
                root = cache if (cache / f"{model}.pt").is_file() or workspace_root is None else \
                    workspace_root / "models" / "whisper"
                if not (root / f"{model}.pt").is_file() and offline_mode():
                    raise ConnectionError("HF_HUB_OFFLINE=1: downloads are off")
                path = root / f"{model}.pt" if (root / f"{model}.pt").is_file() and root == cache else \
                    _download_whisper(model, root, download_timeout())
                self.model = whisper.load_model(str(path), device=self.device)
            else:
                raise UserError(f"whisper model {model!r}: no such file (looked in models/whisper/{model}.pt and "
                                f"{Path(model)}) and not a model name ({', '.join(whisper.available_models())})")
        except UserError:
            raise
        except Exception as exc:
            where = (workspace_root / "models" / "whisper") if workspace_root else Path("models/whisper")
            if local is not None:
                raise UserError(f"{local}: not a loadable openai-whisper checkpoint ({type(exc).__name__}: {exc}); "
                                "it must be a torch file holding {'dims', 'model_state_dict'}") from exc
            raise UserError(
                f"openai-whisper model {model!r} is not available offline and could not be downloaded "
                f"({type(exc).__name__}: {_first_line(exc)}). "
                f"Put {model}.pt (the file openai-whisper downloads) in {where}/, "
                f"or pass --model PATH/TO/{model}.pt, or use --transcriber none with transcripts beside the audio"
            ) from exc

    def transcribe(self, audio16k: np.ndarray, progress: FileProgress | None = None) -> Transcript:
        import whisper

        result = whisper.transcribe(
            self.model, np.ascontiguousarray(audio16k, dtype=np.float32), language=self.language,
            word_timestamps=True, condition_on_previous_text=False, fp16=self.device == "cuda", verbose=None)
        out = []
        for seg in result.get("segments", []):
            words = [Word(float(w["start"]), float(w["end"]), w["word"]) for w in seg.get("words", [])]
            out.append(Segment(float(seg["start"]), float(seg["end"]), seg.get("text", ""), words))
        if progress:
            progress(1.0)
        return Transcript(out, result.get("language"))


def load_transcriber(backend: str, model: str, device: str = "auto", language: str = "auto",
                     workspace_root: Path | None = None) -> Transcriber:
    """Load a whisper model for ``backend``; every failure is a UserError saying what to do."""
    if backend == "faster-whisper":
        return FasterWhisperTranscriber(model, device, language, workspace_root)
    if backend == "openai-whisper":
        return OpenAIWhisperTranscriber(model, device, language, workspace_root)
    raise UserError(f"transcriber {backend!r} is unknown; use faster-whisper or openai-whisper")


def describe_model(backend: str, model: str, workspace_root: Path | None = None) -> str:
    """Cache-key identity of a model without loading it: a resolved local path, else the name."""
    for p in _candidate_paths(model, workspace_root, backend):
        if (backend == "faster-whisper" and _is_ct2_dir(p)) or (backend == "openai-whisper" and p.is_file()):
            return str(p.resolve())
    return model




class TranscriptCache:
    """One JSON file per (source content, backend, model, language)."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def key(self, digest: str, backend: str, model_id: str, language: str) -> str:
        raw = f"v{CACHE_VERSION}|{digest}|{backend}|{model_id}|{(language or 'auto').lower()}"
        return hashlib.sha256(raw.encode("utf-8")).hexdigest()

    def get(self, key: str) -> Transcript | None:
        path = self.folder / f"{key}.json"
        if not path.is_file():
            return None
        try:
            return Transcript.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError, TypeError):
            return None  # a damaged entry is simply transcribed again

    def put(self, key: str, transcript: Transcript, source: str) -> None:
        data = transcript.to_dict()
        data["source"] = source
        atomic_write_json(self.folder / f"{key}.json", data)


def local_models(workspace_root: Path) -> dict[str, list[str]]:
    """Models already in ``models/whisper/``, by backend, for the UI's model picker."""
    folder = Path(workspace_root) / "models" / "whisper"
    found: dict[str, list[str]] = {"faster-whisper": [], "openai-whisper": []}
    if folder.is_dir():
        for p in sorted(folder.iterdir()):
            if _is_ct2_dir(p):
                found["faster-whisper"].append(p.name)
            elif p.is_file() and p.suffix == ".pt":
                found["openai-whisper"].append(p.stem)
    return found
