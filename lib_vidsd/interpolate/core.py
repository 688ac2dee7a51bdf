"""Frame interpolation over a clip: validation, the method registry, scene cuts, progress."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from ..errors import ConfigError
from ..progress import ProgressSink, StopToken, check_stop
from .blend import blend
from .flow import flow_interpolate
from .mci import mci

log = logging.getLogger("vidsd.interpolate")

MAX_FACTOR = 64


@dataclass(frozen=True)
class Method:
    """An interpolator: ``run(a, b, ts, **options)`` returns one ``uint8 (H, W, 3)`` frame per ``t``.

    ``options`` names the keyword arguments ``run`` accepts; ``needs_model`` says whether ``run``
    also takes ``model=`` (a loaded network); model-free methods ignore any model given.
    """

    run: Callable[..., list[np.ndarray]]
    options: tuple[str, ...] = ()
    needs_model: bool = False


#: interpolators by name; model-based ones register here too
METHODS: dict[str, Method] = {
    "blend": Method(blend),
    "flow": Method(flow_interpolate, options=("flow_algorithm", "dis_preset")),
    # ffmpeg's minterpolate, one ffmpeg run per gap (use mci.mci_clip for a whole clip in one run)
    "mci": Method(mci),
}


def _as_array(frame: Any, index: int) -> np.ndarray:
    if not isinstance(frame, np.ndarray) and hasattr(frame, "convert"):  # a PIL image
        frame = np.asarray(frame.convert("RGB"))
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        desc = f"{type(frame).__name__} {getattr(frame, 'dtype', '')} {getattr(frame, 'shape', '')}".strip()
        raise ConfigError("frames", f"frame {index}: {desc}", "uint8 (H, W, 3) RGB arrays or PIL images")
    return frame


def _check_frames(frames: Sequence[Any]) -> list[np.ndarray]:
    arrays = [_as_array(f, i) for i, f in enumerate(frames)]
    if not arrays:
        raise ConfigError("frames", 0, "at least one frame")
    size = arrays[0].shape
    for i, f in enumerate(arrays):
        if f.shape != size:
            raise ConfigError("frames", f"frame {i}: {f.shape}", f"all frames of size {size}")
    return arrays


def _check_factor(factor: Any) -> int:
    if isinstance(factor, bool) or not isinstance(factor, (int, np.integer)) or not 1 <= factor <= MAX_FACTOR:
        raise ConfigError("factor", factor, f"an integer from 1 to {MAX_FACTOR}")
    return int(factor)


def _check_threshold(scene_threshold: Any) -> float | None:
    if scene_threshold is None:
        return None
    if isinstance(scene_threshold, bool) or not isinstance(scene_threshold, (int, float, np.number)):
        raise ConfigError("scene_threshold", scene_threshold, "None or a number from 0 to 255")
    if not 0 <= scene_threshold <= 255:
        raise ConfigError("scene_threshold", scene_threshold, "None or a number from 0 to 255")
    return float(scene_threshold)


def _get_method(method: str, model: Any, options: dict[str, Any]) -> Method:
    if method not in METHODS:
        raise ConfigError("method", method, list(METHODS))
    entry = METHODS[method]
    for name, value in options.items():
        if name not in entry.options:
            raise ConfigError(name, value, f"an option of method {method!r}: {', '.join(entry.options) or 'none'}")
    if entry.needs_model and model is None:
        raise ConfigError("model", None, f"a loaded model for method {method!r}")
    if model is not None and not entry.needs_model:
        log.debug("method %r uses no model; ignoring the one given", method)
    return entry


def mean_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two ``uint8`` frames, on the 0..255 scale."""
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def interpolate(
    frames: Sequence[Any],
    factor: int,
    method: str = "blend",
    model: Any = None,
    *,
    loop: bool = False,
    scene_threshold: float | None = None,
    progress: ProgressSink | None = None,
    stop: StopToken | None = None,
    **options: Any,
) -> list[np.ndarray]:
    """Multiply a clip's frame rate by ``factor``, inserting ``factor - 1`` frames in each gap.

    ``frames``: ``uint8 (H, W, 3)`` RGB arrays or PIL images, all the same size. New frames sit at
    ``t = k / factor`` (``k = 1 .. factor - 1``) between each neighbouring pair, so ``n`` frames
    become ``(n - 1) * factor + 1``; with ``loop=True`` the gap from the last frame back to the
    first is filled too, giving ``n * factor`` frames. ``factor=1`` returns the frames unchanged.
    Original frames are kept exactly.

    ``method``: a name in :data:`METHODS` (``"blend"``, ``"flow"``, ``"mci"``); ``options`` are passed to it
    (``flow_algorithm="farneback"``, ``dis_preset="fast"`` for ``"flow"``). ``model`` is for
    model-based methods. ``scene_threshold``: a gap whose neighbours differ by more than this mean
    absolute difference (0..255) is a scene cut and is filled with copies of its first frame.
    ``progress`` is called with (gaps done, gaps total, text); ``stop`` is checked before each gap
    (:class:`~lib_vidsd.errors.Interrupted`).

    Returns a list of ``uint8 (H, W, 3)`` arrays.
    """
    factor = _check_factor(factor)
    threshold = _check_threshold(scene_threshold)
    entry = _get_method(method, model, options)
    arrays = _check_frames(frames)
    if factor == 1:
        return arrays
    ts = [k / factor for k in range(1, factor)]
    pairs = list(zip(arrays, arrays[1:], strict=False))
    if loop:
        pairs.append((arrays[-1], arrays[0]))
    extra = {"model": model} if entry.needs_model else {}
    out: list[np.ndarray] = []
    for i, (a, b) in enumerate(pairs):
        check_stop(stop, f"interpolating gap {i + 1} of {len(pairs)}")
        out.append(a)
        if threshold is not None and mean_abs_diff(a, b) > threshold:
            log.debug("gap %d is a scene cut; repeating its first frame", i)
            out.extend(a.copy() for _ in ts)
        else:
            out.extend(entry.run(a, b, ts, **options, **extra))
        if progress is not None:
            progress(i + 1, len(pairs), f"interpolating ({method})")
    if not loop:
        out.append(arrays[-1])
    return out
