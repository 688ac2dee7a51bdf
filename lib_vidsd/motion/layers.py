"""The layers of one AnimateDiff motion module (``VanillaTemporalModule``).

Computation (the A1111 extension's ``motion_module.py`` and guoyww/AnimateDiff's
``animatediff/models/motion_module.py``, which agree): for an input of ``halves * F`` rows
(``F`` frames of each cond/uncond half, frame-major inside a half),

1. keep the input as the residual; GroupNorm (32 groups, eps 1e-6, affine) of every row alone;
2. Linear ``proj_in`` C→C on the tokens (one token per spatial position);
3. one transformer block: twice {LayerNorm → temporal self-attention → add}, then
   LayerNorm → GEGLU feed-forward (C→8C, ``a * gelu(b)``, 4C→C) → add;
4. Linear ``proj_out`` C→C, back to the input layout, plus the residual.

Temporal attention treats, for each half and each spatial position, the ``F`` frame vectors as one
sequence: the sinusoid table's rows ``0..F-1`` are added to the sequence *before* the q/k/v
projections (q/k/v have no bias, ``to_out.0`` has one); 8 heads of ``C / 8`` channels,
``softmax(q kᵀ / √(C/8)) v``.

Layout. The reference implementations flatten to ``(rows, H·W, C)`` tokens and regroup to
``(halves·H·W, F, C)`` around every attention. Every step except attention works per token, so
here the tokens are put in the attention layout once, ``(halves·H·W, F, C)`` ("sequences"), kept
there through the whole block, and put back once: two copies per module instead of six.

State-dict names below ``temporal_transformer.`` are exactly those of the published checkpoints.
"""

from __future__ import annotations

import logging
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError

log = logging.getLogger("vidsd.motion.layers")

HEADS = 8
NORM_GROUPS = 32
#: CUDA's fused attention kernels launch one block row per batch entry; more than 65535 fails
#: ("invalid configuration argument", pytorch/pytorch#146704), so longer batches are split.
_CUDA_MAX_ATTENTION_BATCH = 65535


def sinusoid_table(length: int, channels: int, *, device=None, dtype: torch.dtype = torch.float32) -> Tensor:
    """The fixed positional table ``[1, length, channels]``.

    ``table[0, p, 2i] = sin(p · 10000^(-2i/C))``, ``table[0, p, 2i+1] = cos(…)`` (Vaswani et al.,
    2017), computed in float32 the way the published modules compute it, so a recomputed table
    equals a stored float32 one bit for bit.
    """
    position = torch.arange(length, device=device).unsqueeze(1)
    div_term = torch.exp(torch.arange(0, channels, 2, device=device) * (-math.log(10000.0) / channels))
    table = torch.zeros(1, length, channels, device=device)
    table[0, :, 0::2] = torch.sin(position * div_term)
    table[0, :, 1::2] = torch.cos(position * div_term)
    return table.to(dtype)


class PositionalEncoding(nn.Module):
    """Holds the sinusoid table as a persistent buffer named ``table_name``.

    AnimateDiff files call the buffer ``pe``; AnimateLCM files call it ``pos_encoding``. Shape
    ``[1, L, C]``; ``L`` is the longest window the module accepts.
    """

    def __init__(self, channels: int, length: int, table_name: str = "pe"):
        super().__init__()
        if table_name not in ("pe", "pos_encoding"):
            raise ValueError(f"table_name: got {table_name!r}; allowed: pe, pos_encoding")
        self.table_name = table_name
        self.length = length
        self.register_buffer(table_name, sinusoid_table(length, channels), persistent=True)

    @property
    def table(self) -> Tensor:
        """The buffer, whatever its name: ``[1, L, C]``."""
        return getattr(self, self.table_name)

    def reset_table(self, device: torch.device | str | None = None) -> None:
        """Recompute the table (on ``device``, default the buffer's own; in the buffer's dtype)."""
        table = self.table
        fresh = sinusoid_table(self.length, table.shape[-1], device=device or table.device)
        setattr(self, self.table_name, fresh.to(table.dtype))

    def forward(self, x: Tensor) -> Tensor:
        """``x`` ``(S, F, C)`` → ``x + table[:, :F]`` (same shape)."""
        return x + self.table[:, : x.shape[1]].to(dtype=x.dtype)

    def extra_repr(self) -> str:
        return f"{self.table_name}: [1, {self.length}, C]"


