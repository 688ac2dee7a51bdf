"""Keyframe animation core: 2D motion of the previous frame, latent/embedding travel, coherence.

Pure maths (numpy, OpenCV, torch); the schedules that feed these functions live in
``lib_vidsd.schedule`` and the WebUI glue in ``scripts/``.
"""

from __future__ import annotations

from lib_vidsd.keyframe.coherence import ColorSpace, LatentCoherence, match_colors
from lib_vidsd.keyframe.latents import (
    interpolate_keyframes,
    keyframe_noise,
    seed_schedule,
    slerp,
)
from lib_vidsd.keyframe.motion import BORDER_MODES, warp2d, warp_matrix

__all__ = [
    "BORDER_MODES",
    "ColorSpace",
    "LatentCoherence",
    "interpolate_keyframes",
    "keyframe_noise",
    "match_colors",
    "seed_schedule",
    "slerp",
    "warp2d",
    "warp_matrix",
]
