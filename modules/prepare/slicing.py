"""Turn whisper segments into clip spans: padded, never cutting a word, between min and max length.

Times are seconds in the source file. Segments longer than the maximum are split between
words at the longest pause (silero-vad's silence where available, else the word gap);
segments shorter than the minimum are merged with a close neighbour; every clip boundary is
moved out of loud audio (so a word whisper timed too short is not clipped) and then padded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from modules.prepare.transcribe import Segment, Word

FRAME_SECONDS = 0.01
MAX_MERGE_GAP = 1.0  # do not merge short clips across a longer silence
MAX_WORD_EXTENSION = 0.5  # how far a boundary may be pushed out of loud audio
# a frame counts as sound when it is 8 dB over the noise floor, clamped to 25..60 dB below the loud level
# (a soft onset such as "th" or a "g" closure sits far below the vowels but above a quiet room)
ABOVE_FLOOR_DB = 8.0
BELOW_REFERENCE_DB = (25.0, 60.0)
FLOOR_DBFS = -75.0


@dataclass
class ClipSpan:
    """One clip to cut: [start, end) in source seconds, its text, and the words' content bounds."""

    start: float
    end: float
    text: str
    content_start: float
    content_end: float


class Loudness:
    """Frame levels of one recording, to find where sound starts and stops."""

    def __init__(self, samples: np.ndarray, rate: int) -> None:
        hop = max(1, int(round(rate * FRAME_SECONDS)))
        self.frame = hop / float(rate)  # exact frame length: 220 samples at 22,050 Hz is not 10 ms
        n = len(samples) // hop
        frames = np.asarray(samples[: n * hop], dtype=np.float64).reshape(n, hop) if n else np.zeros((0, hop))
        rms = np.sqrt(np.mean(frames ** 2, axis=1)) if n else np.zeros(0)
        self.db = 20 * np.log10(rms + 1e-10)
        ref = float(np.percentile(self.db, 95)) if n else FLOOR_DBFS
        floor = float(np.percentile(self.db, 5)) if n else FLOOR_DBFS
        threshold = float(np.clip(floor + ABOVE_FLOOR_DB, ref - BELOW_REFERENCE_DB[1], ref - BELOW_REFERENCE_DB[0]))
        self.threshold = max(threshold, FLOOR_DBFS)
        self.loud = self.db > self.threshold
        self.duration = len(samples) / float(rate)

    def silent_stretches(self, min_seconds: float, dbfs: float = -45.0) -> list[tuple[float, float]]:
        """Stretches of at least ``min_seconds`` below ``dbfs`` (absolute: near silence, whatever the floor)."""
        quiet = self.db < dbfs
        out, start = [], None
        for i, q in enumerate(np.append(quiet, False)):
            if q and start is None:
                start = i
            elif not q and start is not None:
                if (i - start) * self.frame >= min_seconds:
                    out.append((start * self.frame, i * self.frame))
                start = None
        return out

    def _frame(self, t: float) -> int:
        return int(np.clip(t / self.frame, 0, max(len(self.loud) - 1, 0)))

    def is_loud(self, t: float) -> bool:
        return bool(len(self.loud)) and bool(self.loud[self._frame(t)])

    def loud_bounds(self, start: float, end: float) -> tuple[float, float] | None:
        """First and last loud instant within [start, end], or None when it is all quiet."""
        a, b = self._frame(start), self._frame(end)
        idx = np.flatnonzero(self.loud[a: b + 1])
        if not len(idx):
            return None
        return (a + idx[0]) * self.frame, min((a + idx[-1] + 1) * self.frame, self.duration)

    def quietest_cut(self, start: float, end: float) -> tuple[float, float]:
        """(length, centre) of the longest quiet run within [start, end]; the quietest frame if none."""
        a, b = self._frame(start), self._frame(end)
        if b <= a or not len(self.loud):
            return 0.0, (start + end) / 2
        quiet = ~self.loud[a: b + 1]
        best_len, best_at, run = 0, -1, 0
        for i, q in enumerate(quiet):
            run = run + 1 if q else 0
            if run > best_len:
                best_len, best_at = run, i
        if best_len == 0:
            i = int(np.argmin(self.db[a: b + 1]))
            return 0.0, (a + i + 0.5) * self.frame
        centre = a + best_at - (best_len - 1) / 2
        return best_len * self.frame, (centre + 0.5) * self.frame

    def extend_end(self, t: float, limit: float) -> float:
        """Move ``t`` forward to the end of sound that starts within MAX_WORD_EXTENSION after it (whisper often
        ends a word early), then on while the sound lasts, never past ``limit``."""
        near = self.loud_bounds(t, min(limit, t + MAX_WORD_EXTENSION))
        if near is not None:
            t = max(t, near[1])
        stop = min(limit, t + MAX_WORD_EXTENSION)
        while t < stop and self.is_loud(t):
            t += self.frame
        return min(t, limit)

    def extend_start(self, t: float, limit: float) -> float:
        """Mirror of :meth:`extend_end`: whisper often starts a word after a pause too late."""
        near = self.loud_bounds(max(limit, t - MAX_WORD_EXTENSION), t)
        if near is not None:
            t = min(t, near[0])
        stop = max(limit, t - MAX_WORD_EXTENSION)
        while t > stop and self.is_loud(t - self.frame):
            t -= self.frame
        return max(t, limit)