class TemporalAttention(nn.Module):
    """Self-attention along the frame axis (``VersatileAttention`` with ``Temporal_Self``).

    Input and output ``(S, F, C)``: ``S`` independent sequences of ``F`` frame vectors.
    """

    def __init__(self, channels: int, table_length: int, table_name: str = "pe"):
        super().__init__()
        self.heads = HEADS
        self.to_q = nn.Linear(channels, channels, bias=False)
        self.to_k = nn.Linear(channels, channels, bias=False)
        self.to_v = nn.Linear(channels, channels, bias=False)
        self.to_out = nn.ModuleList([nn.Linear(channels, channels)])  # ".0" in the state dict
        self.pos_encoder = PositionalEncoding(channels, table_length, table_name)

    def forward(self, x: Tensor) -> Tensor:
        seqs, frames, channels = x.shape
        x = self.pos_encoder(x)
        head_dim = channels // self.heads
        # (S, F, C) -> (S, heads, F, head_dim): views, no copy
        q = self.to_q(x).view(seqs, frames, self.heads, head_dim).transpose(1, 2)
        k = self.to_k(x).view(seqs, frames, self.heads, head_dim).transpose(1, 2)
        v = self.to_v(x).view(seqs, frames, self.heads, head_dim).transpose(1, 2)
        out = _attention(q, k, v)
        out = out.transpose(1, 2).reshape(seqs, frames, channels)
        return self.to_out[0](out)


