"""Keyframe animation core: the per-frame plan and render loop, 2D motion of the previous frame,
latent/embedding travel, coherence, audio-driven key frames and weights.

Pure maths (numpy, OpenCV, torch); the schedules that feed these functions live in
``lib_vidsd.schedule`` and the WebUI glue in ``scripts/``.
"""

from __future__ import annotations

from lib_vidsd.keyframe.audio import (
    AUDIO_COMPONENTS,
    MEL_REDUCE,
    AudioKeyframes,
    audio_keyframes,
    audio_weights,
    load_audio,
)
from lib_vidsd.keyframe.coherence import ColorSpace, LatentCoherence, match_colors
from lib_vidsd.keyframe.job import KeyframeJob, KeyframeRequest, KeyframeResult
from lib_vidsd.keyframe.latents import (
    interpolate_keyframes,
    keyframe_noise,
    seed_schedule,
    slerp,
)
from lib_vidsd.keyframe.motion import BORDER_MODES, warp2d, warp_matrix
from lib_vidsd.keyframe.plan import AnimationPlan, FramePlan, animation_fps, audio_inputs, plan_animation

__all__ = [
    "AUDIO_COMPONENTS",
    "BORDER_MODES",
    "MEL_REDUCE",
    "AnimationPlan",
    "AudioKeyframes",
    "ColorSpace",
    "FramePlan",
    "KeyframeJob",
    "KeyframeRequest",
    "KeyframeResult",
    "LatentCoherence",
    "animation_fps",
    "audio_inputs",
    "audio_keyframes",
    "audio_weights",
    "interpolate_keyframes",
    "keyframe_noise",
    "load_audio",
    "match_colors",
    "plan_animation",
    "seed_schedule",
    "slerp",
    "warp2d",
    "warp_matrix",
]
