"""Schedules over a clip's frames: context windows and prompt travel."""

from .context import CLOSED_LOOP, context_windows
from .prompts import PromptTravel, pad_to_same_length, parse_prompt_travel, slerp, travel_is_closed

__all__ = [
    "CLOSED_LOOP",
    "PromptTravel",
    "context_windows",
    "pad_to_same_length",
    "parse_prompt_travel",
    "slerp",
    "travel_is_closed",
]