def _attention(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    """``softmax(q kᵀ / √d) v`` on ``(S, heads, F, d)``; split along ``S`` where CUDA needs it."""
    if q.is_cuda and q.shape[0] > _CUDA_MAX_ATTENTION_BATCH:
        step = _CUDA_MAX_ATTENTION_BATCH // 2
        return torch.cat(
            [
                F.scaled_dot_product_attention(q[i : i + step], k[i : i + step], v[i : i + step])
                for i in range(0, q.shape[0], step)
            ]
        )
    return F.scaled_dot_product_attention(q, k, v)


class GEGLU(nn.Module):
    """``proj`` C→2H, then ``a * gelu(b)`` (exact erf GELU) of its halves: ``(..., C)`` → ``(..., H)``."""

    def __init__(self, dim_in: int, dim_out: int):
        super().__init__()
        self.proj = nn.Linear(dim_in, dim_out * 2)

    def forward(self, x: Tensor) -> Tensor:
        hidden, gate = self.proj(x).chunk(2, dim=-1)
        if torch.is_grad_enabled():
            return hidden * F.gelu(gate)
        return F.gelu(gate).mul_(hidden)  # the widest tensor of the module: one allocation fewer


class FeedForward(nn.Module):
    """GEGLU feed-forward C→4C→C; ``net.0`` and ``net.2`` hold the weights (``net.1`` was dropout)."""

    def __init__(self, channels: int, mult: int = 4):
        super().__init__()
        inner = channels * mult
        self.net = nn.ModuleList([GEGLU(channels, inner), nn.Identity(), nn.Linear(inner, channels)])

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.net:
            x = layer(x)
        return x


class TemporalTransformerBlock(nn.Module):
    """Two pre-LayerNorm temporal self-attentions, then a pre-LayerNorm GEGLU feed-forward.

    Input and output ``(S, F, C)`` sequences (``S = halves·H·W``). The reference code takes
    ``(halves·F, H·W, C)`` tokens instead; the two are the same numbers in another order.
    """

    def __init__(self, channels: int, table_length: int, table_name: str = "pe"):
        super().__init__()
        self.attention_blocks = nn.ModuleList([TemporalAttention(channels, table_length, table_name) for _ in range(2)])
        self.norms = nn.ModuleList([nn.LayerNorm(channels) for _ in range(2)])
        self.ff = FeedForward(channels)
        self.ff_norm = nn.LayerNorm(channels)

    def forward(self, x: Tensor) -> Tensor:
        for attention, norm in zip(self.attention_blocks, self.norms, strict=True):
            # .to(): LayerNorm answers float32 under autocast
            x = attention(norm(x).to(x.dtype)) + x
        return self.ff(self.ff_norm(x).to(x.dtype)) + x


class TemporalTransformer(nn.Module):
    """GroupNorm → ``proj_in`` → transformer block(s) → ``proj_out`` → plus the input."""

    def __init__(self, channels: int, table_length: int, table_name: str = "pe", num_blocks: int = 1):
        super().__init__()
        if channels % NORM_GROUPS:  # a multiple of 32 is one of the 8 heads too
            raise ValueError(f"channels: got {channels}; allowed: a multiple of {NORM_GROUPS} (GroupNorm groups)")
        self.norm = nn.GroupNorm(NORM_GROUPS, channels, eps=1e-6, affine=True)
        self.proj_in = nn.Linear(channels, channels)
        self.transformer_blocks = nn.ModuleList(
            [TemporalTransformerBlock(channels, table_length, table_name) for _ in range(num_blocks)]
        )
        self.proj_out = nn.Linear(channels, channels)

    def forward(self, x: Tensor, frames: int) -> Tensor:
        """``x`` ``(halves·F, C, H, W)`` → same shape, contiguous."""
        rows, channels, height, width = x.shape
        halves = rows // frames
        y = self.norm(x).to(x.dtype)
        # (halves, F, C, H, W) -> (halves, H, W, F, C) -> sequences (halves·H·W, F, C): one copy
        y = y.reshape(halves, frames, channels, height, width).permute(0, 3, 4, 1, 2)
        y = y.reshape(halves * height * width, frames, channels)
        y = self.proj_in(y)
        for block in self.transformer_blocks:
            y = block(y)
        y = self.proj_out(y)
        # back to (halves, F, C, H, W) as a view; the residual add writes the contiguous result
        y = y.view(halves, height, width, frames, channels).permute(0, 3, 4, 1, 2)
        out = x.reshape(halves, frames, channels, height, width) + y
        return out.reshape(rows, channels, height, width)


class TemporalModule(nn.Module):
    """One motion module (``VanillaTemporalModule``), ``C`` channels, table length ``L``.

    ``forward(x, frames)``: ``x`` ``(halves·frames, C, H, W)``, rows ``h·frames + f`` = frame
    ``f`` of half ``h`` (A1111's batched cond/uncond: half 0 cond, half 1 uncond) → same shape.
    ``frames`` is the window length (the context batch size); it may not exceed ``L``.
    Computes in the dtype and on the device of its parameters (move it with ``.to()``).
    """

    def __init__(self, channels: int, table_length: int, table_name: str = "pe"):
        super().__init__()
        self.channels = channels
        self.context_limit = table_length
        self.temporal_transformer = TemporalTransformer(channels, table_length, table_name)

    def forward(self, x: Tensor, frames: int) -> Tensor:
        if not 1 <= frames <= self.context_limit:
            raise ConfigError(
                "batch_size",
                frames,
                f"1..{self.context_limit}",
                hint=f"this motion module's positional table holds {self.context_limit} frames; "
                "lower the context batch size",
            )
        if x.dim() != 4 or x.shape[0] % frames:
            raise ValueError(
                f"motion module input: got shape {tuple(x.shape)}; expected (halves*frames, C, H, W) "
                f"with rows a multiple of frames={frames}"
            )
        return self.temporal_transformer(x, frames)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, context_limit={self.context_limit}"
