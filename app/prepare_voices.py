"""Describe a voice folder for the Prepare tab, so the user knows what preparation will find there."""

from __future__ import annotations

from app.common import USER_ERRORS, error, md_escape
from modules.workspace import Workspace


def voice_summary(workspace: Workspace, voice: str | None) -> str:
    """What a voice folder holds, so the user knows whether 'none' (given transcripts) will work."""
    if not voice:
        return "Pick a voice, or type a new name and press **Create voice**."
    from modules.prepare.importers import scan_voice

    try:
        voice_dir = workspace.voice_dir(voice)
    except USER_ERRORS as exc:
        return error(str(exc))
    if not voice_dir.is_dir():
        return error(f"voices/{voice} does not exist; create it or pick another voice")
    scan = scan_voice(voice_dir)
    text = (f"`voices/{md_escape(voice)}`: {len(scan.audio)} audio file(s), "
            f"{len(scan.transcripts)} with a transcript that came with them")
    if scan.skipped:
        text += f", {len(scan.skipped)} other file(s) that will be skipped"
    if not scan.audio:
        text += ". Upload recordings (wav, flac, mp3, ogg) below."
    return text
