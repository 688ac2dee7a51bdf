"""Motion modules: layers, checkpoint families and loading, motion LoRAs.

``detect_family(state_dict)`` → ``v1, v2, v3, sdxl, hotshotxl, animatelcm`` (names and shapes
only); ``load_motion_module(path_or_state_dict, device=None, dtype=None)`` → :class:`MotionModule`
(``.family``, ``.context_limit``, ``.is_sdxl``, ``.group_norm_over_frames``);
``noise_schedule(family)`` → the ``alphas_cumprod`` to use while it is injected;
``apply_motion_loras(module, [(lora, weight), …])`` → undo callable.
"""

from .families import FAMILIES, Family, canonical_keys, detect_family, get_family, noise_schedule
from .injection import MotionPatch, inject
from .layers import TemporalModule, sinusoid_table
from .loading import load_motion_module, probe_family, read_state_dict
from .lora import apply_motion_loras, parse_motion_lora
from .model import MotionLevel, MotionModule, build_motion_module

__all__ = [
    "FAMILIES",
    "Family",
    "MotionLevel",
    "MotionModule",
    "MotionPatch",
    "TemporalModule",
    "apply_motion_loras",
    "build_motion_module",
    "canonical_keys",
    "detect_family",
    "get_family",
    "inject",
    "load_motion_module",
    "noise_schedule",
    "parse_motion_lora",
    "probe_family",
    "read_state_dict",
    "sinusoid_table",
]
