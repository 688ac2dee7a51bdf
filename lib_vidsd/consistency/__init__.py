"""Temporal consistency helpers: colour matching against a reference frame; patch-match deflickering
(FastBlend's smoother) and keyframe propagation.

The deflicker entry point is ``lib_vidsd.consistency.deflicker.deflicker``; it is not re-exported here,
where its name would hide the ``deflicker`` submodule.
"""

from .color import match_histograms_lab
from .deflicker import BlendMode, interpolate_keyframes
from .patchmatch import MatchSettings, PatchMatcher, RandomSource, SeededRandom, StyleTerm

__all__ = [
    "BlendMode",
    "MatchSettings",
    "PatchMatcher",
    "RandomSource",
    "SeededRandom",
    "StyleTerm",
    "interpolate_keyframes",
    "match_histograms_lab",
]
