"""Build and launch the Voicetune Blocks app: one tab per step (prepare, configure, train).

Gradio is imported only after the arguments are parsed, so ``--help`` answers at once; model
code (torch, whisper) is imported inside the callbacks that need it, never here.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import TYPE_CHECKING

from modules.workspace import WORKSPACE_ENV, Workspace

if TYPE_CHECKING:
    import gradio as gr

DEFAULT_HOST = "127.0.0.1"
LISTEN_HOST = "0.0.0.0"
DEFAULT_PORT = 7860
TITLE = "Voicetune"

# (tab label, module): every tab module exposes build(workspace, demo) and may set CSS
TABS: list[tuple[str, str]] = [
    ("Quick start", "app.quickstart_tab"),
    ("Prepare Dataset", "app.prepare_tab"),
    ("Generate Configuration", "app.configure_tab"),
    ("Run Training", "app.train_tab"),
]

CSS = """
#voicetune-title h1 { margin-bottom: 0; }
.vt-status-error { color: var(--error-text-color, #b91c1c); font-weight: 600; }
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options of ``python -m app``."""
    parser = argparse.ArgumentParser(
        prog="python -m app",
        description="Voicetune web UI: prepare datasets, generate training configs, run and watch training.",
    )
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port to serve on (default {DEFAULT_PORT})")
    parser.add_argument(
        "--listen",
        action="store_true",
        help=f"bind {LISTEN_HOST} so other machines can connect (default: {DEFAULT_HOST}, this machine only)",
    )
    parser.add_argument("--auth", metavar="USER:PASSWORD", default=None,
                        help="require this login (default with --listen: $VOICETUNE_AUTH, else a generated password)")
    parser.add_argument("--auth-file", metavar="FILE", default=None,
                        help="logins, one user:password per line (lines starting with # are comments)")
    parser.add_argument("--no-auth", action="store_true",
                        help="with --listen: serve without a login (anyone who can reach the port controls the app)")
    parser.add_argument(
        "--workspace",
        metavar="DIR",
        default=None,
        help=f"workspace root holding voices/, training/, models/ (default: ${WORKSPACE_ENV} or the repository)",
    )
    return parser.parse_args(argv)


def build_app(workspace: Workspace) -> "gr.Blocks":
    """The whole UI for one workspace. Every tab exposes ``build(workspace, demo)`` and may set ``CSS``."""
    import gradio as gr

    with gr.Blocks(title=TITLE, analytics_enabled=False) as demo:
        gr.Markdown(
            f"# {TITLE}\nFrom recordings to a fine-tuned voice. Workspace: `{workspace.root}`",
            elem_id="voicetune-title",
        )
        with gr.Tabs(elem_id="voicetune-tabs"):
            for label, module_name in TABS:
                module = importlib.import_module(module_name)  # a broken tab stops the app with its traceback
                tab_id = "tab-" + module_name.rsplit(".", 1)[-1].replace("_", "-")
                with gr.Tab(label, id=tab_id, elem_id=tab_id):
                    module.build(workspace, demo)
    return demo


def page_css() -> str:
    """The app's CSS plus each tab module's ``CSS`` string (Gradio 6 takes CSS at launch)."""
    parts = [CSS]
    for _, module_name in TABS:
        module = importlib.import_module(module_name)
        if isinstance(getattr(module, "CSS", None), str):
            parts.append(module.CSS)
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    """Parse options, open the workspace, serve the UI until interrupted."""
    args = parse_args(argv)
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls home from a local tool

    from modules.errors import UserError

    try:
        workspace = Workspace.open(args.workspace)
    except (OSError, UserError) as exc:  # WorkspaceError is a UserError
        print(f"error: cannot open workspace: {exc}", file=sys.stderr)
        return 2

    host = LISTEN_HOST if args.listen else DEFAULT_HOST
    from app.access import blocked_paths, logins

    try:
        auth, generated = logins(args.auth, args.auth_file, args.listen, args.no_auth)
    except (OSError, UserError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        demo = build_app(workspace)
    except KeyboardInterrupt:
        return 130
    demo.queue(default_concurrency_limit=4)
    try:
        try:
            _launch(
                demo,
                server_name=host,
                server_port=args.port,
                # nothing is served by path: only the files the app itself hands out (copied into
                # Gradio's cache) and uploads; the model files and the venv are blocked outright
                allowed_paths=[],
                blocked_paths=blocked_paths(workspace),
                auth=auth or None,
                auth_message="Voicetune: log in (the login was set with --auth, --auth-file or VOICETUNE_AUTH)",
                prevent_thread_lock=True,
                quiet=True,
                show_error=True,
                css=page_css(),
            )
        except OSError as exc:
            print(f"error: cannot serve on {host}:{args.port} ({exc}); pass another --port", file=sys.stderr)
            return 2
        port = demo.server_port or args.port
        print(f"Voicetune is running at http://127.0.0.1:{port}/  (workspace: {workspace.root})", flush=True)
        if args.listen:
            print(f"Listening on all interfaces ({LISTEN_HOST}:{port}); other machines use this machine's address.",
                  flush=True)
        if generated:
            print(f"Login: user {generated[0]}, password {generated[1]} (generated for this start; set your own "
                  "with --auth USER:PASSWORD)", flush=True)
        elif args.listen and args.no_auth:
            print("warning: --no-auth: anyone who can reach this port can start, stop and delete runs", flush=True)
        print("Press Ctrl+C to stop.", flush=True)
        demo.block_thread()
    except KeyboardInterrupt:  # Ctrl+C at any moment, even while starting: stop without a traceback
        pass
    finally:
        demo.close()
    return 0


def _launch(demo, attempts: int = 3, **kwargs) -> None:
    """``demo.launch`` again when Gradio's own check that it answers on localhost timed out (a 3 s
    request it makes once the server is up; on a busy 2-core machine the first answer can be slower)."""
    for attempt in range(attempts):
        try:
            demo.launch(**kwargs)
            return
        except ValueError as exc:
            if "localhost is not accessible" not in str(exc) or attempt == attempts - 1:
                raise
            print("the UI did not answer its own start-up check in time; starting it again", file=sys.stderr)