def speech_regions(audio16k: np.ndarray) -> list[tuple[float, float]]:
    """silero-vad speech intervals (seconds) of 16 kHz audio decoded by us (no torchcodec)."""
    import torch
    from silero_vad import get_speech_timestamps

    model = _vad_model()
    stamps = get_speech_timestamps(torch.from_numpy(np.ascontiguousarray(audio16k, dtype=np.float32)), model,
                                   sampling_rate=16000, return_seconds=True, min_silence_duration_ms=60,
                                   speech_pad_ms=10)
    return [(float(s["start"]), float(s["end"])) for s in stamps]


_VAD = None


def _vad_model():
    global _VAD
    if _VAD is None:
        from silero_vad import load_silero_vad

        _VAD = load_silero_vad()
    return _VAD


def _words_of(seg: Segment, duration: float) -> list[Word]:
    """The segment's words, cleaned; a segment without word times becomes one pseudo-word."""
    words = [w for w in seg.words if w.text.strip()]
    if not words:
        if not seg.text.strip():
            return []
        words = [Word(seg.start, seg.end, seg.text)]
    out = []
    for w in words:
        start = float(np.clip(w.start, 0.0, duration))
        end = float(np.clip(max(w.end, start + 0.02), 0.0, duration))
        out.append(Word(start, end, w.text))
    return out


def _text(words: list[Word]) -> str:
    joined = "".join(w.text if w.text[:1].isspace() else " " + w.text for w in words)
    return " ".join(joined.split())


def _silences_between(speech: list[tuple[float, float]], lo: float, hi: float) -> list[tuple[float, float]]:
    """Non-speech intervals inside [lo, hi] given sorted speech intervals."""
    out, t = [], lo
    for s, e in speech:
        if e <= t:
            continue
        if s >= hi:
            break
        if s > t:
            out.append((t, min(s, hi)))
        t = max(t, e)
    if t < hi:
        out.append((t, hi))
    return out


def _pause_between(a: Word, b: Word, speech: list[tuple[float, float]] | None) -> float:
    """Length of the pause between two words: silero-vad's longest silence there, else whisper's gap."""
    best = max(0.0, b.start - a.end)
    if speech is not None:
        lo, hi = (a.start + a.end) / 2, (b.start + b.end) / 2
        for s, e in _silences_between(speech, lo, hi):
            best = max(best, e - s)
    return best


def _split(words: list[Word], limit: float, min_len: float,
           speech: Callable[[], list[tuple[float, float]] | None]) -> list[list[Word]]:
    """Split a run of words between words until each piece's content fits ``limit``."""
    pieces: list[list[Word]] = [words]
    done: list[list[Word]] = []
    while pieces:
        ws = pieces.pop()
        if ws[-1].end - ws[0].start <= limit or len(ws) < 2:
            done.append(ws)
            continue
        regions = speech()
        cands = []
        for i in range(len(ws) - 1):
            score = _pause_between(ws[i], ws[i + 1], regions)
            left, right = ws[i].end - ws[0].start, ws[-1].end - ws[i + 1].start
            balanced = left >= min_len and right >= min_len
            # the longest pause (sentence ends, breaths) among cuts that leave both sides long enough;
            # a side still too long is split again, so no cut is forced into the middle of a phrase
            cands.append((balanced, round(score, 3), -abs(left - right), i))
        i = max(cands)[3]
        pieces.append(ws[i + 1:])
        pieces.append(ws[: i + 1])
    done.sort(key=lambda p: p[0].start)
    return done


def _merge_short(pieces: list[list[Word]], min_len: float, limit: float) -> list[list[Word]]:
    """Merge pieces shorter than ``min_len`` into the nearer neighbour when the result fits ``limit``."""
    pieces = list(pieces)
    changed = True
    while changed:
        changed = False
        for k, ws in enumerate(pieces):
            if ws[-1].end - ws[0].start >= min_len:
                continue
            options = []
            if k > 0:
                prev = pieces[k - 1]
                gap = ws[0].start - prev[-1].end
                if gap <= MAX_MERGE_GAP and ws[-1].end - prev[0].start <= limit:
                    options.append((gap, k - 1))
            if k + 1 < len(pieces):
                nxt = pieces[k + 1]
                gap = nxt[0].start - ws[-1].end
                if gap <= MAX_MERGE_GAP and nxt[-1].end - ws[0].start <= limit:
                    options.append((gap, k + 1))
            if not options:
                continue
            _, j = min(options)
            a, b = sorted((k, j))
            pieces[a: b + 1] = [pieces[a] + pieces[b]]
            changed = True
            break
    return pieces


