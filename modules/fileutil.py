"""Crash-safe file writes: write to a temp file beside the target, then rename."""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Iterator

TEMP_PREFIX = ".tmp-"
# test-only fault injection for the crash tests, e.g. "slow:states/:0.5" (sleep mid-write of matching
# paths) or "enospc:states/" (the write fails as on a full disk); never set outside the tests
FAULT_ENV = "VOICETUNE_TEST_WRITE_FAULT"


class DiskFullError(OSError):
    """A write failed for lack of space; the message says where, how much is free and needed."""


def _fault(path: Path, fh: IO) -> None:
    spec = os.environ.get(FAULT_ENV, "")
    if not spec:
        return
    kind, _, rest = spec.partition(":")
    pattern, _, arg = rest.partition(":")
    if pattern not in path.as_posix():
        return
    if kind == "slow":
        fh.flush()
        import time

        time.sleep(float(arg or 0.5))
    elif kind == "enospc":
        import errno

        raise OSError(errno.ENOSPC, "No space left on device", str(path))


def _is_disk_full(exc: BaseException) -> bool:
    import errno

    while exc is not None:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        text = str(exc)
        if "No space left on device" in text or "unexpected pos" in text:  # torch's zip writer on ENOSPC
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def disk_full_error(path: Path, needed: int | None, exc: BaseException) -> DiskFullError:
    """'no space left on PATH: free N GB (a state needs about M GB)': M from the file's older siblings."""
    import errno
    import shutil

    try:
        free = shutil.disk_usage(path.parent).free
    except OSError:
        free = 0
    import re

    stem = re.sub(r"\d+(\.pt)?$", "", path.name)  # step_00000008.pt -> step_, g_00000008 -> g_
    siblings = [p.stat().st_size for p in path.parent.glob(f"{stem}*")
                if p.is_file() and p != path and not p.name.startswith(TEMP_PREFIX)] if stem != path.name else []
    needed = max([needed or 0, *siblings]) or None
    what = "a state" if path.parent.name == "states" else f"{path.name}"
    need = f" ({what} needs about {needed / 1e9:.2f} GB)" if needed else ""
    return DiskFullError(errno.ENOSPC, f"no space left on {path.parent}: free {free / 1e9:.2f} GB{need}; free "
                         "space there or move the workspace, then resume", str(path))


@contextmanager
def atomic_replace(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open a temp file beside ``path`` for writing; on success it is synced and renamed over
    ``path``, on any error removed. Readers see the old or the new file, never half of one.
    A full disk raises ``DiskFullError`` saying where and how much is free."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=path.parent)
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as fh:
            yield fh
            _fault(path, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        written = Path(tmp).stat().st_size if Path(tmp).exists() else None
        Path(tmp).unlink(missing_ok=True)
        if not isinstance(exc, DiskFullError) and _is_disk_full(exc):
            raise disk_full_error(path, written, exc) from exc
        raise


def remove_temp_files(folder: str | os.PathLike) -> list[Path]:
    """Delete the temp files of writes that were killed midway under ``folder`` (recursively);
    only call it while owning the folder (the trainer holds the run's lock)."""
    removed = []
    for p in Path(folder).rglob(f"{TEMP_PREFIX}*"):
        if p.is_file():
            try:
                p.unlink()
                removed.append(p)
            except OSError:
                pass
    return removed


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Replace ``path`` with ``text`` atomically."""
    with atomic_replace(path, "w") as fh:
        fh.write(text)
    return Path(path)


def atomic_write_json(path: str | os.PathLike, data: Any) -> Path:
    return atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` through a temp file and rename, so a kill never leaves a torn file.
    Saved through the file object: torch.save refuses path names whose basename starts with "."."""
    import torch

    with atomic_replace(path, "wb") as fh:
        torch.save(obj, fh)
    return Path(path)


def file_digest(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes, read in 1 MiB chunks (cache keys, change detection)."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_json_dict(path: str | os.PathLike) -> dict | None:
    """A JSON object file as a dict; None when missing, unreadable, torn or not an object
    (status, sidecar and lock files are read while another process may be rewriting them)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
