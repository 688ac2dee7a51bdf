"""Latent and prompt-embedding travel between keyframes, as Giffusion does it (``flows/flow_byop.py``).

Each keyframe has a text embedding and an initial noise latent; every frame between two keyframes
gets the slerp of both, with the segment's weights (linear, eased, curve, audio: computed elsewhere).
Keyframe noise is seeded per keyframe from a seed schedule, or fixed (every keyframe reuses the first
keyframe's noise, so only the prompt travels).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from itertools import pairwise

import torch

from lib_vidsd.errors import ConfigError
from lib_vidsd.schedule.prompts import DOT_THRESHOLD
from lib_vidsd.schedule.prompts import slerp as _slerp_same_dtype

#: ``weights(start, end)`` -> one weight per frame ``start … end`` inclusive (0 = start key, 1 = end key).
SegmentWeights = Callable[[int, int], Sequence[float]]

_SEED_SPAN = 2**64 - 1


def slerp(v0: torch.Tensor, v1: torch.Tensor, t: float, threshold: float = DOT_THRESHOLD) -> torch.Tensor:
    """Spherical interpolation over the whole flattened tensors, returned in ``v0``'s dtype.

    Giffusion's ``utils.slerp``: the cosine is taken over all elements; when ``|cos| > threshold``
    (nearly parallel *or* antiparallel) the plain lerp ``(1-t)·v0 + t·v1`` is used. Inputs are not
    normalised and ``t`` is not clamped (values outside 0…1 extrapolate). Computed in at least float32
    so float16 embeddings keep their angle. Unlike Giffusion, a zero tensor lerps instead of giving NaN.
    """
    work = torch.promote_types(v0.dtype, torch.float32)
    return _slerp_same_dtype(v0.to(work), v1.to(work), t, threshold).to(v0.dtype)


def seed_schedule(seed: int, num_frames: int) -> list[int]:
    """One 64-bit seed per frame: Python's ``random`` seeded with ``seed``, one ``randint(0, 2**64-1)`` each.

    Giffusion's schedule, so the same run seed gives the same per-keyframe noise as there.
    """
    rng = random.Random(seed)
    return [rng.randint(0, _SEED_SPAN) for _ in range(num_frames)]


def keyframe_noise(
    seed: int,
    key_frames: Sequence[int],
    shape: Sequence[int],
    *,
    fixed_latent: bool = False,
    dtype: torch.dtype = torch.float32,
) -> list[torch.Tensor]:
    """Initial noise for each keyframe, ``shape`` e.g. ``(1, 4, H//8, W//8)``, on CPU.

    The first keyframe draws from a CPU generator seeded with ``seed``; a later keyframe at frame k
    draws from one seeded with ``seed_schedule(seed, …)[k]``. With ``fixed_latent`` every keyframe
    reuses the first keyframe's noise.
    """
    if not key_frames:
        return []
    first = _noise(seed, shape, dtype)
    if fixed_latent:
        return [first] * len(key_frames)
    seeds = seed_schedule(seed, max(key_frames) + 1)
    return [first] + [_noise(seeds[k], shape, dtype) for k in key_frames[1:]]


def interpolate_keyframes(
    key_frames: Sequence[int], values: Sequence[torch.Tensor], weights: SegmentWeights
) -> dict[int, torch.Tensor]:
    """Per-frame tensors between consecutive keyframes: frame ``start+i`` gets ``slerp(values[k], values[k+1], w[i])``.

    ``key_frames`` must increase strictly (Giffusion walks keys in text order and crashes on a
    descending pair, silently overwrites on a duplicate; we refuse both). Frames before the first key
    get nothing; a single key gives just that key's value. A later segment writes the shared boundary
    frame with its own first weight, as Giffusion does. Returns ``{frame: tensor}``.
    """
    _check_keys(key_frames, values)
    if len(key_frames) == 1:
        return {key_frames[0]: values[0]}
    frames: dict[int, torch.Tensor] = {}
    for index, (start, end) in enumerate(pairwise(key_frames)):
        v0, v1 = values[index], values[index + 1]
        segment = list(weights(start, end))
        if len(segment) != end - start + 1:
            raise ValueError(f"weights({start}, {end}) gave {len(segment)} values, expected {end - start + 1}")
        for offset, w in enumerate(segment):
            frames[start + offset] = slerp(v0, v1, float(w))
    return frames


def _noise(seed: int, shape: Sequence[int], dtype: torch.dtype) -> torch.Tensor:
    generator = torch.Generator("cpu").manual_seed(seed)
    return torch.randn(tuple(shape), generator=generator, dtype=dtype)


def _check_keys(key_frames: Sequence[int], values: Sequence[torch.Tensor]) -> None:
    if len(key_frames) != len(values):
        raise ValueError(f"{len(key_frames)} keyframes but {len(values)} values")
    if not key_frames:
        raise ConfigError("key_frames", list(key_frames), "at least one keyframe")
    if any(b <= a for a, b in pairwise(key_frames)):
        raise ConfigError("key_frames", list(key_frames), "strictly increasing frame numbers")
