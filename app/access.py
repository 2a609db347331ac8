"""Who may use the UI and what it may serve.

On 127.0.0.1 nobody else can connect, so there is no login unless one is asked for. With
``--listen`` a login is required: ``--auth USER:PASSWORD``, ``--auth-file FILE`` (one
``user:password`` per line) or ``VOICETUNE_AUTH``; with none of them a password is generated for
this start and printed once; ``--no-auth`` turns the login off explicitly. Gradio's own
authentication enforces it (the page, the API and the file route answer 401 without a session).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from modules.errors import UserError
from modules.workspace import REPO_ROOT, Workspace

AUTH_ENV = "VOICETUNE_AUTH"
GENERATED_USER = "voicetune"


def _pair(text: str, where: str) -> tuple[str, str]:
    user, sep, password = text.strip().partition(":")
    if not sep or not user or not password:
        raise UserError(f"{where}: expected USER:PASSWORD, got {text.strip()!r}")
    return user, password


def logins(auth: str | None, auth_file: str | None, listen: bool,
           no_auth: bool) -> tuple[list[tuple[str, str]], tuple[str, str] | None]:
    """``(logins, generated login or None)`` for these options."""
    pairs: list[tuple[str, str]] = []
    if auth:
        pairs.append(_pair(auth, "--auth"))
    if auth_file:
        path = Path(auth_file).expanduser()
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise UserError(f"--auth-file {path}: cannot read it ({exc.strerror})") from None
        pairs += [_pair(line, f"--auth-file {path} line {i}") for i, line in enumerate(lines, 1)
                  if line.strip() and not line.lstrip().startswith("#")]
        if not pairs:
            raise UserError(f"--auth-file {path}: no user:password line in it")
    if not pairs and os.environ.get(AUTH_ENV):
        pairs.append(_pair(os.environ[AUTH_ENV], AUTH_ENV))
    if pairs and no_auth:
        raise UserError("--no-auth contradicts the login given; drop one of them")
    if pairs or not listen or no_auth:
        return pairs, None
    generated = (GENERATED_USER, secrets.token_urlsafe(12))
    return [generated], generated


def blocked_paths(workspace: Workspace) -> list[str]:
    """Folders the file route refuses even if something pointed at them: model weights and the venv."""
    return [str(workspace.models), str(REPO_ROOT / ".venv"), str(workspace.root / ".venv")]


def playable(path: str | os.PathLike) -> str:
    """A file the app shows in a player, where Gradio will take it into its cache: files in the
    working directory or the temp dir go as they are; others (a workspace elsewhere) are linked
    (or copied) into a private temp folder first, since nothing is served by path."""
    import hashlib
    import shutil
    import tempfile

    p = Path(path).resolve()
    for root in (Path.cwd().resolve(), Path(tempfile.gettempdir()).resolve()):
        if root in p.parents:
            return str(p)
    st = p.stat()
    digest = hashlib.sha256(f"{p}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:16]
    target = Path(tempfile.gettempdir()) / f"voicetune-play-{os.getuid()}" / digest / p.name
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(p, target)
        except OSError:
            shutil.copyfile(p, target)
    return str(target)
