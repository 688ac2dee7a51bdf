"""Frame-to-frame coherence: pull the latent toward a running reference, and match colours to a reference.

``LatentCoherence`` is Giffusion's ``CoherenceCallback`` (``flows/flow_byop.py``) with the noise drawn
from a generator the caller owns instead of torch's global RNG. ``match_colors`` is Deforum's
``maintain_colors`` (per-channel histogram matching in RGB, HSV or LAB, on 8-bit values) applied to
real RGB frames (Deforum handed OpenCV BGR frames to RGB conversions, swapping red and blue in the
colour maths), plus a strength that blends the match with the original.
"""

from __future__ import annotations

from enum import Enum

import cv2
import numpy as np
import torch

from lib_vidsd.errors import ConfigError


class LatentCoherence:
    """Pulls each denoising step's latent toward a running reference latent; one object per run.

    Per applied step, with ``N`` the number of elements of the latent:
    ``x ← x − scale·2(x − ref)/N + noise_level·randn``, then ``ref ← alpha·x + (1 − alpha)·ref``.
    (``2(x − ref)/N`` is the gradient of the mean squared distance, so ``scale`` is a step size;
    with N = 16384 for a 512² latent, Giffusion's 300 is a gentle pull.) The step is applied when
    ``step % every == 0``. Without a starting reference, the first applied step's output becomes it.
    The reference carries across frames, which is what keeps consecutive frames alike.
    """

    def __init__(
        self,
        scale: float,
        alpha: float = 1.0,
        *,
        every: int = 1,
        noise_level: float = 0.0,
        reference: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        if every < 1:
            raise ConfigError("coherence_every", every, "an integer >= 1")
        if not 0.0 <= alpha <= 1.0:
            raise ConfigError("coherence_alpha", alpha, "0..1")
        self.scale = scale
        self.alpha = alpha
        self.every = every
        self.noise_level = noise_level
        self.reference = None if reference is None else reference.detach().clone()
        self.generator = generator

    def __call__(self, step: int, latents: torch.Tensor) -> torch.Tensor:
        """The pulled latent for denoising ``step`` (same shape and dtype); ``latents`` is left untouched."""
        if step % self.every:
            return latents
        x = latents.detach()
        if self.reference is not None:
            x = x - self.scale * 2.0 * (x - self.reference) / x.numel()
        if self.noise_level:
            noise = torch.randn(x.shape, generator=self.generator, dtype=x.dtype, device=x.device)
            x = x + self.noise_level * noise
        if self.reference is None:
            self.reference = x.clone()
        else:
            self.reference = self.alpha * x + (1.0 - self.alpha) * self.reference
        return x


class ColorSpace(str, Enum):
    """Where the per-channel histograms are matched (OpenCV's 8-bit encodings of each space)."""

    RGB = "rgb"
    HSV = "hsv"
    LAB = "lab"


_HSV_UNITS = np.array([2.0, 1 / 255, 1 / 255], dtype=np.float32)  # 8-bit H 0–179, S/V 0–255 -> degrees, 0–1


def _hsv8_to_rgb(hsv: np.ndarray) -> np.ndarray:
    """OpenCV 8-bit HSV -> uint8 RGB, truncating: the bytes OpenCV 4.9 gave (4.14's uint8 path rounds)."""
    rgb = cv2.cvtColor(hsv.astype(np.float32) * _HSV_UNITS, cv2.COLOR_HSV2RGB) * 255
    return np.clip(rgb, 0, 255).astype(np.uint8)


def _lab8_to_rgb(lab: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(lab, cv2.COLOR_LAB2RGB)


_TO_SPACE = {ColorSpace.HSV: (cv2.COLOR_RGB2HSV, _hsv8_to_rgb), ColorSpace.LAB: (cv2.COLOR_RGB2LAB, _lab8_to_rgb)}


def match_colors(
    image: np.ndarray, reference: np.ndarray, space: ColorSpace | str = ColorSpace.LAB, strength: float = 1.0
) -> np.ndarray:
    """``image`` with each channel's histogram matched to ``reference``'s in ``space``, blended by ``strength``.

    Both are ``uint8 (H, W, 3)`` **RGB** (sizes may differ). The match is done on OpenCV's 8-bit
    encoding of ``space`` (LAB: L 0–255, a/b offset by 128; HSV: H 0–179) and truncated back to
    uint8, exactly as Deforum's ``maintain_colors``. ``strength`` 0 returns ``image``, 1 the full
    match; between, the two are mixed in RGB. Returns ``uint8 (H, W, 3)`` RGB.
    """
    space = _color_space(space)
    if not 0.0 <= strength <= 1.0:
        raise ConfigError("color_match_strength", strength, "0..1")
    src, ref = _rgb(image, "image"), _rgb(reference, "reference")
    if strength == 0.0:
        return src.copy()
    forward, back = _TO_SPACE.get(space, (None, None))
    src_c = src if forward is None else cv2.cvtColor(src, forward)
    ref_c = ref if forward is None else cv2.cvtColor(ref, forward)
    matched = np.stack([match_cdf(src_c[..., c], ref_c[..., c]) for c in range(3)], axis=-1).astype(np.uint8)
    out = matched if back is None else back(matched)
    if strength == 1.0:
        return out
    mixed = src.astype(np.float32) * (1.0 - strength) + out.astype(np.float32) * strength
    return np.clip(np.rint(mixed), 0, 255).astype(np.uint8)


def match_cdf(source: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``source`` remapped so its value distribution follows ``reference``'s; float64, ``source``'s shape.

    Histogram specification by quantiles (scikit-image's ``match_histograms`` per channel): each
    distinct source value goes to the reference value at the same cumulative share of pixels,
    linearly interpolated between the reference's distinct values. Works for uint8 and float input.
    """
    values, inverse, counts = np.unique(source.ravel(), return_inverse=True, return_counts=True)
    ref_values, ref_counts = np.unique(reference.ravel(), return_counts=True)
    quantiles = np.cumsum(counts) / source.size
    ref_quantiles = np.cumsum(ref_counts) / reference.size
    mapped = np.interp(quantiles, ref_quantiles, ref_values)
    return mapped[inverse.ravel()].reshape(source.shape)


def _color_space(space: ColorSpace | str) -> ColorSpace:
    try:
        return ColorSpace(str(getattr(space, "value", space)).lower())
    except ValueError as e:
        raise ConfigError("color_space", space, [s.value for s in ColorSpace]) from e


def _rgb(image: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(image)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"{name}: expected a uint8 (H, W, 3) RGB array, got {arr.dtype} {arr.shape}")
    return arr
