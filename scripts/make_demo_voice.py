"""Make the demo voice: short English sentences spoken by espeak-ng, as FLAC plus LJSpeech metadata.csv.

Run ``python scripts/make_demo_voice.py [--out voices/demo]``. Needs the ``espeak-ng`` program
(Debian package ``espeak-ng``). The output is deterministic for one espeak-ng version, so the
committed files can be regenerated; the sentences avoid digits so that their text is unambiguous.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parent.parent

SAMPLE_RATE = 22050
VOICE = "en-us"

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Please call Stella and ask her to bring these things.",
    "A warm breeze drifted across the quiet harbor.",
    "We will meet at the library after lunch.",
    "The train to the city leaves in the morning.",
    "She painted the old fence a bright shade of blue.",
    "Turn left at the bakery and keep walking.",
    "My grandmother grows tomatoes in her garden.",
    "The children laughed as the kite rose higher.",
    "Could you tell me where the station is?",
    "Rain is expected for most of the weekend.",
    "He forgot his umbrella on the bus again.",
    "The museum opens early on Sunday.",
    "Fresh bread smells wonderful in the kitchen.",
    "Our team finished the project ahead of schedule.",
    "The river runs slowly through the green valley.",
    "I would like a cup of tea with lemon.",
    "The old clock in the hall stopped at noon.",
    "Bright stars filled the sky above the desert.",
    "Remember to water the plants before you leave.",
    "The doctor said the results look very good.",
    "A small boat waited at the end of the pier.",
    "They walked along the beach until sunset.",
    "Music drifted from an open window upstairs.",
    "The cat slept all afternoon in the sun.",
    "Write your name at the top of the page.",
    "Snow covered the mountains in early winter.",
    "We found a quiet table near the window.",
    "The market is busy on Saturday mornings.",
    "Thank you for helping me carry the boxes.",
]

# a little variety in speaking rate and pitch; one speaker (en-us) throughout
SPEEDS = (150, 160, 170, 180, 165)
PITCHES = (45, 50, 55, 48, 52, 58)


def speak(text: str, speed: int, pitch: int, workdir: Path) -> np.ndarray:
    """Synthesize ``text`` with espeak-ng and return float32 samples at 22,050 Hz."""
    out = workdir / "s.wav"
    subprocess.run(["espeak-ng", "-v", VOICE, "-s", str(speed), "-p", str(pitch), "-w", str(out), text],
                   check=True, capture_output=True)
    data, rate = sf.read(str(out), dtype="float32")
    if rate != SAMPLE_RATE:
        from modules.audio.io import resample

        data = resample(data, rate, SAMPLE_RATE)
    return data


def make_demo_voice(out_dir: Path, count: int | None = None) -> list[tuple[str, str]]:
    """Write ``NNN.flac`` and ``metadata.csv`` into ``out_dir``; returns [(id, text)]."""
    if shutil.which("espeak-ng") is None:
        raise SystemExit("espeak-ng is not installed: apt-get install espeak-ng")
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, text in enumerate(SENTENCES[:count] if count else SENTENCES):
            clip_id = f"{i + 1:03d}"
            samples = speak(text, SPEEDS[i % len(SPEEDS)], PITCHES[i % len(PITCHES)], Path(tmp))
            sf.write(str(out_dir / f"{clip_id}.flac"), samples, SAMPLE_RATE, subtype="PCM_16", format="FLAC")
            rows.append((clip_id, text))
    (out_dir / "metadata.csv").write_text("".join(f"{i}|{t}|{t}\n" for i, t in rows), encoding="utf-8")
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "voices" / "demo",
                        help="output folder (default voices/demo)")
    args = parser.parse_args()
    rows = make_demo_voice(args.out)
    total = sum(sf.info(str(args.out / f"{i}.flac")).duration for i, _ in rows)
    size = sum(p.stat().st_size for p in args.out.iterdir())
    print(f"wrote {len(rows)} utterances ({total:.1f} s, {size / 1e6:.2f} MB) to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
