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
            # drawn where the generator lives (a CPU one with a CUDA latent), then moved
            where = self.generator.device if self.generator is not None else x.device
            noise = torch.randn(x.shape, generator=self.generator, dtype=x.dtype, device=where).to(x.device)
            x = x + self.noise_level * noise
        if self.reference is None:
            self.reference = x.clone()
        else:
            self.reference = self.alpha * x + (1.0 - self.alpha) * self.reference
        return x


class ColorSpace(str, Enum):
    """Where the per-channel histograms are matched: OpenCV's 8-bit encodings of each space
    (Deforum), or CIE L*a*b* in floating point (``lab_float``: Giffusion's kornia pipeline)."""

    RGB = "rgb"
    HSV = "hsv"
    LAB = "lab"
    LAB_FLOAT = "lab_float"


# sRGB (D65) <-> CIE XYZ, and the D65 white point: the standard values kornia uses
_RGB_TO_XYZ = np.array([[0.412453, 0.357580, 0.180423], [0.212671, 0.715160, 0.072169], [0.019334, 0.119193, 0.950227]])
_XYZ_TO_RGB = np.array(
    [[3.2404813432005266, -1.5371515162713185, -0.4985363261688878],
     [-0.9692549499965682, 1.8759900014898907, 0.0415559265582928],
     [0.0556466391351772, -0.2040413383665112, 1.0573110696453443]]
)  # fmt: skip
_WHITE = np.array([0.95047, 1.0, 1.08883])
_EPS = 0.008856  # (6/29)^3
_KAPPA = 7.787  # (29/6)^2 / 3


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB floats 0..1 ``(..., 3)`` → CIE L*a*b* (L 0..100, a/b signed), float32 arithmetic."""
    x = rgb.astype(np.float32)
    linear = np.where(x > 0.04045, ((x + 0.055) / 1.055) ** 2.4, x / 12.92)
    xyz = (linear @ _RGB_TO_XYZ.T.astype(np.float32)) / _WHITE.astype(np.float32)
    f = np.where(xyz > _EPS, np.cbrt(np.maximum(xyz, _EPS)), _KAPPA * xyz + 4 / 29)
    fx, fy, fz = f[..., 0], f[..., 1], f[..., 2]
    return np.stack([116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)], axis=-1).astype(np.float32)


def lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    """CIE L*a*b* ``(..., 3)`` → sRGB floats clipped to 0..1 (the inverse of :func:`rgb_to_lab`)."""
    lab = lab.astype(np.float32)
    fy = (lab[..., 0] + 16) / 116
    fx = lab[..., 1] / 500 + fy
    fz = np.maximum(fy - lab[..., 2] / 200, 0)
    f = np.stack([fx, fy, fz], axis=-1)
    xyz = np.where(f**3 > _EPS, f**3, (f - 4 / 29) / _KAPPA) * _WHITE.astype(np.float32)
    linear = xyz @ _XYZ_TO_RGB.T.astype(np.float32)
    srgb = np.where(
        linear > 0.0031308, 1.055 * np.power(np.maximum(linear, 0.0031308), 1 / 2.4) - 0.055, 12.92 * linear
    )
    return np.clip(srgb, 0, 1).astype(np.float32)


def _match_lab_float(src: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Giffusion's match: float L*a*b*, quantile mapping per channel, back to RGB, ``trunc(255·x)``."""
    lab_s, lab_r = rgb_to_lab(src / np.float32(255)), rgb_to_lab(ref / np.float32(255))
    matched = np.stack([match_cdf(lab_s[..., c], lab_r[..., c]) for c in range(3)], axis=-1)
    return (lab_to_rgb(matched) * 255).astype(np.uint8)


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
    if space is ColorSpace.LAB_FLOAT:
        out = _match_lab_float(src, ref)
    else:
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
