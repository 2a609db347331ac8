"""The user's workspace: ``voices/``, ``training/`` and ``models/`` under one root.

The root defaults to the repository folder; ``--workspace DIR`` or the
``VOICETUNE_WORKSPACE`` environment variable moves it. Every path a user types
is resolved here so that nothing can escape the workspace.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from modules.errors import UserError

REPO_ROOT = Path(__file__).resolve().parent.parent
WORKSPACE_ENV = "VOICETUNE_WORKSPACE"
_NAME_RE = re.compile(r"^[\w][\w.\- ]*$", re.UNICODE)


class WorkspaceError(UserError, ValueError):
    """A name or path the user gave would leave the workspace or is malformed (a UserError: shown as is)."""


def default_root() -> Path:
    """The workspace root: the environment variable if set, else the repo root."""
    env = os.environ.get(WORKSPACE_ENV)
    return Path(env).expanduser().resolve() if env else REPO_ROOT


@dataclass(frozen=True)
class Workspace:
    """Paths of one workspace. Create with ``Workspace.open(root_or_None)``."""

    root: Path

    @classmethod
    def open(cls, root: str | os.PathLike | None = None) -> "Workspace":
        """Open (and create the three top folders of) a workspace."""
        path = Path(root).expanduser().resolve() if root else default_root()
        ws = cls(path)
        for sub in (ws.voices, ws.training, ws.models):
            sub.mkdir(parents=True, exist_ok=True)
        return ws

    @property
    def voices(self) -> Path:
        return self.root / "voices"

    @property
    def training(self) -> Path:
        return self.root / "training"

    @property
    def models(self) -> Path:
        return self.root / "models"

    def voice_dir(self, name: str) -> Path:
        """``voices/NAME``; refuses names that would leave ``voices/``."""
        return self.voices / check_name(name, "voice")

    def dataset_dir(self, name: str) -> Path:
        """``training/NAME``; refuses names that would leave ``training/``."""
        return self.training / check_name(name, "dataset")

    def list_voices(self) -> list[str]:
        return sorted(p.name for p in self.voices.iterdir() if p.is_dir() and not p.name.startswith("."))

    def list_datasets(self) -> list[str]:
        """Folders under ``training/`` that hold a prepared dataset (``train.txt``)."""
        return sorted(p.name for p in self.training.iterdir()
                      if not p.name.startswith(".") and (p / "train.txt").is_file())

    def inside(self, path: str | os.PathLike) -> Path:
        """Resolve a user-typed path (absolute or relative to the root) and refuse it if outside."""
        p = Path(path).expanduser()
        p = (p if p.is_absolute() else self.root / p).resolve()
        if p != self.root and self.root not in p.parents:
            raise WorkspaceError(f"{path}: outside the workspace {self.root}; use a path under it")
        return p

    def relative(self, path: str | os.PathLike) -> str:
        """``path`` as the UI shows it: relative to the root (POSIX separators) when inside, else as given."""
        try:
            return Path(path).resolve().relative_to(self.root).as_posix()
        except ValueError:
            return str(path)


def check_name(name: str, what: str = "name") -> str:
    """Return ``name`` if it is a single safe folder name, else raise WorkspaceError."""
    name = (name or "").strip()
    if not name or name in (".", "..") or "/" in name or "\\" in name or not _NAME_RE.match(name):
        raise WorkspaceError(
            f"{what} name {name!r} is not allowed: use one folder name of letters, digits, '_', '-', '.' or spaces "
            "(no '/', '..' or absolute paths)"
        )
    return name
