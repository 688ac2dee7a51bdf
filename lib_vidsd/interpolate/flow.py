"""Optical-flow interpolation with OpenCV: warp both neighbours to time ``t`` and blend them.

Method, for frames ``a`` (time 0) and ``b`` (time 1), all maps ``(H, W)`` in pixels:

1. Dense flow both ways on the grey images: ``F_ab`` (``a(x) ~ b(x + F_ab(x))``) and ``F_ba``,
   with DIS (Kroeger et al., ECCV 2016; preset ``medium`` by default) or Farneback (SCIA 2003).
2. Backward warping with ``cv2.remap``: a point seen at ``x`` at time ``t`` was at
   ``x + t * F_ba(x)`` in ``a`` and is at ``x + (1 - t) * F_ab(x)`` in ``b``, so
   ``A_t(x) = a(x + t F_ba(x))`` and ``B_t(x) = b(x + (1 - t) F_ab(x))``. This samples the flow
   at ``x`` instead of at the moving point, which is exact for smooth motion (pans, zooms).
3. Forward-backward consistency: ``e_a(p) = |F_ab(p) + F_ba(p + F_ab(p))|`` is near 0 where a
   pixel of ``a`` is visible in ``b`` and large where it is occluded (likewise ``e_b``). Each warp
   gets the confidence ``c = exp(-e^2 / (2 sigma^2))`` of the pixel it samples.
4. ``I_t = (w_a A_t + w_b B_t) / (w_a + w_b)`` with ``w_a = (1 - t) c_a``, ``w_b = t c_b`` (plus a
   tiny floor so the plain ``(1 - t, t)`` blend is kept where both sides are unsure).

OpenCV (``opencv-python-headless``) is imported only when this method runs.
"""

from __future__ import annotations

import functools
from typing import Any, Sequence

import numpy as np

from ..errors import ConfigError

FLOW_ALGORITHMS = ("dis", "farneback")
DIS_PRESETS = ("ultrafast", "fast", "medium")
#: round-trip error (pixels) at which a side's weight falls to exp(-1/2)
OCCLUSION_SIGMA = 1.0
_WEIGHT_FLOOR = 1e-4


def _cv2() -> Any:
    try:
        import cv2
    except ImportError as e:
        raise ImportError(
            "interpolation method 'flow' needs OpenCV: pip install 'opencv-python-headless>=4.8,<5'"
        ) from e
    return cv2


def _grey(cv2: Any, image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)


@functools.lru_cache(maxsize=4)
def _dis(preset: str):
    """One DIS object per preset, reused (creating it costs about as much as a small flow)."""
    cv2 = _cv2()
    return cv2.DISOpticalFlow_create(getattr(cv2, f"DISOPTICAL_FLOW_PRESET_{preset.upper()}"))


def _flow_grey(cv2: Any, ga: np.ndarray, gb: np.ndarray, algorithm: str, dis_preset: str) -> np.ndarray:
    if algorithm == "farneback":
        flow = cv2.calcOpticalFlowFarneback(ga, gb, None, 0.5, 4, 15, 3, 5, 1.2, 0)
    else:
        flow = _dis(dis_preset).calc(ga, gb, None)
    return np.ascontiguousarray(flow, dtype=np.float32)


def _check(algorithm: str, dis_preset: str) -> None:
    if algorithm not in FLOW_ALGORITHMS:
        raise ConfigError("flow_algorithm", algorithm, list(FLOW_ALGORITHMS))
    if dis_preset not in DIS_PRESETS:
        raise ConfigError("dis_preset", dis_preset, list(DIS_PRESETS))


def compute_flow(a: np.ndarray, b: np.ndarray, algorithm: str = "dis", dis_preset: str = "medium") -> np.ndarray:
    """Dense flow from ``a`` to ``b`` (``uint8 (H, W, 3)`` RGB): ``float32 (H, W, 2)``, (dx, dy) in pixels.

    ``a(x) ~ b(x + flow(x))``. ``algorithm`` is ``"dis"`` or ``"farneback"``; ``dis_preset`` one of
    :data:`DIS_PRESETS`.
    """
    _check(algorithm, dis_preset)
    cv2 = _cv2()
    return _flow_grey(cv2, _grey(cv2, a), _grey(cv2, b), algorithm, dis_preset)


@functools.lru_cache(maxsize=4)
def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates ``(xs, ys)``, ``float32 (h, w)`` each; cached per size (read-only)."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    xs.flags.writeable = ys.flags.writeable = False
    return xs, ys


def _remap(cv2: Any, image: np.ndarray, xs: np.ndarray, ys: np.ndarray, flow: np.ndarray, scale: float) -> np.ndarray:
    """Sample ``image`` at ``(x, y) + scale * flow(x, y)`` (bilinear, borders replicated)."""
    map_x = xs + scale * flow[..., 0]
    map_y = ys + scale * flow[..., 1]
    return cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def consistency_error(cv2: Any, fwd: np.ndarray, bwd: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Round-trip error ``|fwd(p) + bwd(p + fwd(p))|`` in pixels: ``float32 (H, W)``."""
    round_trip = fwd + _remap(cv2, bwd, xs, ys, fwd, 1.0)
    return cv2.magnitude(round_trip[..., 0], round_trip[..., 1])


def _confidence(cv2: Any, error: np.ndarray) -> np.ndarray:
    return cv2.exp(error * error * np.float32(-1.0 / (2 * OCCLUSION_SIGMA**2)))


def flow_interpolate(
    a: np.ndarray,
    b: np.ndarray,
    ts: Sequence[float],
    *,
    flow_algorithm: str = "dis",
    dis_preset: str = "medium",
) -> list[np.ndarray]:
    """Frames between ``a`` (t=0) and ``b`` (t=1), ``uint8 (H, W, 3)``, one per ``t`` in ``ts``.

    Flow is computed once per pair and reused for every ``t``; see the module docstring for the
    method. ``flow_algorithm``: ``"dis"`` (default) or ``"farneback"``; ``dis_preset``:
    ``"ultrafast"``, ``"fast"`` or ``"medium"`` (default).
    """
    _check(flow_algorithm, dis_preset)
    cv2 = _cv2()
    ga, gb = _grey(cv2, a), _grey(cv2, b)
    f_ab = _flow_grey(cv2, ga, gb, flow_algorithm, dis_preset)
    f_ba = _flow_grey(cv2, gb, ga, flow_algorithm, dis_preset)
    h, w = a.shape[:2]
    xs, ys = _grid(h, w)
    conf_a = _confidence(cv2, consistency_error(cv2, f_ab, f_ba, xs, ys))
    conf_b = _confidence(cv2, consistency_error(cv2, f_ba, f_ab, xs, ys))
    out = []
    for t in ts:
        maps_a = (xs + t * f_ba[..., 0], ys + t * f_ba[..., 1])
        maps_b = (xs + (1.0 - t) * f_ab[..., 0], ys + (1.0 - t) * f_ab[..., 1])
        warp_a = cv2.remap(a, *maps_a, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        warp_b = cv2.remap(b, *maps_b, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        w_a = (1.0 - t) * (
            cv2.remap(conf_a, *maps_a, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE) + _WEIGHT_FLOOR
        )
        w_b = t * (cv2.remap(conf_b, *maps_b, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE) + _WEIGHT_FLOOR)
        # (w_a·A + w_b·B) / (w_a + w_b) per pixel, on the uint8 warps, rounded and saturated
        out.append(cv2.blendLinear(warp_a, warp_b, w_a.astype(np.float32), w_b.astype(np.float32)))
    return out