def plan_clips(segments: list[Segment], duration: float, loudness: Loudness | None, min_seconds: float,
               max_seconds: float, padding: float, trim_silence: bool = True,
               speech: Callable[[], list[tuple[float, float]] | None] | None = None) -> list[ClipSpan]:
    """Clip spans for one recording from whisper segments (see the module docstring for the rules)."""
    limit = max(max_seconds - 2 * padding, max_seconds * 0.5)
    speech = speech or (lambda: None)
    pieces: list[list[Word]] = []
    for seg in sorted(segments, key=lambda s: s.start):
        words = _words_of(seg, duration)
        if words:
            pieces += _split(words, limit, max(min_seconds - 2 * padding, 0.0), speech)
    pieces.sort(key=lambda p: p[0].start)
    pieces = _merge_short(pieces, max(min_seconds - 2 * padding, 0.0), limit)

    spans = _spans(pieces, duration, loudness, padding, max_seconds, trim_silence)
    # moving boundaries out of loud audio can push a clip past the maximum: split such clips once more
    for _ in range(8):
        long = [k for k, sp in enumerate(spans) if sp.end - sp.start > max_seconds + 1e-6 and len(pieces[k]) > 1]
        if not long:
            break
        for k in reversed(long):
            ws = pieces[k]
            pieces[k: k + 1] = _split(ws, (ws[-1].end - ws[0].start) - 1e-3, 0.0, speech)
        spans = _spans(pieces, duration, loudness, padding, max_seconds, trim_silence)
    return spans


def _spans(pieces: list[list[Word]], duration: float, loudness: Loudness | None, padding: float,
           max_seconds: float, trim_silence: bool) -> list[ClipSpan]:
    """Clip bounds for consecutive pieces of words."""
    # the boundary between neighbours: the longest quiet run between the last word of one and the first of
    # the next (whisper's own times may put it inside a word), else the middle of whisper's gap
    cuts = []
    for left, right in zip(pieces, pieces[1:]):
        a, b = left[-1], right[0]
        lo_w, hi_w = (a.start + a.end) / 2, (b.start + b.end) / 2
        if loudness is not None and hi_w > lo_w:
            cuts.append(loudness.quietest_cut(lo_w, hi_w)[1])
        else:
            cuts.append((a.end + b.start) / 2)
    spans: list[ClipSpan] = []
    for k, ws in enumerate(pieces):
        lo = cuts[k - 1] if k else 0.0
        hi = cuts[k] if k < len(cuts) else duration
        s, e = max(ws[0].start, lo), min(max(w.end for w in ws), hi)
        if e <= s:
            s, e = lo, hi
        spans.append(_bounds(s, e, lo, hi, loudness, padding, max_seconds, trim_silence, _text(ws)))
    return spans


def whole_file_span(text: str, duration: float, loudness: Loudness | None, padding: float,
                    trim_silence: bool = True) -> ClipSpan:
    """The clip for a recording whose transcript came with it: all of it, silence trimmed."""
    if trim_silence and loudness is not None:
        bounds = loudness.loud_bounds(0.0, duration)
        if bounds is not None:
            s, e = bounds
            return ClipSpan(max(0.0, s - padding), min(duration, e + padding), text, s, e)
    return ClipSpan(0.0, duration, text, 0.0, duration)


def _bounds(s: float, e: float, lo: float, hi: float, loudness: Loudness | None, padding: float,
            max_seconds: float, trim_silence: bool, text: str) -> ClipSpan:
    if loudness is not None:
        # whisper's word times are approximate: keep going while the word is still sounding
        e = loudness.extend_end(e, hi)
        s = loudness.extend_start(s, lo)
    start, end = max(lo, s - padding), min(hi, e + padding)
    if trim_silence and loudness is not None:
        bounds = loudness.loud_bounds(start, end)
        if bounds is not None:
            # silence whisper counted as speech (a late first word, a long tail) is dropped, keeping the padding
            start, end = max(start, bounds[0] - padding), min(end, bounds[1] + padding)
    if end - start > max_seconds and e - s <= max_seconds:
        spare = max_seconds - (e - s)
        start = max(start, s - spare / 2)
        end = min(end, start + max_seconds)
    return ClipSpan(start, end, text, s, e)
