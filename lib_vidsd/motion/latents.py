"""img2img animation: blend the init image's latent (and an optional last frame's) into each frame.

sd-webui-animatediff's image-to-video (``scripts/animatediff_latent.py``,
``AnimateDiffI2VLatent.randomize``; ``docs/features.md`` "Img2Vid") replaces A1111's init latent
before sampling with a per-frame blend of the first frame's latent and noise, and optionally a
last frame's latent. For frame ``i`` of ``F`` (0-based):

- first-frame weight ``a_i = max(0, 1 - i ** latent_power / latent_scale)``: 1 at frame 0 (for a
  power above 0), falling to 0 at ``i = latent_scale ** (1 / latent_power)``;
- without a last frame: ``init_i = a_i * first + (1 - a_i) * noise_i``;
- with a last frame, its weight is the same curve counted from the end,
  ``b_i = max(0, 1 - (F - 1 - i) ** latent_power_last / latent_scale_last)``; where
  ``a_i + b_i > 1`` both are divided by ``a_i + b_i``; then the ends are pinned
  (``a_0 = 1, b_0 = 0, a_{F-1} = 0, b_{F-1} = 1``, in that order, so a single frame is the
  last frame) and ``init_i = a_i * first + b_i * last + (1 - a_i - b_i) * noise_i``.

The sampler then adds its own noise at the denoising strength, as for any img2img. Python's
``0 ** 0 == 1`` holds here as in the reference: with a power of 0 every frame, the first
included, gets ``1 - 1 / scale`` (the last-frame pinning still sets the ends).
Weights are float32, built as the reference builds them, so they equal its values exactly.
"""

from __future__ import annotations

import math
import operator
from typing import TYPE_CHECKING, Optional

import torch

from ..errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from ..config import AnimateDiffParams

Tensor = torch.Tensor


def _count(num_frames: object) -> int:
    try:
        count = operator.index(num_frames)  # type: ignore[arg-type]
    except TypeError:
        count = 0
    if isinstance(num_frames, bool) or count < 1:
        raise ConfigError("video_length", num_frames, "1 or more frames")
    return count


def _number(field: str, value: object, allowed: str, positive: bool) -> float:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ConfigError(field, value, allowed) from None
    if isinstance(value, bool) or not math.isfinite(number) or number < 0 or (positive and number == 0):
        raise ConfigError(field, value, allowed)
    return number


def _decay(count: int, power: object, scale: object, power_field: str, scale_field: str) -> list[float]:
    p = _number(power_field, power, "0 or more", positive=False)
    s = _number(scale_field, scale, "more than 0", positive=True)
    return [max(0.0, 1.0 - math.pow(i, p) / s) for i in range(count)]


def frame_weights(num_frames: int, power: float, scale: float, reverse: bool = False) -> Tensor:
    """Per-frame weight of a key frame's latent: ``max(0, 1 - i ** power / scale)``.

    ``i`` counts frames from the first (or, with ``reverse``, from the last) frame. This is
    sd-webui-animatediff's ``init_alpha`` (``last_alpha`` with ``reverse``) before the
    normalisation :func:`blend_weights` applies when both key frames are used.

    Args:
        num_frames: ``F``, 1 or more (the API's ``video_length``).
        power: ``latent_power`` (``latent_power_last`` with ``reverse``), 0 or more.
        scale: ``latent_scale`` (``latent_scale_last`` with ``reverse``), more than 0.

    Returns:
        ``(F,)`` float32, each in 0..1, not increasing away from the key frame.
    """
    suffix = "_last" if reverse else ""
    values = _decay(_count(num_frames), power, scale, f"latent_power{suffix}", f"latent_scale{suffix}")
    if reverse:
        values.reverse()
    return torch.tensor(values, dtype=torch.float32)


