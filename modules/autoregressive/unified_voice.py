"""tortoise's autoregressive model (``UnifiedVoice``), trained exactly as tortoise runs it.

Same constructor parameters, state-dict keys and training forward as tortoise-tts's
``tortoise/models/autoregressive.py`` (see ../shared/compat/tortoise/FACTS.md): the
conditioning clips are averaged into **one** latent token, the attention residual is
``x + proj_out(attn)``, and mel codes are clipped and stop-filled from ``wav_lengths``.
"""

from __future__ import annotations

import math
from typing import Any, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from modules.autoregressive.gpt2 import GPT2Stack
from modules.autoregressive.options import TORTOISE_FULL_SIZE

TORTOISE_HYPERPARAMETERS: dict[str, Any] = {
    **TORTOISE_FULL_SIZE,
    "number_text_tokens": 255,
    "start_text_token": 255,
    "checkpointing": False,
    "train_solo_embeddings": False,
}


def _norm_groups(channels: int) -> int:
    """Group count of tortoise's ``normalization()``: 32, fewer for narrow layers."""
    groups = 32
    if channels <= 16:
        groups = 8
    elif channels <= 64:
        groups = 16
    while channels % groups:
        groups //= 2
    if groups <= 2:
        raise ValueError(f"model_dim {channels} is too small for the conditioning encoder's GroupNorm")
    return groups


