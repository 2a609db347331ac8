"""A GPT-2 block stack whose state-dict keys and shapes match Hugging Face's ``GPT2Model``.

tortoise's ``autoregressive.pth`` stores the GPT as ``gpt.h.N.*`` plus ``gpt.ln_f.*`` with
HF's ``Conv1D`` layout (weights stored (in, out)). Writing the stack here keeps us off old
``transformers`` releases while loading those files unchanged. Attention runs through
``F.scaled_dot_product_attention`` (flash / memory-efficient kernels on GPUs).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

KVCache = list[tuple[torch.Tensor, torch.Tensor]]


class Conv1D(nn.Module):
    """A linear layer with its weight stored (in, out), as HF GPT-2 stores it."""

    def __init__(self, n_in: int, n_out: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_in, n_out))
        self.bias = nn.Parameter(torch.zeros(n_out))
        nn.init.normal_(self.weight, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.addmm(self.bias, x.reshape(-1, x.shape[-1]), self.weight).view(*x.shape[:-1], -1)


class Attention(nn.Module):
    """Causal multi-head self-attention (``attn.c_attn`` / ``attn.c_proj``)."""

    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        if dim % heads:
            raise ValueError(f"model_dim {dim} is not divisible by heads {heads}")
        self.heads = heads
        self.c_attn = Conv1D(dim, 3 * dim)
        self.c_proj = Conv1D(dim, dim)
        self.attn_dropout = dropout
        self.resid_dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, past: tuple[torch.Tensor, torch.Tensor] | None = None,
                use_cache: bool = False):
        b, t, d = x.shape
        q, k, v = self.c_attn(x).split(d, dim=2)
        hd = d // self.heads
        q = q.view(b, t, self.heads, hd).transpose(1, 2)
        k = k.view(b, t, self.heads, hd).transpose(1, 2)
        v = v.view(b, t, self.heads, hd).transpose(1, 2)
        if past is not None:
            k = torch.cat([past[0], k], dim=2)
            v = torch.cat([past[1], v], dim=2)
        present = (k, v) if use_cache else None
        s = k.shape[2]
        if t == s:
            out = F.scaled_dot_product_attention(
                q, k, v, is_causal=True, dropout_p=self.attn_dropout if self.training else 0.0)
        elif t == 1:  # one new query sees every cached key
            out = F.scaled_dot_product_attention(q, k, v, dropout_p=self.attn_dropout if self.training else 0.0)
        else:  # several new queries after a cache: causal mask aligned to the end
            mask = torch.ones(t, s, dtype=torch.bool, device=x.device).tril(diagonal=s - t)
            out = F.scaled_dot_product_attention(
                q, k, v, attn_mask=mask, dropout_p=self.attn_dropout if self.training else 0.0)
        out = out.transpose(1, 2).reshape(b, t, d)
        return self.resid_dropout(self.c_proj(out)), present


class MLP(nn.Module):
    def __init__(self, dim: int, dropout: float):
        super().__init__()
        self.c_fc = Conv1D(dim, 4 * dim)
        self.c_proj = Conv1D(4 * dim, dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # gelu_new is GPT-2's tanh approximation of GELU
        return self.dropout(self.c_proj(F.gelu(self.c_fc(x), approximate="tanh")))


class Block(nn.Module):
    """Pre-norm transformer block: ``x + attn(ln_1(x))`` then ``x + mlp(ln_2(x))``."""

    def __init__(self, dim: int, heads: int, dropout: float, eps: float):
        super().__init__()
        self.ln_1 = nn.LayerNorm(dim, eps=eps)
        self.attn = Attention(dim, heads, dropout)
        self.ln_2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = MLP(dim, dropout)

    def forward(self, x: torch.Tensor, past=None, use_cache: bool = False):
        a, present = self.attn(self.ln_1(x), past, use_cache)
        x = x + a
        x = x + self.mlp(self.ln_2(x))
        return x, present


class GPT2Stack(nn.Module):
    """``gpt.h.*`` and ``gpt.ln_f``; takes input embeddings (tortoise deletes ``wte`` and zeroes ``wpe``)."""

    def __init__(self, layers: int, dim: int, heads: int, n_positions: int, dropout: float = 0.1,
                 eps: float = 1e-5, checkpointing: bool = False):
        super().__init__()
        self.n_positions = n_positions
        self.drop = nn.Dropout(dropout)
        self.h = nn.ModuleList(Block(dim, heads, dropout, eps) for _ in range(layers))
        self.ln_f = nn.LayerNorm(dim, eps=eps)
        self.gradient_checkpointing = checkpointing
        # GPT-2's scaled init of the residual projections
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, std=0.02 / math.sqrt(2 * layers))

    def forward(self, inputs_embeds: torch.Tensor, past: KVCache | None = None, use_cache: bool = False):
        """Returns ``(last_hidden_state, presents)``; ``presents`` is None unless ``use_cache``."""
        x = self.drop(inputs_embeds)
        presents: KVCache = []
        for i, block in enumerate(self.h):
            layer_past = past[i] if past is not None else None
            if self.gradient_checkpointing and self.training and torch.is_grad_enabled() and not use_cache:
                x, _ = checkpoint(block, x, use_reentrant=False)
            else:
                x, present = block(x, layer_past, use_cache)
                if use_cache:
                    presents.append(present)
        return self.ln_f(x), (presents if use_cache else None)
