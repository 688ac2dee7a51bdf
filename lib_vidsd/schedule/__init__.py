"""Schedules over a clip's frames: context windows, prompt travel, keyframe series, prompt keys, curves."""

from .context import CLOSED_LOOP, context_windows
from .curves import CURVE_NAMES, Curve, parse_curve, weight_function
from .keyframes import parse_seed_schedule, parse_series, parse_string_schedule
from .prompt_keys import PromptSchedule, parse_prompt_keyframes
from .prompts import PromptTravel, pad_to_same_length, parse_prompt_travel, slerp, travel_is_closed

__all__ = [
    "CLOSED_LOOP",
    "CURVE_NAMES",
    "Curve",
    "PromptSchedule",
    "PromptTravel",
    "context_windows",
    "pad_to_same_length",
    "parse_curve",
    "parse_prompt_keyframes",
    "parse_prompt_travel",
    "parse_seed_schedule",
    "parse_series",
    "parse_string_schedule",
    "slerp",
    "travel_is_closed",
    "weight_function",
]