class GroupNorm32(nn.GroupNorm):
    """GroupNorm computed in float32 whatever the input dtype."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.group_norm(x.float(), self.num_groups, self.weight.float(), self.bias.float(),
                            self.eps).type(x.dtype)


class AttentionBlock(nn.Module):
    """Non-causal self-attention over frames; the residual goes to the *unnormalised* input."""

    def __init__(self, channels: int, heads: int):
        super().__init__()
        if channels % heads:
            raise ValueError(f"model_dim {channels} is not divisible by heads {heads}")
        self.heads = heads
        self.norm = GroupNorm32(_norm_groups(channels), channels)
        self.qkv = nn.Conv1d(channels, channels * 3, 1)
        self.proj_out = nn.Conv1d(channels, channels, 1)
        nn.init.zeros_(self.proj_out.weight)
        nn.init.zeros_(self.proj_out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.proj_out(qkv_attention(self.qkv(self.norm(x)), self.heads))


def qkv_attention(qkv: torch.Tensor, heads: int, bias=None) -> torch.Tensor:
    """tortoise's ``QKVAttentionLegacy``: ``qkv`` ``[B, 3C, T]`` with channels grouped per head as
    [q | k | v]; q and k each scaled by head_width^-1/4; ``bias`` (``[B, H, T, T] -> same``) is
    applied to the logits before the fp32 softmax. Returns ``[B, C, T]``."""
    b, c3, length = qkv.shape
    ch = c3 // (3 * heads)
    q, k, v = qkv.reshape(b * heads, 3 * ch, length).split(ch, dim=1)
    scale = 1.0 / math.sqrt(math.sqrt(ch))
    weight = torch.einsum("bct,bcs->bts", q * scale, k * scale)
    if bias is not None:
        weight = bias(weight.reshape(b, heads, length, length)).reshape(b * heads, length, length)
    weight = torch.softmax(weight.float(), dim=-1).type(weight.dtype)
    return torch.einsum("bts,bcs->bct", weight, v).reshape(b, heads * ch, length)


class ConditioningEncoder(nn.Module):
    """Mel (b, 80, s) -> one latent (b, d): the output of frame 0 after the attention blocks."""

    def __init__(self, spec_dim: int, dim: int, attn_blocks: int = 6, heads: int = 4):
        super().__init__()
        self.init = nn.Conv1d(spec_dim, dim, kernel_size=1)
        self.attn = nn.Sequential(*[AttentionBlock(dim, heads) for _ in range(attn_blocks)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.attn(self.init(x))[:, :, 0]


class LearnedPositionEmbeddings(nn.Module):
    """Position table counted from 0 within its own segment (keys ``*.emb.weight``)."""

    def __init__(self, seq_len: int, dim: int):
        super().__init__()
        self.emb = nn.Embedding(seq_len, dim)
        nn.init.normal_(self.emb.weight, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        length = x.shape[1]
        if length > self.emb.num_embeddings:
            raise ValueError(f"sequence of {length} tokens exceeds the {self.emb.num_embeddings}-row position table")
        return self.emb(torch.arange(length, device=x.device))

    def fixed(self, index: int, device: torch.device) -> torch.Tensor:
        return self.emb(torch.tensor([index], device=device)).unsqueeze(0)


class UnifiedVoice(nn.Module):
    """tortoise's autoregressive text+mel-code GPT. Constructor parameters are tortoise's."""

    def __init__(self, layers: int = 8, model_dim: int = 512, heads: int = 8, max_text_tokens: int = 120,
                 max_mel_tokens: int = 250, max_conditioning_inputs: int = 1, mel_length_compression: int = 1024,
                 number_text_tokens: int = 256, start_text_token: int | None = None, number_mel_codes: int = 8194,
                 start_mel_token: int = 8192, stop_mel_token: int = 8193, train_solo_embeddings: bool = False,
                 use_mel_codes_as_input: bool = True, checkpointing: bool = True, types: int = 1,
                 dropout: float = 0.1):
        super().__init__()
        if train_solo_embeddings:
            raise ValueError("train_solo_embeddings=True is not supported (tortoise's released model uses False)")
        if not use_mel_codes_as_input:
            raise ValueError("use_mel_codes_as_input=False is not supported (tortoise's released model uses True)")
        self.number_text_tokens = number_text_tokens
        self.start_text_token = number_text_tokens * types if start_text_token is None else start_text_token
        self.stop_text_token = 0
        self.number_mel_codes = number_mel_codes
        self.start_mel_token = start_mel_token
        self.stop_mel_token = stop_mel_token
        self.layers = layers
        self.heads = heads
        self.model_dim = model_dim
        self.max_mel_tokens = max_mel_tokens
        self.max_text_tokens = max_text_tokens
        self.max_conditioning_inputs = max_conditioning_inputs
        self.mel_length_compression = mel_length_compression

        self.conditioning_encoder = ConditioningEncoder(80, model_dim, heads=heads)
        self.text_embedding = nn.Embedding(number_text_tokens * types + 1, model_dim)
        self.mel_embedding = nn.Embedding(number_mel_codes, model_dim)
        max_mel_seq = max_mel_tokens + 2 + max_conditioning_inputs
        max_text_seq = max_text_tokens + 2
        self.gpt = GPT2Stack(layers, model_dim, heads, n_positions=max_mel_seq + max_text_seq,
                             dropout=dropout, checkpointing=checkpointing)
        self.mel_pos_embedding = LearnedPositionEmbeddings(max_mel_seq, model_dim)
        self.text_pos_embedding = LearnedPositionEmbeddings(max_text_seq, model_dim)
        self.final_norm = nn.LayerNorm(model_dim)
        self.text_head = nn.Linear(model_dim, number_text_tokens * types + 1)
        self.mel_head = nn.Linear(model_dim, number_mel_codes)
        for emb in (self.text_embedding, self.mel_embedding):
            nn.init.normal_(emb.weight, std=0.02)

    # --- knobs --------------------------------------------------------------------------------
    def set_gradient_checkpointing(self, enabled: bool) -> None:
        """Recompute GPT blocks in backward: trades ~30% speed for most activation memory."""
        self.gpt.gradient_checkpointing = enabled

    # --- conditioning -------------------------------------------------------------------------
    def get_conditioning(self, speech_conditioning_input: torch.Tensor) -> torch.Tensor:
        """Mels (b, 80, s) or (b, n, 80, s) -> (b, d): each clip's latent, averaged over clips."""
        x = speech_conditioning_input
        if x.dim() == 3:
            x = x.unsqueeze(1)
        if x.dim() != 4 or x.shape[2] != 80:
            raise ValueError("conditioning mels must be (b, n, 80, frames), "
                             f"got {tuple(speech_conditioning_input.shape)}")
        b, n = x.shape[:2]
        latents = self.conditioning_encoder(x.reshape(b * n, *x.shape[2:])).reshape(b, n, -1)
        return latents.mean(dim=1)

    # --- training forward -----------------------------------------------------------------------
    def set_mel_padding(self, mel_codes: torch.Tensor, wav_lengths: torch.Tensor) -> torch.Tensor:
        """Overwrite codes past each clip's end (+1, the conv receptive field) with the stop token."""
        mel_lengths = torch.div(wav_lengths, self.mel_length_compression, rounding_mode="trunc")
        positions = torch.arange(mel_codes.shape[-1], device=mel_codes.device)
        past_end = positions.unsqueeze(0) >= (mel_lengths.to(mel_codes.device) + 1).unsqueeze(1)
        return mel_codes.masked_fill(past_end, self.stop_mel_token)

    @staticmethod
    def build_aligned_inputs_and_targets(seq: torch.Tensor, start: int, stop: int):
        return F.pad(seq, (1, 0), value=start), F.pad(seq, (0, 1), value=stop)

    def _prepare(self, text_inputs, text_lengths, mel_codes, wav_lengths, clip_inputs: bool = True):
        """Clip, stop-fill and frame the sequences; returns (text_in, text_tgt, mel_in, mel_tgt)."""
        if clip_inputs:
            text_inputs = text_inputs[:, : int(text_lengths.max())]
            mel_codes = mel_codes[:, : int(wav_lengths.max()) // self.mel_length_compression]
        mel_codes = self.set_mel_padding(mel_codes, wav_lengths)
        text_inputs = F.pad(text_inputs, (0, 1), value=self.stop_text_token)
        mel_codes = F.pad(mel_codes, (0, 1), value=self.stop_mel_token)
        text_in, text_tgt = self.build_aligned_inputs_and_targets(text_inputs, self.start_text_token,
                                                                  self.stop_text_token)
        mel_in, mel_tgt = self.build_aligned_inputs_and_targets(mel_codes, self.start_mel_token, self.stop_mel_token)
        return text_in, text_tgt, mel_in, mel_tgt

    def embed_inputs(self, speech_conditioning_latent, text_in, mel_in) -> torch.Tensor:
        """GPT input embeddings ``[cond | text + pos | mel + pos]``."""
        text_emb = self.text_embedding(text_in) + self.text_pos_embedding(text_in)
        mel_emb = self.mel_embedding(mel_in) + self.mel_pos_embedding(mel_in)
        conds = speech_conditioning_latent.unsqueeze(1).to(text_emb.dtype)
        return torch.cat([conds, text_emb, mel_emb], dim=1)

    def forward(self, speech_conditioning_latent: torch.Tensor, text_inputs: torch.Tensor,
                text_lengths: torch.Tensor, mel_codes: torch.Tensor, wav_lengths: torch.Tensor,
                types=None, text_first: bool = True, raw_mels=None, return_attentions: bool = False,
                return_latent: bool = False, clip_inputs: bool = True, return_details: bool = False):
        """tortoise's training forward: returns ``(loss_text, loss_mel, mel_logits)``.

        ``speech_conditioning_latent`` is ``get_conditioning``'s (b, d) output, or (an extension)
        the conditioning mels (b, n, 80, s) themselves.

        ``return_latent=True`` returns the final-normed mel latents without the two framing
        tokens, as tortoise does. ``return_details=True`` returns a dict with every
        intermediate (for tests, metrics and accuracy).
        """
        if types is not None or not text_first or raw_mels is not None or return_attentions:
            raise NotImplementedError("types, text_first=False, raw_mels and return_attentions are not supported")
        if speech_conditioning_latent.dim() > 2:
            # conditioning mels (b, n, 80, s): encode here so a DDP-wrapped model syncs the encoder too
            speech_conditioning_latent = self.get_conditioning(speech_conditioning_latent)
        text_in, text_tgt, mel_in, mel_tgt = self._prepare(text_inputs, text_lengths, mel_codes, wav_lengths,
                                                           clip_inputs)
        emb = self.embed_inputs(speech_conditioning_latent, text_in, mel_in)
        hidden, _ = self.gpt(emb)
        enc = self.final_norm(hidden[:, 1:])  # the first output belongs to the conditioning token
        t_text, t_mel = text_in.shape[1], mel_in.shape[1]
        if return_latent:
            return enc[:, -t_mel:][:, :-2]
        text_btv = self.text_head(enc[:, :t_text])
        mel_btv = self.mel_head(enc[:, -t_mel:])
        # plain means over every position, as tortoise; computed on (positions, vocab) rows because
        # a softmax over the strided (b, vocab, T) layout is several times slower on GPUs
        loss_text = F.cross_entropy(text_btv.reshape(-1, text_btv.shape[-1]).float(), text_tgt.reshape(-1))
        loss_mel = F.cross_entropy(mel_btv.reshape(-1, mel_btv.shape[-1]).float(), mel_tgt.reshape(-1))
        text_logits = text_btv.permute(0, 2, 1)
        mel_logits = mel_btv.permute(0, 2, 1)  # (b, vocab, T) as tortoise returns them
        if return_details:
            return {"loss_text": loss_text, "loss_mel": loss_mel, "text_logits": text_logits,
                    "mel_logits": mel_logits, "text_targets": text_tgt, "mel_targets": mel_tgt,
                    "gpt_inputs_embeds": emb, "gpt_last_hidden_state": hidden}
        return loss_text, loss_mel, mel_logits

    # --- inference --------------------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, speech_conditioning_latent: torch.Tensor, text_ids: torch.Tensor, num_samples: int = 1,
                 max_tokens: int | None = None, temperature: float = 0.8, top_p: float = 0.8,
                 repetition_penalty: float = 1.0, generator: torch.Generator | None = None,
                 num_codes: int | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Sample mel codes step by step with a KV cache, as tortoise's inference does.

        Yields ``(tokens [num_samples], latents [num_samples, d])`` per step: the sampled code and
        the final-normed hidden state that predicted it (what tortoise's decoders read). Rows that
        have stopped keep yielding the stop token; generation ends when all rows stopped.
        ``num_codes`` (the DVAE's codebook size) forbids ids between it and the stop token.
        """
        if text_ids.dim() != 1:
            raise ValueError("generate takes one text as a 1-D tensor of ids")
        device = self.mel_head.weight.device
        limit = self.max_mel_tokens if max_tokens is None else min(max_tokens, self.max_mel_tokens)
        latent = speech_conditioning_latent.reshape(-1, self.model_dim).to(device)
        if latent.shape[0] == 1:
            latent = latent.expand(num_samples, -1)
        elif latent.shape[0] != num_samples:
            raise ValueError("give one conditioning latent, or one per sample")
        text = F.pad(text_ids.to(device).unsqueeze(0), (0, 1), value=self.stop_text_token)
        text = F.pad(text, (1, 0), value=self.start_text_token).expand(num_samples, -1)
        text_emb = self.text_embedding(text) + self.text_pos_embedding(text)
        start = torch.full((num_samples, 1), self.start_mel_token, device=device, dtype=torch.long)
        mel_emb = self.mel_embedding(start) + self.mel_pos_embedding.fixed(0, device)
        emb = torch.cat([latent.unsqueeze(1).to(text_emb.dtype), text_emb, mel_emb], dim=1)
        if emb.shape[1] + limit > self.gpt.n_positions:
            limit = self.gpt.n_positions - emb.shape[1]
        seen = torch.zeros(num_samples, 0, dtype=torch.long, device=device)
        done = torch.zeros(num_samples, dtype=torch.bool, device=device)
        past = None
        for step in range(limit):
            hidden, past = self.gpt(emb, past=past, use_cache=True)
            normed = self.final_norm(hidden[:, -1])
            logits = self.mel_head(normed).float()
            if num_codes is not None:
                banned = torch.arange(logits.shape[1], device=device) >= num_codes
                banned[self.stop_mel_token] = False
                logits = logits.masked_fill(banned, float("-inf"))
            if repetition_penalty != 1.0 and seen.shape[1]:
                prev = logits.gather(1, seen)
                prev = torch.where(prev < 0, prev * repetition_penalty, prev / repetition_penalty)
                logits = logits.scatter(1, seen, prev)
            token = _sample_top_p(logits / max(temperature, 1e-5), top_p, generator)
            token = torch.where(done, torch.full_like(token, self.stop_mel_token), token)
            seen = torch.cat([seen, token.unsqueeze(1)], dim=1)
            done |= token == self.stop_mel_token
            yield token, normed
            if bool(done.all()) or step + 1 >= self.mel_pos_embedding.emb.num_embeddings:
                break
            emb = self.mel_embedding(token.unsqueeze(1)) + self.mel_pos_embedding.fixed(step + 1, device)

    @torch.no_grad()
    def sample_codes(self, speech_conditioning_latent: torch.Tensor, text_ids: torch.Tensor,
                     num_samples: int = 1, max_tokens: int | None = None, temperature: float = 0.8,
                     top_p: float = 0.8, repetition_penalty: float = 1.0,
                     generator: torch.Generator | None = None, num_codes: int | None = None) -> list[torch.Tensor]:
        """``num_samples`` 1-D code tensors sampled by ``generate``, each cut before its stop token."""
        steps = [t for t, _ in self.generate(speech_conditioning_latent, text_ids, num_samples, max_tokens,
                                             temperature, top_p, repetition_penalty, generator, num_codes)]
        codes = torch.stack(steps, dim=1) if steps else torch.zeros(num_samples, 0, dtype=torch.long)
        out = []
        for row in codes:
            stops = (row == self.stop_mel_token).nonzero()
            out.append(row[: int(stops[0])] if len(stops) else row)
        return [c.cpu() for c in out]


def _sample_top_p(logits: torch.Tensor, top_p: float, generator: torch.Generator | None) -> torch.Tensor:
    """Nucleus sampling: keep the smallest set of tokens whose probability reaches ``top_p``."""
    probs = torch.softmax(logits, dim=-1)
    if top_p < 1.0:
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        cumulative = sorted_probs.cumsum(dim=-1)
        drop = cumulative - sorted_probs > top_p  # the token crossing the threshold stays
        sorted_probs = sorted_probs.masked_fill(drop, 0.0)
        probs = torch.zeros_like(probs).scatter(1, order, sorted_probs)
    choice = torch.multinomial(probs.cpu() if generator is not None and generator.device.type == "cpu" else probs,
                               1, generator=generator)
    return choice.squeeze(1).to(logits.device)
