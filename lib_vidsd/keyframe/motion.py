"""2D keyframe motion: zoom, turn and shift the previous frame before it is looped back through img2img.

Conventions are Deforum's (``anim_frame_warp_2d``): the matrix is ``R · T`` where ``T`` shifts by
``(translate_x, translate_y)`` pixels and ``R`` turns by ``angle`` degrees and scales by ``zoom`` about
the pivot. So the shift is applied *before* the zoom and turn (it is scaled by ``zoom`` and rotated
with the picture); a positive angle turns the picture counter-clockwise on screen; ``zoom > 1``
enlarges; +x moves content right and +y down. The pivot is a fraction of the image's own size
(Deforum took it from the run's W/H instead, which breaks when the frame size differs).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from lib_vidsd.errors import ConfigError

#: Border name -> OpenCV border mode for the pixels the warp pulls in from outside the frame.
#: ``reflect`` mirrors about the edge pixels' centres (OpenCV REFLECT_101, like torch's
#: ``grid_sample(padding_mode="reflection", align_corners=True)``); ``black`` fills with zeros.
BORDER_MODES: dict[str, int] = {
    "replicate": cv2.BORDER_REPLICATE,
    "reflect": cv2.BORDER_REFLECT_101,
    "wrap": cv2.BORDER_WRAP,
    "black": cv2.BORDER_CONSTANT,
}


def warp_matrix(
    width: int,
    height: int,
    *,
    zoom: float,
    angle: float,
    translate_x: float,
    translate_y: float,
    pivot: tuple[float, float] = (0.5, 0.5),
) -> np.ndarray:
    """The ``(3, 3)`` float64 forward map (source pixel -> destination pixel) of :func:`warp2d`.

    ``angle`` in degrees (+ = counter-clockwise on screen), ``zoom`` a scale factor (not 0),
    ``translate_*`` in source pixels, ``pivot`` as fractions ``(x, y)`` of ``(width, height)``:
    the centre is ``(width·px, height·py)`` (so 0.5 is ``W/2``, not ``(W-1)/2``, as in Deforum).
    """
    _check_zoom(zoom)
    cx, cy = width * pivot[0], height * pivot[1]
    theta = math.radians(angle)
    a, b = zoom * math.cos(theta), zoom * math.sin(theta)
    rotate = np.array([[a, b, (1 - a) * cx - b * cy], [-b, a, b * cx + (1 - a) * cy], [0.0, 0.0, 1.0]])
    shift = np.array([[1.0, 0.0, translate_x], [0.0, 1.0, translate_y], [0.0, 0.0, 1.0]])
    return rotate @ shift


def warp2d(
    image: np.ndarray,
    *,
    zoom: float,
    angle: float,
    translate_x: float,
    translate_y: float,
    pivot: tuple[float, float] = (0.5, 0.5),
    border: str = "replicate",
) -> np.ndarray:
    """``image`` (``uint8 (H, W, 3)``, any channel order) moved by one frame's motion values.

    See :func:`warp_matrix` for the conventions. Sampling is OpenCV bilinear; ``border`` is one of
    :data:`BORDER_MODES`. ``warpPerspective`` with the 3×3 matrix (not ``warpAffine``, whose
    fixed-point coordinates differ by a few levels) gives Deforum's bytes exactly. Returns a new
    ``uint8 (H, W, 3)`` array.
    """
    if border not in BORDER_MODES:
        raise ConfigError("border", border, sorted(BORDER_MODES))
    arr = np.asarray(image)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"expected a uint8 (H, W, 3) image, got {arr.dtype} {arr.shape}")
    height, width = arr.shape[:2]
    matrix = warp_matrix(
        width, height, zoom=zoom, angle=angle, translate_x=translate_x, translate_y=translate_y, pivot=pivot
    )
    return cv2.warpPerspective(
        arr, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=BORDER_MODES[border], borderValue=0
    )


def _check_zoom(zoom: float) -> None:
    """Zoom 0 collapses the frame to a point (Deforum renders garbage, kornia 0.7 raises): refuse it."""
    if not math.isfinite(zoom) or zoom == 0:
        raise ConfigError("zoom", zoom, "a finite non-zero factor (1 = no zoom)")