def blend_weights(
    num_frames: int,
    power: float = 1.0,
    scale: float = 32.0,
    *,
    with_last: bool = False,
    power_last: float = 1.0,
    scale_last: float = 32.0,
) -> tuple[Tensor, Optional[Tensor]]:
    """The weights of the first and (``with_last``) last frame's latents, ``(F,)`` float32 each.

    Without a last frame: ``(frame_weights(F, power, scale), None)``. With one: both curves,
    divided by their sum where it exceeds 1, ends pinned (module docstring). The noise weight is
    ``1 - first - last``, never negative.
    """
    first = frame_weights(num_frames, power, scale)
    if not with_last:
        return first, None
    last = frame_weights(num_frames, power_last, scale_last, reverse=True)
    total = first + last
    over = total > 1
    factor = 1 / total[over]  # one reciprocal multiplied into both, as the reference does
    first[over] *= factor
    last[over] *= factor
    first[0], first[-1] = 1.0, 0.0
    last[0], last[-1] = 0.0, 1.0
    return first, last


def _as_frames(field: str, x: Tensor, frames: int, like: Tensor, allow_many: bool) -> Tensor:
    if x.dim() == 3:
        x = x[None]
    ok = x.dim() == 4 and x.shape[1:] == like.shape[1:] and (x.shape[0] == 1 or (allow_many and x.shape[0] == frames))
    if not ok:
        shape = "x".join(str(n) for n in like.shape[1:])
        allowed = f"(C, H, W) or (1, C, H, W){' or (F, C, H, W)' if allow_many else ''} with C, H, W = {shape}"
        raise ConfigError(field, tuple(x.shape), allowed)
    return x


def blend_init_latents(
    first: Tensor,
    noise: Tensor,
    *,
    power: float = 1.0,
    scale: float = 32.0,
    last: Optional[Tensor] = None,
    power_last: float = 1.0,
    scale_last: float = 32.0,
) -> Tensor:
    """The init latents of an img2img animation: key-frame latents faded into noise, per frame.

    Args:
        first: the init image's latent, ``(C, H, W)``, ``(1, C, H, W)`` or ``(F, C, H, W)``
            (A1111's ``p.init_latent``, the init image repeated over the batch = the frames).
        noise: ``(F, C, H, W)`` unit noise, one per frame (the reference draws ``p.rng.next()``).
        power, scale: ``latent_power``, ``latent_scale``.
        last: the last frame's latent ``(C, H, W)`` or ``(1, C, H, W)``, or ``None``.
        power_last, scale_last: ``latent_power_last``, ``latent_scale_last`` (used with ``last``).

    Returns:
        ``(F, C, H, W)``: ``a * first + b * last + (1 - a - b) * noise`` with the weights of
        :func:`blend_weights` (``b = 0`` without ``last``); the dtype is the promotion of the
        inputs and float32, as in the reference.
    """
    if noise.dim() != 4:
        raise ConfigError("noise", tuple(noise.shape), "(F, C, H, W)")
    frames = noise.shape[0]
    first = _as_frames("init_latent", first, frames, noise, allow_many=True)
    a, b = blend_weights(frames, power, scale, with_last=last is not None, power_last=power_last, scale_last=scale_last)
    a = a.to(noise.device)[:, None, None, None]
    if last is None:
        return first * a + noise * (1 - a)
    last = _as_frames("last_frame", last, frames, noise, allow_many=False)
    b = b.to(noise.device)[:, None, None, None]  # type: ignore[union-attr]
    return first * a + last * b + noise * (1 - a - b)


def blend_for(params: AnimateDiffParams, first: Tensor, noise: Tensor, last: Optional[Tensor] = None) -> Tensor:
    """:func:`blend_init_latents` with a job's ``latent_power``/``_scale`` (and ``_last``) values."""
    return blend_init_latents(
        first,
        noise,
        power=params.latent_power,
        scale=params.latent_scale,
        last=last,
        power_last=params.latent_power_last,
        scale_last=params.latent_scale_last,
    )
