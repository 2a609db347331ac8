"""Join audio decoded from growing prefixes into a stream, as tortoise's api_fast streams.

Each decode covers everything so far; only the part past what was already played is new. The
last ``overlap`` samples of each decode are held back and cross-faded (linear) with the same
samples of the next decode, whose context is longer, so chunk borders do not click.
"""

from __future__ import annotations

import torch


class ChunkJoiner:
    def __init__(self, overlap: int = 1024):
        self.overlap = int(overlap)
        self.emitted = 0
        self.held = torch.zeros(0)

    def add(self, wave: torch.Tensor) -> torch.Tensor:
        """Audio of the whole utterance so far -> the samples that can be played now."""
        wave = wave.reshape(-1)
        end = wave.shape[0] - self.overlap
        if end <= self.emitted:
            return torch.zeros(0, dtype=wave.dtype)
        chunk = wave[self.emitted:end].clone()
        n = min(self.held.shape[0], chunk.shape[0])
        if n:
            fade = torch.linspace(0.0, 1.0, n, dtype=chunk.dtype)
            chunk[:n] = self.held[:n].to(chunk.dtype) * (1.0 - fade) + chunk[:n] * fade
        self.held = wave[end:].clone()
        self.emitted = end
        return chunk

    def finish(self) -> torch.Tensor:
        """The held-back tail of the last decode (tortoise drops it; here nothing is lost)."""
        tail, self.held = self.held, torch.zeros(0)
        self.emitted += tail.shape[0]
        return tail
