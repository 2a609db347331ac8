"""GPT latents for tortoise's decoders, made exactly as tortoise's two APIs make them.

Both APIs sample codes, then run the GPT once more over text + codes with ``return_latent=True``
and ``clip_inputs=False``; the standard (diffusion) path first fixes the sampled codes and trims
the latents at a run of "calm" tokens (FACTS.md, "GPT latents").
"""

from __future__ import annotations

import torch

STOP_TOKEN = 8193
CALM_TOKEN = 83
TAIL_TOKENS = (45, 45, 248)
CALM_RUN = 8  # the 9th consecutive calm token ends the kept latents


def fix_codes(codes: torch.Tensor, stop_token: int = STOP_TOKEN) -> torch.Tensor:
    """tortoise's ``fix_autoregressive_output`` on a 1-D code tensor, returned as a new tensor.

    With a stop token: it and everything after the first one become the calm token, and the last
    three positions are always overwritten with 45, 45, 248 (even when that overwrites real codes).
    Without one the codes come back unchanged.
    """
    if codes.dim() != 1:
        raise ValueError(f"fix_codes takes one row of codes, got shape {tuple(codes.shape)}")
    fixed = codes.clone()
    stops = (fixed == stop_token).nonzero()
    if len(stops) == 0:
        return fixed
    fixed[fixed == stop_token] = CALM_TOKEN
    fixed[int(stops[0]):] = CALM_TOKEN
    tail = torch.tensor(TAIL_TOKENS, dtype=fixed.dtype)
    n = min(len(tail), len(fixed))
    fixed[len(fixed) - n:] = tail[len(tail) - n:]
    return fixed


def kept_latent_frames(fixed_codes: torch.Tensor) -> int:
    """How many latent frames api.py keeps for ``fixed_codes``: up to the 9th consecutive calm token."""
    run = 0
    for k, code in enumerate(fixed_codes.tolist()):
        run = run + 1 if code == CALM_TOKEN else 0
        if run > CALM_RUN:
            return k
    return len(fixed_codes)


def pad_codes(codes: torch.Tensor, length: int, stop_token: int = STOP_TOKEN) -> torch.Tensor:
    """api.py right-pads each sampled row with stop tokens to ``max_mel_tokens`` before fixing it."""
    if codes.shape[-1] >= length:
        return codes
    return torch.nn.functional.pad(codes, (0, length - codes.shape[-1]), value=stop_token)


@torch.inference_mode()
def gpt_latents(gpt: torch.nn.Module, conditioning_latent: torch.Tensor, text_ids: torch.Tensor,
                codes: torch.Tensor) -> torch.Tensor:
    """The latent pass both APIs make: text ids ``[T]`` (or ``[1, T]``) and codes ``[k, N]`` -> ``[k, N, d]``.

    The API appends one stop-text token (0) to the ids and gives ``wav_lengths = N * 1024`` so the
    forward's own padding changes nothing. Texts ``[k, T]`` of one length batch k different clips
    (the decoder fine-tune's teacher-forced latents): the model is causal, so codes right-padded to
    a common N leave each row's first latents as its own call would give them.
    """
    device = next(gpt.parameters()).device
    text = text_ids.reshape(-1, text_ids.shape[-1]).to(device)
    text = torch.nn.functional.pad(text, (0, 1), value=0)
    codes = codes.reshape(-1, codes.shape[-1]).to(device)
    k = codes.shape[0]
    if text.shape[0] not in (1, k):
        raise ValueError(f"gpt_latents: {text.shape[0]} texts for {k} code rows")
    compression = int(getattr(gpt, "mel_length_compression", 1024))
    cond = conditioning_latent.reshape(1, -1).to(device).expand(k, -1)
    return gpt(cond, text.expand(k, -1), torch.tensor([text.shape[-1]], device=device), codes,
               torch.tensor([codes.shape[-1] * compression], device=device), return_latent=True,
               clip_inputs=False).float()
