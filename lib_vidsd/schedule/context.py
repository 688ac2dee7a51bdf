"""Context windows: which frames each motion-module call sees at one sampling step.

A clip of ``num_frames`` latent frames is denoised in windows of ``context_size`` frames. The
schedule reproduces sd-webui-animatediff's ``uniform`` generator (``scripts/animatediff_infv2v.py``,
itself from AnimateDiff-Evolved's "uniform" context): windows shift from step to step by a
bit-reversed fraction of the clip, overlap by ``overlap`` frames, wrap around the clip's end, and
``stride`` adds levels of windows that take every 2nd, 4th, ... frame.

Two deliberate differences (DESIGN.md, "where we differ on purpose"):

* ``num_frames < context_size`` gives ONE window of the ``num_frames`` frames ``0..L-1``; the
  reference yields ``0..B-1`` and pads the latent batch to ``B`` frames.
* every frame is covered at every step: where the reference leaves frames unvisited (mode ``N``
  with a large overlap), windows ``[s, s+1, ..., s+B-1]`` with ``s = min(f, L-B)`` for the lowest
  still-uncovered frame ``f`` are appended after all of the reference's windows, until every frame
  is covered. Schedules that already cover every frame are returned unchanged.

Windows are lists of frame indices, in the order the model should be called. A window of a level
with spacing ``d > 1`` may name a frame twice when ``context_size * d > num_frames`` (the indices
wrap); the fuser counts each occurrence.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from fractions import Fraction
from typing import Callable

from ..config import ClosedLoop
from ..errors import ConfigError

log = logging.getLogger("vidsd.schedule.context")

Window = list[int]


@dataclass(frozen=True)
class Level:
    """One level of windows: frames ``(start + i*spacing) mod num_frames`` for ``i < size``.

    ``offset`` is the step's bit-reversed fraction h in [0, 1); ``pad`` is ``round(num_frames*h)``
    (half to even, as Python's ``round``).
    """

    num_frames: int
    size: int
    overlap: int
    spacing: int
    offset: Fraction
    pad: int

    def window(self, start: int) -> Window:
        return [(start + i * self.spacing) % self.num_frames for i in range(self.size)]

    def starts(self, extend: bool) -> range:
        """Window starts; ``extend`` (mode A) lets them run ``overlap`` frames further."""
        first = int(self.offset * self.spacing) + self.pad
        stop = self.num_frames + self.pad - (0 if extend else self.overlap)
        return range(first, stop, self.size * self.spacing - self.overlap)


def _wrapping(level: Level) -> list[Window]:
    """R-P / R+P: windows wrap around the clip's end."""
    return [level.window(j) for j in level.starts(extend=False)]


def _wrapping_extra(level: Level) -> list[Window]:
    """A: as R-P, with starts running ``overlap`` frames further (more wrapping windows)."""
    return [level.window(j) for j in level.starts(extend=True)]


def _first_wrap(window: Window) -> int | None:
    """Position of the first index lower than its predecessor, or None when none wraps."""
    for i in range(1, len(window)):
        if window[i] < window[i - 1]:
            return i
    return None


def _no_wrap(level: Level) -> list[Window]:
    """N: at spacing 1, a window that wraps is replaced by the clip's first and/or last window.

    Wrapping within the first ``size - overlap`` positions gives ``last, first``; later, ``last``
    now and ``first`` in place of the next wrapping window. Other levels wrap as R-P.
    """
    if level.spacing != 1:
        return _wrapping(level)
    first = list(range(level.size))
    last = list(range(level.num_frames - level.size, level.num_frames))
    out: list[Window] = []
    first_pending = False
    for j in level.starts(extend=False):
        window = level.window(j)
        cut = _first_wrap(window)
        if cut is None:
            out.append(window)
        elif first_pending:
            first_pending = False
            out.append(first)
        elif cut < level.size - level.overlap:
            out += [last, first]
        else:
            first_pending = True
            out.append(last)
    return out


CLOSED_LOOP: dict[str, Callable[[Level], list[Window]]] = {
    ClosedLoop.N.value: _no_wrap,
    ClosedLoop.R_MINUS_P.value: _wrapping,
    ClosedLoop.R_PLUS_P.value: _wrapping,  # differs from R-P in prompt travel only
    ClosedLoop.A.value: _wrapping_extra,
}
"""Closed-loop mode name → windows of one level."""


def step_offset(step: int) -> Fraction:
    """The step's 64 bits reversed, read as a binary fraction: 0, 1/2, 1/4, 3/4, 1/8, ..."""
    return Fraction(int(f"{step:064b}"[::-1], 2), 1 << 64)


def level_count(num_frames: int, context_size: int, stride: int) -> int:
    """``stride`` capped at ceil(log2(num_frames / context_size)) + 1 levels."""
    doublings = 0
    while context_size << doublings < num_frames:
        doublings += 1
    return min(stride, doublings + 1)


def resolve_overlap(context_size: int, overlap: int) -> int:
    """``overlap`` with -1 resolved to ``context_size // 4``."""
    return context_size // 4 if overlap == -1 else overlap


def _check(step: int, num_frames: int, context_size: int, stride: int, overlap: int, closed_loop: str) -> None:
    if not 0 <= step < 1 << 64:
        raise ConfigError("step", step, "0..2**64-1")
    if num_frames < 1:
        raise ConfigError("num_frames", num_frames, "1 or more")
    if context_size < 1:
        raise ConfigError("context_size", context_size, "1 or more")
    if stride < 1:
        raise ConfigError("stride", stride, "1 or more")
    if not -1 <= overlap < context_size:
        raise ConfigError("overlap", overlap, f"-1 or 0..{context_size - 1} (less than context_size {context_size})")
    if closed_loop not in CLOSED_LOOP:
        raise ConfigError("closed_loop", closed_loop, list(CLOSED_LOOP))


def _cover_missing(windows: list[Window], num_frames: int, size: int) -> list[Window]:
    """Append contiguous windows until every frame ``0..num_frames-1`` is in some window."""
    seen = {f for w in windows for f in w}
    missing = [f for f in range(num_frames) if f not in seen]
    added: list[Window] = []
    for f in missing:
        if f in seen:
            continue
        start = min(f, num_frames - size)
        added.append(list(range(start, start + size)))
        seen.update(added[-1])
    if added:
        log.debug("frames %s were in no window; added %s", missing, added)
    return windows + added


def context_windows(
    step: int,
    num_frames: int,
    context_size: int,
    stride: int = 1,
    overlap: int = -1,
    closed_loop: str | ClosedLoop = "R-P",
) -> list[list[int]]:
    """The windows for sampling step ``step``, in the order the model is to be called.

    Args:
        step: sampling-step index (0-based); shifts the windows from step to step.
        num_frames: L, latent frames in the clip.
        context_size: B, frames per window (what the motion module is told).
        stride: number of window levels; level k takes every 2**k-th frame. Capped at
            ceil(log2(L/B)) + 1.
        overlap: frames shared by consecutive windows; -1 means ``B // 4``.
        closed_loop: ``N``, ``R-P``, ``R+P`` or ``A`` (see :class:`~lib_vidsd.config.ClosedLoop`).

    Returns:
        A list of windows; each a list of frame indices. ``L <= B``: the single window
        ``[0, ..., L-1]`` (the reference pads to B entries; we do not). Otherwise every window has
        B entries and every frame is in at least one window (see the module docstring for how
        this extends the reference schedule).

    Raises:
        ConfigError: naming the first parameter out of range, or an unknown ``closed_loop``.
    """
    mode = str(closed_loop)
    _check(step, num_frames, context_size, stride, overlap, mode)
    if num_frames <= context_size:
        return [list(range(num_frames))]
    overlap = resolve_overlap(context_size, overlap)
    offset = step_offset(step)
    pad = round(num_frames * offset)
    windows: list[Window] = []
    for k in range(level_count(num_frames, context_size, stride)):
        level = Level(num_frames, context_size, overlap, 1 << k, offset, pad)
        windows += CLOSED_LOOP[mode](level)
    return _cover_missing(windows, num_frames, context_size)
