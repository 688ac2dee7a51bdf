"""One UNet evaluation over a whole clip, cut into chunks of frames; reference latents noised per step.

Video stylisation denoises step-major: every step runs the UNet once over all ``n`` frames of the
clip. :func:`chunked_unet_call` makes that evaluation in chunks of at most ``chunk_size`` frames so
activation memory depends on the chunk, not on the clip, and drives
:class:`~lib_vidsd.attention.combine.CombineAttention` (the frames a chunk's self-attention needs from
earlier chunks are cached per step by the attention patch itself).

Row layout of ``x`` (and of every per-row argument): ``halves`` consecutive blocks of ``n`` rows, one
block per classifier-free-guidance half, each in frame order::

    x = [half 0: frame 0 … frame n-1, half 1: frame 0 … frame n-1]          (halves × n, C, h, w)

A chunk's UNet call gets, per half, the reference rows (first chunk only) then the chunk's frames —
exactly the layout ``CombineAttention.batch(frames=…, references=…)`` declares.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from ..errors import ConfigError

__all__ = ["ReferenceLatents", "alpha_prod_at", "chunked_unet_call", "gather_rows"]


def _scalar(t: float | int | Tensor) -> float:
    return float(t.detach().flatten()[0]) if isinstance(t, Tensor) else float(t)


def alpha_prod_at(alphas_cumprod: Tensor, t: float | int | Tensor) -> Tensor:
    """``ᾱ_t`` of the training schedule ``alphas_cumprod (T,)`` as a 0-d float64 tensor.

    Integer ``t`` indexes the table; fractional ``t`` (A1111's k-diffusion samplers turn sigmas into
    fractional timesteps, ``CompVisDenoiser.sigma_to_t``) is interpolated like k-diffusion's
    ``t_to_sigma``: linearly in ``log σ`` between the neighbouring integer timesteps, with
    ``σ = sqrt((1 − ᾱ) / ᾱ)``, then ``ᾱ = 1 / (1 + σ²)``.
    """
    value = _scalar(t)
    table = alphas_cumprod.detach().flatten().double().cpu()
    last = len(table) - 1
    if not math.isfinite(value) or not 0 <= value <= last:
        raise ConfigError("timestep", value, f"0 … {last}")
    if value == int(value):
        return table[int(value)]
    low, high = math.floor(value), math.ceil(value)
    log_sigma = 0.5 * torch.log((1 - table[[low, high]]) / table[[low, high]])
    w = value - low
    sigma = torch.exp((1 - w) * log_sigma[0] + w * log_sigma[1])
    return 1.0 / (1.0 + sigma * sigma)


class ReferenceLatents:
    """Reference images' clean latents, noised to the current timestep on demand.

    ``latents (R, C, h, w)``: VAE latents (already scaled) of the R reference images; ``noise``:
    ``(C, h, w)`` (one noise for all references, e.g. the clip's fixed noise) or ``(R, C, h, w)``;
    ``alphas_cumprod``: the model's training schedule ``ᾱ_t`` (``(T,)``).

    :meth:`at` is DiffSynth's ``add_noise(reference_latent, frame_noise, t)``:
    ``sqrt(ᾱ_t) · latents + sqrt(1 − ᾱ_t) · noise``. DiffSynth noises the references with the noise of the
    frame being rendered; chunks carry the references once, so they get ``noise`` (the first frame's).
    """

    def __init__(self, latents: Tensor, noise: Tensor, alphas_cumprod: Tensor):
        if latents.ndim != 4:
            raise ConfigError("references", tuple(latents.shape), "latents of shape (R, C, h, w)")
        if noise.shape not in (latents.shape[1:], latents.shape):
            raise ConfigError(
                "noise", tuple(noise.shape), f"{tuple(latents.shape[1:])} or {tuple(latents.shape)} (like the latents)"
            )
        self.latents = latents
        self._noise = noise
        self.noise = noise.expand_as(latents)
        self.alphas_cumprod = alphas_cumprod.detach().flatten()

    def __len__(self) -> int:
        return self.latents.shape[0]

    def alpha(self, t: float | int | Tensor) -> Tensor:
        """``ᾱ_t`` as a 0-d float64 tensor (see :func:`alpha_prod_at`)."""
        return alpha_prod_at(self.alphas_cumprod, t)

    def at(self, t: float | int | Tensor) -> Tensor:
        """``(R, C, h, w)``: the references noised to timestep ``t`` (scalar or 0-d/1-element tensor)."""
        value = _scalar(t)
        dtype = self.latents.dtype
        if value == int(value) and 0 <= value < len(self.alphas_cumprod):
            # the integer path in the latents' dtype, like diffusers' ``add_noise``
            a = self.alphas_cumprod.to(self.latents.device, dtype)[int(value)]
        else:
            a = self.alpha(value).to(self.latents.device, dtype)
        return a**0.5 * self.latents + (1 - a) ** 0.5 * self.noise

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> ReferenceLatents:
        """A copy on ``device`` / in ``dtype`` (the schedule stays as it is)."""
        return ReferenceLatents(self.latents.to(device, dtype), self._noise.to(device, dtype), self.alphas_cumprod)


def gather_rows(value: Any, rows: int, index: Tensor) -> Any:
    """``value`` with every tensor whose leading dimension is ``rows`` indexed by ``index`` (also inside
    lists, tuples and dicts); anything else unchanged."""
    if isinstance(value, Tensor):
        return value[index.to(value.device)] if value.ndim >= 1 and value.shape[0] == rows else value
    if isinstance(value, list):
        return [gather_rows(v, rows, index) for v in value]
    if isinstance(value, tuple):
        items = [gather_rows(v, rows, index) for v in value]
        return type(value)(*items) if hasattr(value, "_fields") else tuple(items)
    if isinstance(value, dict):
        return {k: gather_rows(v, rows, index) for k, v in value.items()}
    return value


def _check(x: Tensor, num_frames: Any, chunk_size: Any) -> int:
    if type(num_frames) is not int or num_frames < 1:
        raise ConfigError("num_frames", num_frames, "an integer >= 1")
    if type(chunk_size) is not int or chunk_size < 1:
        raise ConfigError("chunk_size", chunk_size, "an integer >= 1")
    rows = x.shape[0]
    if rows == 0 or rows % num_frames:
        raise ConfigError(
            "num_frames",
            num_frames,
            f"a divisor of the batch's {rows} rows (halves × frames)",
            "x holds one block of num_frames rows per CFG half",
        )
    return rows // num_frames


def _reference_input(references: ReferenceLatents, t: Any, x: Tensor, first_rows: Sequence[int]) -> list[Tensor]:
    """Per half: the references noised to that half's timestep (that of its first frame row)."""
    out = []
    for row in first_rows:
        t_half = t[row] if isinstance(t, Tensor) and t.ndim >= 1 and t.shape[0] == x.shape[0] else t
        out.append(references.at(t_half).to(x.device, x.dtype))
    return out


def chunked_unet_call(
    forward: Callable[..., Tensor],
    x: Tensor,
    t: Any,
    *args: Any,
    num_frames: int,
    chunk_size: int,
    attention: Any = None,
    references: ReferenceLatents | None = None,
    **kwargs: Any,
) -> Tensor:
    """One UNet evaluation ``forward(x, t, *args, **kwargs)`` over a clip, made chunk by chunk.

    ``x``: ``(halves × num_frames, C, h, w)`` (see the module docstring); ``t``: a scalar, a 0-d tensor
    or one timestep per row. Every tensor with ``halves × num_frames`` rows in ``t``, ``args`` and
    ``kwargs`` (also inside lists, tuples, dicts: text context, ``y``, ControlNet residuals) is gathered
    per chunk; everything else is passed unchanged. ``forward`` returns a tensor (wrap diffusers'
    ``.sample``). The result has ``x``'s rows in ``x``'s order.

    ``attention`` (a :class:`~lib_vidsd.attention.combine.CombineAttention` on the UNet): a new step
    starts (``begin_step``) and every chunk runs inside ``attention.batch(frames=…, references=…)``.
    ``references`` (with ``attention`` only; ignored without it): their rows go into the first chunk,
    input ``references.at(t)``, every other per-row value that of the half's first frame row; their
    outputs are dropped. Chunked equals whole-batch exactly for patterns without positive offsets.
    """
    halves = _check(x, num_frames, chunk_size)
    rows, n = x.shape[0], num_frames
    refs = len(references) if references is not None and attention is not None else 0
    if attention is not None:
        attention.begin_step()
    out: Tensor | None = None
    for start in range(0, n, chunk_size):
        frames = list(range(start, min(start + chunk_size, n)))
        k = refs if start == 0 else 0
        index = torch.tensor([h * n + f for h in range(halves) for f in [start] * k + frames])
        xc = x[index.to(x.device)]
        if k:
            per = k + len(frames)
            for h, noised in enumerate(_reference_input(references, t, x, [h * n + start for h in range(halves)])):
                xc[h * per : h * per + k] = noised
        tc, ac, kc = gather_rows((t, args, kwargs), rows, index)
        if attention is not None:
            with attention.batch(frames=frames, references=list(range(k))):
                result = forward(xc, tc, *ac, **kc)
        else:
            result = forward(xc, tc, *ac, **kc)
        if out is None:
            out = result.new_empty((rows, *result.shape[1:]))
        per = k + len(frames)
        if result.shape[0] != halves * per:
            raise ConfigError("forward", tuple(result.shape), f"{halves * per} rows (one per input row)")
        for h in range(halves):
            out[h * n + start : h * n + start + len(frames)] = result[h * per + k : (h + 1) * per]
    assert out is not None  # n >= 1
    return out
