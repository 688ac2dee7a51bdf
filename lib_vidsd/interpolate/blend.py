"""Linear cross-fade between two frames: the model-free baseline interpolator."""

from __future__ import annotations

from typing import Sequence

import numpy as np


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Round a float image to the nearest integer and clip it to ``uint8`` (same shape)."""
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def blend(a: np.ndarray, b: np.ndarray, ts: Sequence[float]) -> list[np.ndarray]:
    """Cross-fade ``(1 - t) * a + t * b`` for every ``t`` in ``ts``, rounded to ``uint8``.

    ``a`` and ``b`` are ``uint8 (H, W, 3)`` frames at times 0 and 1; ``ts`` lie in ``(0, 1)``.
    Returns one ``uint8 (H, W, 3)`` frame per ``t``. Moving edges appear twice (ghosting):
    use ``flow`` where things move.
    """
    fa = a.astype(np.float32)
    fb = b.astype(np.float32)
    return [to_uint8((1.0 - t) * fa + t * fb) for t in ts]
