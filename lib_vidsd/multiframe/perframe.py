"""What changes from frame to frame besides the picture: the seed and the prompt."""

from __future__ import annotations

import numpy as np

from ..config import SeedMode
from ..errors import ConfigError
from ..schedule.prompts import parse_prompt_travel

SEED_LIMIT = 2**32


def frame_seed(mode: SeedMode | str, seed: int, index: int) -> int:
    """The seed of frame ``index``: ``fixed`` → ``seed``; ``increment`` → ``seed + index`` (wrapping at
    2³²); ``random`` → a number drawn from a generator keyed by ``(seed, index)``, so any frame's
    seed is known without the others (a resumed job draws the same ones). Frame 0 always gets ``seed``.
    """
    mode = SeedMode(mode)
    if index == 0 or mode is SeedMode.FIXED:
        return seed
    if mode is SeedMode.INCREMENT:
        return (seed + index) % SEED_LIMIT
    return int(np.random.SeedSequence([seed, index]).generate_state(1, dtype=np.uint32)[0])


class FramePrompts:
    """The prompt of each frame from the job's prompt and an optional ``frame_prompts`` text.

    * prompt-travel text (key lines ``N: …``, see :mod:`lib_vidsd.schedule.prompts`): each key's full
      prompt from its frame until the next key; frames before the first key get ``prompt``. Each frame
      is its own generation, so keys switch rather than blend;
    * other text: one prompt per non-blank line; frame ``k`` gets line ``k``, and the last line holds
      for the frames after it (a clip longer than the list keeps its last look rather than jumping
      back to the start);
    * empty text: every frame gets ``prompt``, unless ``prompt`` itself has key lines (the
      AnimateDiff convention): then it travels, frames before its first key taking that key's prompt.
    """

    def __init__(self, prompt: str, text: str, num_frames: int):
        self.prompt = prompt
        own = bool(text.strip())
        travel = _travel(text if own else prompt, num_frames, "frame_prompts" if own else "prompt")
        if travel is not None:
            before_first = prompt if own else travel.keyframes[0][1]
            self.lines = [p or before_first for p in travel.per_frame_prompts()]
        else:
            self.lines = [line.strip() for line in text.splitlines() if line.strip()]

    def __getitem__(self, index: int) -> str:
        if not self.lines:
            return self.prompt
        return self.lines[min(index, len(self.lines) - 1)]


def _travel(text: str, num_frames: int, field: str):
    """``parse_prompt_travel`` with its errors naming ``field``."""
    if not text.strip():
        return None
    try:
        return parse_prompt_travel(text, max(num_frames, 1))
    except ConfigError as e:
        raise ConfigError(field, e.value, e.allowed, e.hint) from e
