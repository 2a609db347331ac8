"""Small helpers every tab uses: user-facing messages and workspace-safe paths typed into the UI."""

from __future__ import annotations

import re
import sys
import traceback
from pathlib import Path

from modules.errors import UserError
from modules.workspace import Workspace

# errors whose message is written for the user: shown as they are, never with a traceback
USER_ERRORS: tuple[type[BaseException], ...] = (UserError,)  # WorkspaceError is a UserError

_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>#|~])")


def md_escape(text: object) -> str:
    """Text shown inside Markdown as typed (file names with '_' or '*' stay literal)."""
    return _MD_SPECIAL.sub(r"\\\1", str(text))


def ok(message: str) -> str:
    """A success line for a status Markdown (message is Markdown already)."""
    return f"✓ {message}"


def info(message: str) -> str:
    return message


def error(message: str) -> str:
    """An error line for a status Markdown; plain text is escaped so names show verbatim."""
    return f"**Error:** {md_escape(message)}"


def describe_exception(exc: BaseException, context: str) -> str:
    """Status text for an exception: a user error's own message, else a short one-line summary.

    Unexpected errors print their traceback to the console (for a bug report) but the page
    only shows the one line, never a traceback wall.
    """
    if isinstance(exc, USER_ERRORS):
        return error(str(exc))
    print(f"{context} failed:", file=sys.stderr)
    traceback.print_exception(exc, file=sys.stderr)
    return error(f"{context} failed: {type(exc).__name__}: {exc} (the console shows the details)")


def looks_like_path(value: str) -> bool:
    """True for text that names a file or folder rather than a bare model name like ``small``."""
    value = value.strip()
    return "/" in value or "\\" in value or value.startswith((".", "~"))


def relative_to_root(workspace: Workspace, path: Path) -> str:
    """``path`` as shown to the user (``Workspace.relative``)."""
    return workspace.relative(path)
