"""Prompt travel: per-frame prompts from keyframe lines, and blending their conditionings.

Deforum's JSON prompt object is accepted too (the keyframe engine's form, see :func:`_json_keys`).

The text format is sd-webui-animatediff's (``scripts/animatediff_prompt.py``)::

    a lighthouse on a cliff, dusk        <- head lines (any number)
    0: calm sea                          <- key lines: digits, ":", one space, prompt
    8: stormy sea
    oil painting                         <- tail lines (any number)

Each key's full prompt is ``head + ", " + key text + ", " + tail`` (head and tail lines joined with
``", "``; the separators stay when head or tail is empty). Parsing rules, kept exactly as the
reference so saved prompts mean the same thing:

* the text is trimmed and split on ``"\\n"`` only (a ``"\\r"`` stays in its line);
* head: lines up to the first one starting with digits then ``":"``; from that line on, lines of
  the exact form ``digits: text`` are keys; the first other line (blank, ``5:oops``, `` 8: x``)
  and every line after it are tail;
* no key line at all: no travel (:func:`parse_prompt_travel` returns ``None``);
* a repeated key keeps its first position and takes the last text.

Where the reference fails with an assertion or a garbled prompt list, we raise
:class:`~lib_vidsd.errors.ConfigError` naming the key and its character position in the text:
a key frame ``>= num_frames``, keys not in ascending order.

Conditioning blend (``multi_cond`` there): every row ``i`` of the per-frame conditioning is replaced
by a spherical blend of the rows at the two keys around ``i`` (see :meth:`PromptTravel.blend_rows`).
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from typing import Mapping, Union

import torch

from ..config import ClosedLoop
from ..errors import ConfigError

log = logging.getLogger("vidsd.schedule.prompts")

KEY_START = re.compile(r"\d+:")
KEY_LINE = re.compile(r"(\d+): (.+)")
DOT_THRESHOLD = 0.9995
CHUNK_TOKENS = 77  # one CLIP chunk: BOS + 75 tokens + EOS

Cond = Union[torch.Tensor, Mapping[str, torch.Tensor]]


@dataclass(frozen=True)
class _Line:
    text: str
    pos: int  # character offset of the line in the untrimmed text


@dataclass(frozen=True)
class _Parts:
    head: list[str]
    keys: dict[int, tuple[str, int]]  # frame -> (key text, character offset of its first line)
    tail: list[str]


@dataclass(frozen=True)
class PromptTravel:
    """A parsed prompt-travel text.

    Attributes:
        keyframes: ``(frame, full prompt)`` in ascending frame order.
        num_frames: frames of the clip; every key frame is below it.
        batch_frames: rows of the latent batch (one prompt and one conditioning row each);
            ``num_frames`` unless the caller pads the batch (the reference pads clips shorter
            than the context to the context size; vidsd does not).
        original_text: the text as typed, to put back into the infotext.
    """

    keyframes: list[tuple[int, str]]
    num_frames: int
    batch_frames: int
    original_text: str

    @property
    def keys(self) -> list[int]:
        return [frame for frame, _ in self.keyframes]

    def per_frame_prompts(self) -> list[str]:
        """One prompt per latent-batch row: ``""`` before the first key, then each key's prompt
        until the next key; the last runs to the end of the batch (``batch_frames`` entries)."""
        prompts = [""] * self.keys[0]
        bounds = self.keys[1:] + [self.batch_frames]
        for (frame, prompt), end in zip(self.keyframes, bounds, strict=True):
            prompts += [prompt] * (end - frame)
        return prompts

    def batch_prompts(self, n_iter: int = 1) -> list[str]:
        """:meth:`per_frame_prompts` repeated ``n_iter`` times (A1111's batch count): the list to
        hand the host as the job's prompts."""
        return self.per_frame_prompts() * n_iter

    def blend_rows(self, closed: bool) -> list[tuple[int, int, int, float]]:
        """For each row ``i`` of the conditioning: ``(i, from_key, to_key, t)``.

        The row becomes ``slerp(cond[from_key], cond[to_key], t)``; ``from_key == to_key`` (with
        ``t == 0``) is a plain copy. ``from_key`` is the last key ``<= i`` and ``to_key`` the first
        key ``> i``. Open (``closed=False``): rows before the first key copy it, rows after the
        last key copy it. Closed: those rows blend across the wrap from the last key to the first,
        distances counted modulo ``batch_frames``.
        """
        return [self._row(i, closed) for i in range(self.batch_frames)]

    def _row(self, i: int, closed: bool) -> tuple[int, int, int, float]:
        keys = self.keys
        prev, nxt = (keys[-1], keys[0]) if closed else (keys[0], keys[-1])
        for k in keys:
            if k > i:
                nxt = k
                break
            prev = k
        n = self.batch_frames
        d_prev = i - prev + (n if i < prev else 0)
        d_next = nxt - i + (n if nxt < i else 0)
        if prev == nxt or d_prev + d_next == 0:
            return (i, prev, prev, 0.0)
        return (i, prev, nxt, d_prev / (d_prev + d_next))

    def blend(self, cond: Cond, closed: bool) -> Cond:
        """Blend per-frame conditioning along the keys.

        Args:
            cond: ``(batch_frames, T, C)`` (or any ``(batch_frames, ...)``) tensor, one row per
                frame, or a mapping of such tensors (SDXL's ``crossattn`` / ``vector``; each entry
                blended the same way; a plain ``dict`` comes back).
            closed: blend across the wrap (see :meth:`blend_rows` and :func:`travel_is_closed`).

        Returns:
            The same shape, dtype and device; only the key rows' values matter.
        """
        if isinstance(cond, Mapping):
            return {name: self.blend(value, closed) for name, value in cond.items()}
        if cond.shape[0] != self.batch_frames:
            raise ConfigError("cond", tuple(cond.shape), f"{self.batch_frames} rows (one per frame)")
        rows = [cond[a] if a == b else slerp(cond[a], cond[b], t) for _, a, b, t in self.blend_rows(closed)]
        return torch.stack(rows).to(dtype=cond.dtype, device=cond.device)


def travel_is_closed(num_frames: int, context_size: int, closed_loop: str | ClosedLoop) -> bool:
    """Whether prompt travel blends across the wrap: more frames than the context and R+P or A."""
    return num_frames > context_size and str(closed_loop) in (ClosedLoop.R_PLUS_P.value, ClosedLoop.A.value)


def effective_frames(video_length: int, context_size: int) -> int:
    """The API's ``video_length`` with 0 meaning "the context batch size"."""
    return context_size if video_length == 0 else video_length


def _lines(text: str) -> list[_Line]:
    """Trim ``text`` and split it on ``\\n``, remembering where each line starts in ``text``."""
    trimmed = text.strip()
    pos = len(text) - len(text.lstrip())
    out = []
    for line in trimmed.split("\n"):
        out.append(_Line(line, pos))
        pos += len(line) + 1
    return out


def _split(lines: list[_Line]) -> _Parts:
    """Head lines, keys in first-written order (last text wins), tail lines."""
    head: list[str] = []
    keys: dict[int, tuple[str, int]] = {}
    tail: list[str] = []
    phase = "head"
    for line in lines:
        if phase == "head" and KEY_START.match(line.text):
            phase = "keys"
        if phase == "keys":
            match = KEY_LINE.fullmatch(line.text)
            if match is None:
                phase = "tail"
            else:
                frame = int(match.group(1))
                first_pos = keys[frame][1] if frame in keys else line.pos
                keys[frame] = (match.group(2), first_pos)
        if phase == "head":
            head.append(line.text)
        elif phase == "tail":
            tail.append(line.text)
    return _Parts(head, keys, tail)


def _check_keys(keys: dict[int, tuple[str, int]], num_frames: int) -> None:
    """Every key below ``num_frames`` (checked first, as the reference does), then ascending."""
    for frame, (_, pos) in keys.items():
        if frame >= num_frames:
            hint = f"key {frame} at character {pos} is past the clip's last frame"
            raise ConfigError("prompt", frame, f"key frames 0..{num_frames - 1}", hint)
    last = -1
    for frame, (_, pos) in keys.items():
        if frame < last:
            hint = f"key {frame} at character {pos} comes after key {last}"
            raise ConfigError("prompt", frame, "key frames in ascending order", hint)
        last = frame


def parse_prompt_travel(text: str, num_frames: int, *, batch_frames: int | None = None) -> PromptTravel | None:
    """Parse prompt-travel text; ``None`` when it has no key line (the prompt is used as is).

    Args:
        text: the prompt as typed.
        num_frames: frames of the clip (resolve the API's 0 with :func:`effective_frames` first);
            key frames must be below it.
        batch_frames: rows of the latent batch, ``>= num_frames``; ``num_frames`` by default.

    Raises:
        ConfigError: ``num_frames`` < 1, ``batch_frames`` < ``num_frames``, a key frame
            ``>= num_frames``, or keys out of order (field ``prompt``; the message gives the key
            and its character offset in ``text``).
    """
    if num_frames < 1:
        raise ConfigError("num_frames", num_frames, "1 or more")
    batch = num_frames if batch_frames is None else batch_frames
    if batch < num_frames:
        raise ConfigError("batch_frames", batch_frames, f"{num_frames} or more (at least num_frames)")
    json_keys = _json_keys(text, num_frames)
    if json_keys is not None:
        return PromptTravel(json_keys, num_frames, batch, text)
    parts = _split(_lines(text))
    if not parts.keys:
        return None
    _check_keys(parts.keys, num_frames)
    head, tail = ", ".join(parts.head), ", ".join(parts.tail)
    keyframes = [(frame, f"{head}, {key_text}, {tail}") for frame, (key_text, _) in parts.keys.items()]
    log.debug("prompt travel with keys %s", [f for f, _ in keyframes])
    return PromptTravel(keyframes, num_frames, batch, text)


def _json_keys(text: str, num_frames: int) -> list[tuple[int, str]] | None:
    """Deforum's JSON prompt object (``{"0": "a corgi", "max_f": "a lion"}``) as keys, read by the keyframe
    engine (:func:`lib_vidsd.schedule.prompt_keys.parse_prompt_keyframes`: expression keys, keys past the
    clip ignored); ``None`` when ``text`` is not a JSON object (``{a|b}`` wildcards stay prompts)."""
    stripped = text.strip()
    if not (stripped.startswith("{") and stripped.endswith("}")):
        return None
    try:
        data = json.loads(stripped)
    except json.JSONDecodeError:
        return None
    if not isinstance(data, dict):
        return None
    from .prompt_keys import parse_prompt_keyframes

    return parse_prompt_keyframes(stripped, num_frames, field="prompt").keyframes


def slerp(v0: torch.Tensor, v1: torch.Tensor, t: float, threshold: float = DOT_THRESHOLD) -> torch.Tensor:
    """Spherical interpolation between two tensors of the same shape, over all their elements.

    ``cos = <v0/|v0|, v1/|v1|>``; when ``|cos| > threshold`` (nearly parallel or opposite) or a
    tensor is all zeros, the linear blend ``(1-t)*v0 + t*v1``; otherwise
    ``(sin((1-t)θ)·v0 + sin(tθ)·v1) / sin θ`` with ``θ = arccos(cos)`` on the un-normalised
    tensors (Shoemake 1985; the form sd-webui-animatediff uses). ``t`` in [0, 1].
    """
    n0, n1 = v0.norm(), v1.norm()
    if n0 == 0 or n1 == 0:  # the reference divides by zero here and returns NaN
        return (1.0 - t) * v0 + t * v1
    cos = ((v0 / n0) * (v1 / n1)).sum()
    if cos.abs() > threshold:
        return (1.0 - t) * v0 + t * v1
    theta = cos.acos()
    return (((1.0 - t) * theta).sin() * v0 + (t * theta).sin() * v1) / theta.sin()


def _pad_tokens(cond: torch.Tensor, count: int, filler: torch.Tensor) -> torch.Tensor:
    """Append ``count`` copies of ``filler`` ``(1, chunk, C)`` along the token axis of ``(B, T, C)``."""
    if count == 0:
        return cond
    pad = filler.to(dtype=cond.dtype, device=cond.device).expand(cond.shape[0], -1, -1).repeat(1, count, 1)
    return torch.cat([cond, pad], dim=1)


def _tokens(cond: Cond) -> torch.Tensor:
    return cond["crossattn"] if isinstance(cond, Mapping) else cond


def _with_tokens(cond: Cond, tokens: torch.Tensor) -> Cond:
    return {**cond, "crossattn": tokens} if isinstance(cond, Mapping) else tokens


def pad_to_same_length(cond: Cond, uncond: Cond, empty: torch.Tensor | None = None) -> tuple[Cond, Cond]:
    """Pad the shorter of ``cond`` / ``uncond`` along the token axis so both have the same length.

    A prompt over 75 tokens encodes to ``(B, 77·k, C)``; when cond and uncond differ in ``k`` the
    host runs them in separate model calls, which would split an animation's cond and uncond
    halves apart. Like A1111's "Pad prompt/negative prompt" option (``pad_cond`` in
    ``modules/sd_samplers_cfg_denoiser.py``), the shorter one gets the encoded empty prompt
    appended, once per missing chunk.

    Args:
        cond, uncond: ``(B, T, C)`` tensors, or mappings whose ``crossattn`` entry is one (SDXL;
            other entries are kept).
        empty: the empty prompt's encoding ``(1, chunk, C)`` (A1111:
            ``sd_model.cond_stage_model_empty_prompt``). When ``None``, the shorter tensor's own
            last ``77`` tokens are repeated instead (an approximation for callers without it).

    Returns:
        ``(cond, uncond)`` with equal token counts; unchanged when they already match.

    Raises:
        ConfigError: the token counts differ by something other than a whole number of chunks.
    """
    a, b = _tokens(cond), _tokens(uncond)
    if a.shape[1] == b.shape[1]:
        return cond, uncond
    chunk = CHUNK_TOKENS if empty is None else empty.shape[1]
    gap = abs(a.shape[1] - b.shape[1])
    if gap % chunk:
        raise ConfigError(
            "uncond", tuple(b.shape), f"a token count differing from cond's {a.shape[1]} by whole {chunk}-token chunks"
        )
    short = a if a.shape[1] < b.shape[1] else b
    if empty is None:  # each row repeats its own last chunk
        padded = torch.cat([short] + [short[:, -chunk:]] * (gap // chunk), dim=1)
    else:
        padded = _pad_tokens(short, gap // chunk, empty)
    if short is a:
        return _with_tokens(cond, padded), uncond
    return cond, _with_tokens(uncond, padded)
