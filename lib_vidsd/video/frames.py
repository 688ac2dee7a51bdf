"""Frame conversions: whatever a caller hands us → ``uint8 (H, W, 3)`` RGB, and fitting to a size."""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image

from ..config import FitMode
from ..errors import ConfigError


def to_rgb(frame: Any, index: int = 0) -> np.ndarray:
    """A PIL image or an array (H, W), (H, W, 3) or (H, W, 4) → contiguous ``uint8 (H, W, 3)``.

    Float arrays are taken as 0..1 and rounded; alpha is dropped.
    """
    if isinstance(frame, Image.Image):
        if frame.mode != "RGB":
            frame = frame.convert("RGB")
        return np.array(frame, dtype=np.uint8)  # a writable copy
    arr = np.asarray(frame)
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise ConfigError(f"frames[{index}]", f"array of shape {arr.shape}", "(H, W), (H, W, 3) or (H, W, 4)")
    if arr.shape[2] == 4:
        arr = arr[:, :, :3]
    if arr.dtype != np.uint8:
        if np.issubdtype(arr.dtype, np.floating):
            arr = np.clip(np.rint(arr * 255.0), 0, 255)
        arr = arr.astype(np.uint8)
    return np.ascontiguousarray(arr)


def fit_frame(frame: np.ndarray, size: tuple[int, int], mode: FitMode | str = FitMode.CROP) -> np.ndarray:
    """Bring ``frame`` to ``size`` = (width, height).

    ``crop`` scales to cover and cuts the centre; ``resize`` stretches; ``pad`` scales to fit
    and centres it on black.
    """
    mode = FitMode(mode)
    w, h = size
    src_h, src_w = frame.shape[:2]
    if (src_w, src_h) == (w, h):
        return frame
    img = Image.fromarray(frame)
    if mode is FitMode.RESIZE:
        return np.array(img.resize((w, h), Image.LANCZOS))
    scale = max(w / src_w, h / src_h) if mode is FitMode.CROP else min(w / src_w, h / src_h)
    new_w = max(1, round(src_w * scale))
    new_h = max(1, round(src_h * scale))
    img = img.resize((new_w, new_h), Image.LANCZOS)
    if mode is FitMode.CROP:
        left = (new_w - w) // 2
        top = (new_h - h) // 2
        return np.array(img.crop((left, top, left + w, top + h)))
    canvas = Image.new("RGB", (w, h))
    canvas.paste(img, ((w - new_w) // 2, (h - new_h) // 2))
    return np.array(canvas)
