"""The in-loop smoother: deflicker the frames the sampler currently predicts, and put them back.

At chosen steps DiffSynth decodes the predicted clean latents ``x̂₀`` of every frame, deflickers the
images with the patch-match smoother (the source video as guide), encodes them again and turns the
smoothed ``x̂₀`` back into a noise prediction for the step (its scheduler's ``return_to_timestep``):

    ε' = (x_t − sqrt(ᾱ_t) · x̂₀') / sqrt(1 − ᾱ_t)

so the sampler's step then moves towards the smoothed frames. :class:`SmootherSchedule` says at which
steps; :func:`smooth_predicted` does the decode → deflicker → encode part with memory bounded by
``chunk_size`` frames per VAE call; :func:`noise_from_prediction` is the conversion.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..config import DeflickerMode
from ..errors import ConfigError
from ..progress import ProgressSink, StopToken

__all__ = ["SmootherSchedule", "noise_from_prediction", "smooth_predicted"]


@dataclass(frozen=True)
class SmootherSchedule:
    """DiffSynth's rule: smooth at step ``i`` (0-based, of ``total``) when ``i < total - ignore_last``
    and ``i % interval == 0`` (``smoother_interval``, ``ignore_smoother_steps``)."""

    interval: int = 1
    ignore_last: int = 0

    def __post_init__(self) -> None:
        if type(self.interval) is not int or self.interval < 1:
            raise ConfigError("smoother_interval", self.interval, "an integer >= 1")
        if type(self.ignore_last) is not int or self.ignore_last < 0:
            raise ConfigError("smoother_ignore_last", self.ignore_last, "an integer >= 0")

    def applies(self, step: int, total: int) -> bool:
        return step < total - self.ignore_last and step % self.interval == 0

    def steps(self, total: int) -> list[int]:
        """The steps of a ``total``-step run that are smoothed."""
        return [i for i in range(total) if self.applies(i, total)]


def noise_from_prediction(sample: Tensor, x0: Tensor, alpha_prod: Tensor | float) -> Tensor:
    """The noise prediction ε for which ``x0`` is the predicted clean sample of ``sample`` at ``ᾱ_t =
    alpha_prod`` (DiffSynth's ``return_to_timestep``): ``(sample − sqrt(ᾱ) x0) / sqrt(1 − ᾱ)``."""
    a = torch.as_tensor(alpha_prod, dtype=torch.float64).to(sample.device)
    out = (sample.double() - a.sqrt() * x0.double()) / (1 - a).sqrt()
    return out.to(sample.dtype)


def _decode_all(x0: Tensor, decode: Callable[[Tensor], Sequence[np.ndarray]], chunk: int) -> list[np.ndarray]:
    frames: list[np.ndarray] = []
    for start in range(0, x0.shape[0], chunk):
        part = list(decode(x0[start : start + chunk]))
        if len(part) != min(chunk, x0.shape[0] - start):
            raise ConfigError("decode", f"{len(part)} images", f"{min(chunk, x0.shape[0] - start)} (one per latent)")
        frames.extend(np.asarray(p, dtype=np.uint8) for p in part)
    return frames


def smooth_predicted(
    x0: Tensor,
    *,
    decode: Callable[[Tensor], Sequence[np.ndarray]],
    encode: Callable[[list[np.ndarray]], Tensor],
    guide: Sequence[np.ndarray],
    mode: DeflickerMode | str,
    window: int,
    patch_size: int = 5,
    guide_weight: float = 10.0,
    seed: int = 0,
    chunk_size: int = 4,
    progress: ProgressSink | None = None,
    stop: StopToken | None = None,
    contrast: float = 1.0,
    sharpness: float = 1.0,
    device: Any = None,
) -> Tensor:
    """The predicted clean latents ``x0 (n, C, h, w)`` with the flicker of their images removed.

    ``decode(latents (k, C, h, w)) → k uint8 (H, W, 3) images`` and ``encode(k images) → (k, C, h, w)``
    are called on at most ``chunk_size`` frames at a time. The images are deflickered
    (:func:`lib_vidsd.consistency.deflicker.deflicker`, mode ``mode``, ``window`` frames each side) with
    ``guide`` (the source frames, same size as the decoded images) as guide; ``contrast`` and
    ``sharpness`` are applied to the smoothed images (DiffSynth's smoother ``postprocessing``). Mode
    ``none`` returns ``x0`` unchanged. The result has ``x0``'s dtype and device. ``device``: where the
    patch matcher runs (default: ``x0``'s device).
    """
    mode = DeflickerMode(getattr(mode, "value", mode))
    if type(chunk_size) is not int or chunk_size < 1:
        raise ConfigError("chunk_size", chunk_size, "an integer >= 1")
    if mode is DeflickerMode.NONE:
        return x0
    if len(guide) != x0.shape[0]:
        raise ConfigError("guide", f"{len(guide)} frames", f"{x0.shape[0]} (one per latent)")
    from ..consistency.deflicker import deflicker

    frames = _decode_all(x0, decode, chunk_size)
    smoothed = deflicker(
        frames,
        guide=list(guide),
        mode=mode.value,
        window=window,
        patch_size=patch_size,
        guide_weight=guide_weight,
        contrast=contrast,
        sharpness=sharpness,
        seed=seed,
        progress=progress,
        stop=stop,
        device=device if device is not None else x0.device,
    )
    parts = [encode(smoothed[i : i + chunk_size]).to(x0.device, x0.dtype) for i in range(0, len(smoothed), chunk_size)]
    out = torch.cat(parts)
    if out.shape != x0.shape:
        raise ConfigError("encode", tuple(out.shape), f"latents of shape {tuple(x0.shape)}")
    return out
