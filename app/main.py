"""Build and launch the Voicetune Blocks app: one tab per step (prepare, configure, train).

Gradio is imported only after the arguments are parsed, so ``--help`` answers at once; model
code (torch, whisper) is imported inside the callbacks that need it, never here.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys
import traceback
from typing import TYPE_CHECKING

from modules.workspace import WORKSPACE_ENV, Workspace

if TYPE_CHECKING:
    import gradio as gr

DEFAULT_HOST = "127.0.0.1"
LISTEN_HOST = "0.0.0.0"
DEFAULT_PORT = 7860
TITLE = "Voicetune"

# (tab label, module); a module that is not there yet is left out, so each tab can land on its own.
TABS: list[tuple[str, str]] = [
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
    parser.add_argument(
        "--workspace",
        metavar="DIR",
        default=None,
        help=f"workspace root holding voices/, training/, models/ (default: ${WORKSPACE_ENV} or the repository)",
    )
    return parser.parse_args(argv)


def _tab_module(module_name: str):
    """Import a tab module if its file exists; None when that tab has not been written yet."""
    if importlib.util.find_spec(module_name) is None:
        return None
    return importlib.import_module(module_name)


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
                try:
                    module = _tab_module(module_name)
                except Exception as exc:  # a broken tab must not take the other tabs down
                    traceback.print_exc()
                    module, error = None, f"{type(exc).__name__}: {exc}"
                else:
                    error = None
                if module is None and error is None:
                    continue
                tab_id = "tab-" + module_name.rsplit(".", 1)[-1].replace("_", "-")
                with gr.Tab(label, id=tab_id, elem_id=tab_id):
                    if module is not None:
                        try:
                            module.build(workspace, demo)
                        except Exception as exc:
                            traceback.print_exc()
                            error = f"{type(exc).__name__}: {exc}"
                    if error is not None:
                        gr.Markdown(f"**This tab failed to load** ({module_name}): {error}")
    return demo


def page_css() -> str:
    """The app's CSS plus each tab module's ``CSS`` string (Gradio 6 takes CSS at launch)."""
    parts = [CSS]
    for _, module_name in TABS:
        try:
            module = _tab_module(module_name)
        except Exception:
            continue  # build_app already reported it
        if module is not None and isinstance(getattr(module, "CSS", None), str):
            parts.append(module.CSS)
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    """Parse options, open the workspace, serve the UI until interrupted."""
    args = parse_args(argv)
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls home from a local tool

    from modules.errors import UserError
    from modules.workspace import WorkspaceError

    try:
        workspace = Workspace.open(args.workspace)
    except (OSError, UserError, WorkspaceError) as exc:
        print(f"error: cannot open workspace: {exc}", file=sys.stderr)
        return 2

    host = LISTEN_HOST if args.listen else DEFAULT_HOST
    try:
        demo = build_app(workspace)
    except KeyboardInterrupt:
        return 130
    demo.queue(default_concurrency_limit=4)
    try:
        try:
            demo.launch(
                server_name=host,
                server_port=args.port,
                allowed_paths=[str(workspace.root)],
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
        print("Press Ctrl+C to stop.", flush=True)
        demo.block_thread()
    except KeyboardInterrupt:  # Ctrl+C at any moment, even while starting: stop without a traceback
        pass
    finally:
        demo.close()
    return 0
