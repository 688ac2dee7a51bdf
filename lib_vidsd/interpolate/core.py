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
_EPS = 1e-6  # positions this close to a source frame are that frame


@dataclass(frozen=True)
class Method:
    """An interpolator: ``run(a, b, ts, **options)`` returns one ``uint8 (H, W, 3)`` frame per ``t``.

    ``options`` names the keyword arguments ``run`` accepts; ``needs_model`` says whether ``run``
    also takes ``model=`` (a loaded network); model-free methods ignore any model given.
    """

    run: Callable[..., list[np.ndarray]]
    options: tuple[str, ...] = ()
    needs_model: bool = False


def _film(a: np.ndarray, b: np.ndarray, ts: Sequence[float], *, model: Any, pad: str | None = "64"):
    from .film import film_run  # torch is imported only when a network runs

    return film_run(a, b, ts, model=model, pad=pad)


def _rife(a: np.ndarray, b: np.ndarray, ts: Sequence[float], *, model: Any, scale: float = 1.0, pad="comfyui"):
    from .rife import rife_run

    return rife_run(a, b, ts, model=model, scale=scale, pad=pad)


#: interpolators by name
METHODS: dict[str, Method] = {
    "blend": Method(blend),
    "flow": Method(flow_interpolate, options=("flow_algorithm", "dis_preset")),
    # ffmpeg's minterpolate, one ffmpeg run per gap (use mci.mci_clip for a whole clip in one run)
    "mci": Method(mci),
    # networks (load them with lib_vidsd.interpolate.weights): FILM fills a gap's frames in the
    # closest-to-midpoint order of its callers; RIFE takes every timestep directly
    "film": Method(_film, options=("pad",), needs_model=True),
    "rife": Method(_rife, options=("scale", "pad"), needs_model=True),
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


def _tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    if size <= tile:
        return [0]
    starts = list(range(0, size - tile, tile - overlap))
    return starts + [size - tile]


def _ramp(length: int, overlap: int, at_start: bool, at_end: bool) -> np.ndarray:
    """Blend weights along one side of a tile: rising over ``overlap`` pixels where a neighbour
    tile overlaps it, flat at the picture's own border."""
    w = np.ones(length, np.float32)
    if overlap:
        ramp = (np.arange(overlap, dtype=np.float32) + 1) / (overlap + 1)
        if not at_start:
            w[:overlap] = ramp
        if not at_end:
            w[-overlap:] = ramp[::-1]
    return w


def run_tiled(
    run: Callable[..., list[np.ndarray]], a: np.ndarray, b: np.ndarray, ts: Sequence[float], tile: int, overlap: int
) -> list[np.ndarray]:
    """``run(a, b, ts)`` on overlapping ``tile``-pixel squares of the frames, blended back together
    with linear ramps over the ``overlap`` pixels neighbours share. Memory is bounded by one tile
    whatever the frame size; motion larger than the overlap near a seam can show (a network sees
    no further than its tile), so tiles should be as large as memory allows."""
    h, w = a.shape[:2]
    acc = [np.zeros((h, w, 3), np.float32) for _ in ts]
    weight = np.zeros((h, w, 1), np.float32)
    ys, xs = _tile_starts(h, tile, overlap), _tile_starts(w, tile, overlap)
    for y in ys:
        for x in xs:
            th, tw = min(tile, h), min(tile, w)
            wy = _ramp(th, overlap, y == 0, y + th >= h)
            wx = _ramp(tw, overlap, x == 0, x + tw >= w)
            mask = (wy[:, None] * wx[None, :])[..., None]
            made = run(
                np.ascontiguousarray(a[y : y + th, x : x + tw]), np.ascontiguousarray(b[y : y + th, x : x + tw]), ts
            )
            for out, piece in zip(acc, made, strict=True):
                out[y : y + th, x : x + tw] += piece.astype(np.float32) * mask
            weight[y : y + th, x : x + tw] += mask
    return [np.clip(np.round(out / weight), 0, 255).astype(np.uint8) for out in acc]


def _check_tile(tile: Any, overlap: Any) -> tuple[int, int] | None:
    if tile is None:
        return None
    if isinstance(tile, bool) or not isinstance(tile, (int, np.integer)) or not 64 <= tile <= 8192:
        raise ConfigError("tile", tile, "None or a tile side of 64..8192 pixels")
    if isinstance(overlap, bool) or not isinstance(overlap, (int, np.integer)) or not 0 <= overlap <= tile // 2:
        raise ConfigError("tile_overlap", overlap, f"0..{tile // 2} pixels (at most half the tile)")
    return int(tile), int(overlap)


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
    tile: int | None = None,
    tile_overlap: int = 64,
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

    ``method``: a name in :data:`METHODS` (``"blend"``, ``"flow"``, ``"mci"``, ``"film"``, ``"rife"``);
    ``options`` are passed to it (``flow_algorithm="farneback"``, ``dis_preset="fast"`` for ``"flow"``).
    ``model`` is the loaded network of model-based methods. ``scene_threshold``: a gap whose
    neighbours differ by more than this mean absolute difference (0..255) is a scene cut and is
    filled with copies of its first frame. ``tile``: run the method on overlapping squares of this
    many pixels (``tile_overlap`` shared), for bounded memory on large frames with the networks.
    ``progress`` is called with (gaps done, gaps total, text); ``stop`` is checked before each gap
    (:class:`~lib_vidsd.errors.Interrupted`).

    Returns a list of ``uint8 (H, W, 3)`` arrays.
    """
    factor = _check_factor(factor)
    count = len(frames) if loop else len(frames) - 1
    positions = [i + k / factor for i in range(max(count, 0)) for k in range(factor)]
    if not loop or not positions:
        positions.append(float(max(len(frames) - 1, 0)))
    return interpolate_at(
        frames,
        positions,
        method,
        model,
        loop=loop,
        scene_threshold=scene_threshold,
        tile=tile,
        tile_overlap=tile_overlap,
        progress=progress,
        stop=stop,
        **options,
    )


def retime_positions(count: int, fps_in: float, fps_out: float, *, loop: bool = False) -> list[float]:
    """Where the frames of a clip of ``count`` frames at ``fps_in`` fall when shown at ``fps_out``.

    Output frame ``j`` shows the clip at time ``j / fps_out``, i.e. at position ``j * fps_in / fps_out``
    in source frames; the clip lasts ``count / fps_in`` seconds (a frame is on screen for its whole
    period), so ``round(count * fps_out / fps_in)`` frames come out (at least one).
    """
    for name, value in (("fps_in", fps_in), ("fps_out", fps_out)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1000:
            raise ConfigError(name, value, "a frame rate above 0 and at most 1000")
    total = max(1, round(count * fps_out / fps_in))
    last = count if loop else count - 1
    return [min(j * fps_in / fps_out, last) for j in range(total)]


def interpolate_at(
    frames: Sequence[Any],
    positions: Sequence[float],
    method: str = "blend",
    model: Any = None,
    *,
    loop: bool = False,
    scene_threshold: float | None = None,
    tile: int | None = None,
    tile_overlap: int = 64,
    progress: ProgressSink | None = None,
    stop: StopToken | None = None,
    **options: Any,
) -> list[np.ndarray]:
    """The clip's picture at each of ``positions``, in units of source frames (explicit timesteps).

    ``2.25`` is a quarter of the way from frame 2 to frame 3; whole numbers are the source frames
    themselves (kept exactly). Positions run from ``0`` to ``n - 1``, or up to ``n`` with
    ``loop=True`` (the gap from the last frame back to the first; ``n`` is frame 0 again).
    Positions inside one gap are handed to the method together, so FILM can fill them in its
    closest-to-midpoint order. Other arguments as in :func:`interpolate`.
    """
    threshold = _check_threshold(scene_threshold)
    tiling = _check_tile(tile, tile_overlap)
    entry = _get_method(method, model, options)
    arrays = _check_frames(frames)
    n = len(arrays)
    top = n if loop else n - 1
    wanted: list[tuple[int, float]] = []
    for i, pos in enumerate(positions):
        if isinstance(pos, bool) or not isinstance(pos, (int, float, np.number)) or not 0 <= pos <= top:
            raise ConfigError("positions", f"item {i}: {pos}", f"numbers from 0 to {top}")
        gap = min(int(pos), top - 1) if top > 0 else 0
        wanted.append((gap, float(pos) - gap))
    by_gap: dict[int, list[float]] = {}
    for gap, t in wanted:
        if _EPS < t < 1 - _EPS:
            by_gap.setdefault(gap, [])
            if t not in by_gap[gap]:
                by_gap[gap].append(t)
    made: dict[tuple[int, float], np.ndarray] = {}
    extra = {"model": model} if entry.needs_model else {}
    for done, (gap, ts) in enumerate(sorted(by_gap.items())):
        check_stop(stop, f"interpolating gap {gap + 1}")
        a, b = arrays[gap], arrays[(gap + 1) % n]
        ts.sort()
        if threshold is not None and mean_abs_diff(a, b) > threshold:
            log.debug("gap %d is a scene cut; repeating its first frame", gap)
            new = [a.copy() for _ in ts]
        elif tiling is not None:
            new = run_tiled(lambda x, y, t: entry.run(x, y, t, **options, **extra), a, b, ts, *tiling)
        else:
            new = entry.run(a, b, ts, **options, **extra)
        made.update({(gap, t): frame for t, frame in zip(ts, new, strict=True)})
        if progress is not None:
            progress(done + 1, len(by_gap), f"interpolating ({method})")
    out = []
    for gap, t in wanted:
        if t <= _EPS:
            out.append(arrays[gap])
        elif t >= 1 - _EPS:
            out.append(arrays[(gap + 1) % n])
        else:
            out.append(made[(gap, t)])
    return out
