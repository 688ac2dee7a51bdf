"""Colour correction: bring a frame's colour distribution to a reference frame's.

The match is done per channel in CIELAB (OpenCV's 8-bit L*a*b*), the way A1111's img2img colour
correction does it, so lightness and the two colour axes are matched separately and hue shifts
drifting in over a clip are pulled back to the reference (the first output of a multi-frame job).
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
from PIL import Image


def _rgb_array(image: Any) -> np.ndarray:
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"), dtype=np.uint8)
    arr = np.asarray(image)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"expected a uint8 (H, W, 3) RGB array, got {arr.dtype} {arr.shape}")
    return arr


def match_channel(source: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``source`` values remapped so their histogram follows ``reference``'s (any shapes, uint8).

    Classic histogram specification: each distinct source value goes to the reference value at the
    same cumulative share of pixels, interpolated between the reference's distinct values.
    """
    values, inverse, counts = np.unique(source.ravel(), return_inverse=True, return_counts=True)
    ref_values, ref_counts = np.unique(reference.ravel(), return_counts=True)
    quantiles = np.cumsum(counts) / source.size
    ref_quantiles = np.cumsum(ref_counts) / reference.size
    mapped = np.interp(quantiles, ref_quantiles, ref_values.astype(np.float64))
    return np.clip(np.rint(mapped), 0, 255).astype(np.uint8)[inverse].reshape(source.shape)


def match_histograms_lab(image: Any, reference: Any, strength: float = 1.0) -> np.ndarray:
    """``image`` with each L*a*b* channel's histogram matched to ``reference``'s, blended by ``strength``.

    ``image`` and ``reference`` are PIL images or ``uint8 (H, W, 3)`` RGB arrays (sizes may differ).
    ``strength`` 0 returns ``image`` unchanged, 1 the full match; between, the two are mixed in RGB.
    Returns ``uint8 (H, W, 3)`` RGB.
    """
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength must be within 0..1, got {strength}")
    src = _rgb_array(image)
    if strength == 0.0:
        return src.copy()
    src_lab = cv2.cvtColor(src, cv2.COLOR_RGB2LAB)
    ref_lab = cv2.cvtColor(_rgb_array(reference), cv2.COLOR_RGB2LAB)
    lab = np.stack([match_channel(src_lab[..., c], ref_lab[..., c]) for c in range(3)], axis=-1)
    matched = cv2.cvtColor(lab, cv2.COLOR_LAB2RGB)
    if strength == 1.0:
        return matched
    mixed = src.astype(np.float32) * (1.0 - strength) + matched.astype(np.float32) * strength
    return np.clip(np.rint(mixed), 0, 255).astype(np.uint8)
