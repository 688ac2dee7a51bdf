"""Deflicker as a step of other features: AnimateDiff and Multi-frame outputs, the HTTP route, the CLI.

Everything goes through :func:`lib_vidsd.consistency.deflicker.deflicker` with the settings of one
:class:`~lib_vidsd.config.DeflickerParams`: the output options (``deflicker`` and ``deflicker_window`` on
``AnimateDiffParams`` / ``MultiFrameParams``) pick the mode and window and keep every other setting at
its ``DeflickerParams`` default, so an output deflickered by a feature equals the standalone pass with
the same mode and window (``python -m lib_vidsd deflicker --mode M --window W``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..config import DeflickerMode, DeflickerParams, validate
from ..errors import ConfigError
from ..progress import ProgressSink, StopToken


def option_settings(mode: DeflickerMode | str, window: int) -> DeflickerParams | None:
    """The full settings of an output option; ``None`` when ``mode`` is ``none``."""
    if DeflickerMode(mode) is DeflickerMode.NONE:
        return None
    return validate(DeflickerParams, mode=DeflickerMode(mode).value, window=window)


def check_frame_size(settings: DeflickerParams | None, width: int, height: int, *, field: str = "deflicker") -> None:
    """Refuse, before any rendering, frames too small for the matcher's patch pyramid (the image must be
    at least twice the largest patch, ``patch_size + 2 * (iterations - 1)``). ``field`` names the
    option the error is about."""
    if settings is None:
        return
    from .patchmatch import MatchSettings, pyramid_sizes

    try:
        pyramid_sizes(height, width, MatchSettings(patch_size=settings.patch_size, iterations=settings.iterations))
    except ConfigError as e:
        least = 2 * (settings.patch_size + 2 * (settings.iterations - 1))
        if field == "deflicker":
            value, allowed = settings.mode.value, f"none for frames under {least} px on a side"
        else:
            value, allowed = getattr(settings, field, None), f"a smaller value ({e.allowed})"
        raise ConfigError(field, value, allowed, f"{width}x{height} frames are too small for patch matching") from e


def run_deflicker(
    frames: Sequence[Any],
    settings: DeflickerParams,
    *,
    guide: Sequence[Any] | None = None,
    progress: ProgressSink | None = None,
    stop: StopToken | None = None,
    device: Any = None,
) -> list[np.ndarray]:
    """``frames`` (uint8 ``(H, W, 3)`` RGB, or PIL images) deflickered with ``settings``; ``guide`` (same
    count and size) carries the motion, ``None`` for the frames themselves. Raises
    :class:`~lib_vidsd.errors.Interrupted` when ``stop`` asks to stop."""
    from .deflicker import deflicker

    arrays = [_rgb(f) for f in frames]
    guides = None if guide is None else [_rgb(f) for f in guide]
    if len(arrays) < 2:  # nothing to blend with
        return arrays
    values = settings.dict()
    values["mode"] = settings.mode.value
    return deflicker(arrays, guide=guides, progress=progress, stop=stop, device=device, **values)


def deflicker_option(
    frames: Sequence[Any],
    mode: DeflickerMode | str,
    window: int,
    *,
    guide: Sequence[Any] | None = None,
    progress: ProgressSink | None = None,
    stop: StopToken | None = None,
) -> list[np.ndarray]:
    """An output option's pass: ``frames`` as RGB arrays, deflickered unless ``mode`` is ``none``."""
    settings = option_settings(mode, window)
    if settings is None:
        return [_rgb(f) for f in frames]
    return run_deflicker(frames, settings, guide=guide, progress=progress, stop=stop)


def _rgb(frame: Any) -> np.ndarray:
    if hasattr(frame, "convert"):  # a PIL image
        frame = frame.convert("RGB")
    array = np.asarray(frame)
    if array.ndim == 3 and array.shape[2] == 4:
        array = array[..., :3]
    return np.ascontiguousarray(array, dtype=np.uint8)
