"""Play speech while it is still being decoded, without a server-side encoder.

Gradio's streamed Audio output encodes AAC with an ``ffmpeg`` program, which many machines lack.
Instead each decoded chunk is sent as 16-bit PCM (base64, in a hidden textbox) and a few lines of
browser JavaScript queue it on a Web Audio context right after the previous chunk.
"""

from __future__ import annotations

import base64
import json

import numpy as np

# runs in the browser on every new chunk; counts what it queued in <body data-vt-live-chunks>
PLAY_CHUNK_JS = """(payload) => {
  if (!payload) return [];
  const msg = JSON.parse(payload);
  let live = window.__voicetuneLive;
  if (!live || msg.seq === 0 || live.rate !== msg.rate) {
    if (live && live.ctx) live.ctx.close();
    live = window.__voicetuneLive = {ctx: new AudioContext({sampleRate: msg.rate}), rate: msg.rate, t: 0, n: 0};
  }
  const bytes = atob(msg.pcm);
  const n = bytes.length >> 1;
  const buffer = live.ctx.createBuffer(1, n, msg.rate);
  const data = buffer.getChannelData(0);
  for (let i = 0; i < n; i++) {
    let v = bytes.charCodeAt(2 * i) | (bytes.charCodeAt(2 * i + 1) << 8);
    data[i] = (v >= 32768 ? v - 65536 : v) / 32768;
  }
  const source = live.ctx.createBufferSource();
  source.buffer = buffer;
  source.connect(live.ctx.destination);
  const start = Math.max(live.t, live.ctx.currentTime + 0.05);
  source.start(start);
  live.t = start + buffer.duration;
  live.n += 1;
  document.body.dataset.vtLiveChunks = String(live.n);
  return [];
}"""


def chunk_payload(seq: int, rate: int, samples: np.ndarray) -> str:
    """One chunk for ``PLAY_CHUNK_JS``: its number (0 starts a new utterance), rate and PCM."""
    pcm = (np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()
    return json.dumps({"seq": int(seq), "rate": int(rate), "pcm": base64.b64encode(pcm).decode("ascii")})
