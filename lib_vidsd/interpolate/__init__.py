"""Frame interpolation without a network: cross-fade (``blend``) and optical flow (``flow``).

``interpolate(frames, factor, method)`` is the entry point; :data:`METHODS` lists the methods by name.
"""

from .blend import blend
from .core import MAX_FACTOR, METHODS, Method, interpolate, interpolate_at, mean_abs_diff, retime_positions
from .flow import DIS_PRESETS, FLOW_ALGORITHMS, compute_flow, flow_interpolate

__all__ = [
    "DIS_PRESETS",
    "FLOW_ALGORITHMS",
    "MAX_FACTOR",
    "METHODS",
    "Method",
    "blend",
    "compute_flow",
    "flow_interpolate",
    "interpolate",
    "interpolate_at",
    "mean_abs_diff",
    "retime_positions",
]
