"""Prompt keyframes for keyframe animation: ``N: text`` lines (Giffusion) or a JSON object (Deforum).

Two forms are accepted for the same schedule::

    0: a picture of a corgi          {"0": "a picture of a corgi",
    60: a picture of a lion           "max_f": "a picture of a lion"}

Lines: each non-blank line is ``digits:`` then the prompt, kept exactly as written after the colon
(leading space and ``\\r`` included, as Giffusion keeps them), and *without* losing the last
character when there is no trailing newline (Giffusion's defect). JSON: Deforum's object of key →
prompt; a key is a frame number or an expression in ``max_f`` and ``s``, as in
:func:`~lib_vidsd.schedule.keyframes.parse_series`.

In both forms keys are sorted (text order does not matter, as in Deforum), a repeated frame keeps the
last prompt written, keys past the clip are ignored, and frames before the first key take its prompt
(Giffusion leaves them empty). Per frame, :meth:`PromptSchedule.rows` gives ``(prompt_a, prompt_b,
weight)`` for ``slerp(weight, embed(a), embed(b))``; segment weights come from
:mod:`~lib_vidsd.schedule.curves` and a segment's first frame overwrites the previous one's last, as
Giffusion writes them.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from ..errors import ConfigError
from .curves import WeightFn, linear_weights
from .keyframes import Item, key_frame

KEY_LINE = re.compile(r"[ \t]*(\d+)[ \t]*:(.*)", re.DOTALL)


@dataclass(frozen=True)
class PromptSchedule:
    """Prompt keyframes ``[(frame, prompt)]`` sorted by frame, over ``num_frames`` frames."""

    keyframes: list[tuple[int, str]]
    num_frames: int

    def per_frame_prompts(self) -> list[str]:
        """The prompt of the last key at or before each frame (the first key's before it): hard cuts."""
        out, index = [], 0
        for frame in range(self.num_frames):
            while index + 1 < len(self.keyframes) and self.keyframes[index + 1][0] <= frame:
                index += 1
            out.append(self.keyframes[index][1])
        return out

    def rows(self, weights: WeightFn = linear_weights) -> list[tuple[str, str, float]]:
        """``(prompt_a, prompt_b, weight)`` per frame: segment weights between consecutive keys,
        the first key's prompt before it and the last key's prompt after it (weight 0)."""
        first, last = self.keyframes[0][1], self.keyframes[-1][1]
        rows = [(first, first, 0.0)] * self.num_frames
        for frame in range(self.keyframes[-1][0] + 1, self.num_frames):
            rows[frame] = (last, last, 0.0)
        for (start, a), (end, b) in zip(self.keyframes, self.keyframes[1:], strict=False):
            for offset, weight in enumerate(weights(start, end)):
                rows[start + offset] = (a, b, float(weight))
        return rows


def _line_keys(text: str, field: str) -> list[tuple[int, str, int]]:
    """``(frame, prompt, character)`` for every key line; any other non-blank line is an error."""
    keys, pos = [], 0
    for line in text.split("\n"):
        match = KEY_LINE.fullmatch(line)
        if match:
            keys.append((int(match.group(1)), match.group(2), pos))
        elif line.strip():
            hint = f"line at character {pos} ({line.strip()[:40]!r}) is not 'frame: prompt'"
            raise ConfigError(field, text, "lines of 'frame: prompt'", hint)
        pos += len(line) + 1
    return keys


def _json_keys(text: str, num_frames: int, seed: int, field: str) -> list[tuple[int, str, int]]:
    """``(frame, prompt, -1)`` for every item of a Deforum JSON object."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(field, text, "a JSON object of frame → prompt", f"{e.msg} at character {e.pos}") from e
    if not isinstance(data, dict):
        raise ConfigError(field, text, "a JSON object of frame → prompt")
    keys = []
    for key, prompt in data.items():
        if not isinstance(prompt, str):
            raise ConfigError(field, text, "prompts as strings", f"the prompt of key {key!r} is {prompt!r}")
        keys.append((key_frame(Item(key, prompt, 0, 0), num_frames, seed, text, field), prompt, -1))
    return keys


def _resolve_frames(text: str, num_frames: int | None, field: str) -> int:
    """``num_frames``, or Giffusion's last key + 1 for line text when it is not given."""
    if num_frames is not None:
        return num_frames
    if text.lstrip().startswith("{"):
        raise ConfigError("num_frames", num_frames, "the clip length (needed for JSON prompts)")
    frames = [frame for frame, _, _ in _line_keys(text, field)]
    return max(frames, default=0) + 1


def parse_prompt_keyframes(
    text: str, num_frames: int | None = None, *, seed: int = -1, field: str = "prompts"
) -> PromptSchedule:
    """Parse prompt keyframes from ``N: text`` lines or a Deforum JSON object.

    Args:
        text: the prompt box; JSON when it starts with ``{``.
        num_frames: frames of the clip; ``None`` means the last key + 1 (Giffusion's length;
            lines only). ``max_f`` in JSON keys is ``num_frames - 1``.
        seed: the name ``s`` in JSON key expressions.

    Raises:
        ConfigError: no key, a line that is not ``frame: prompt``, malformed JSON, a non-string
            prompt, a key that is not a whole frame, or no key inside the clip.
    """
    frames = _resolve_frames(text, num_frames, field)
    if frames < 1:
        raise ConfigError("num_frames", frames, "1 or more")
    is_json = text.lstrip().startswith("{")
    found = _json_keys(text, frames, seed, field) if is_json else _line_keys(text, field)
    if not found:
        raise ConfigError(field, text, "at least one 'frame: prompt' key")
    keys = {frame: prompt for frame, prompt, _ in found if 0 <= frame < frames}
    if not keys:
        raise ConfigError(field, text, f"at least one key in frames 0..{frames - 1}")
    return PromptSchedule(sorted(keys.items()), frames)
