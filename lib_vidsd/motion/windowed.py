"""Denoise a long clip window by window and fuse the windows' predictions.

Layout (A1111's, "batch cond/uncond" on): ``x`` is ``(halves*L, C, H, W)`` with ``halves`` 1 or 2;
rows ``0..L-1`` are frames ``0..L-1`` of the conditional half, rows ``L..2L-1`` the same frames of
the unconditional half. A window of frames ``w`` is the rows ``[w] + [L + w]``.

Unlike sd-webui-animatediff, which lets later windows overwrite earlier ones and leaves frames no
window visited at zero, each frame's result is the weighted average over every window (and every
occurrence within a window) that covered it. Weights come from a registry of fusers by name:

* ``flat``: every position weighs 1 (a plain average);
* ``pyramid``: position ``i`` of an ``n``-frame window weighs ``min(i + 1, n - i)`` (1 at the
  edges, rising towards the centre), so frames near a window's edge, where the motion module saw
  less context, count less (the "pyramid" fuse of AnimateDiff-Evolved's context options).

Peak memory: one accumulator shaped like ``x`` (float32 unless ``x`` is float64), one weight
vector of ``L`` entries, and one window's input and output at a time.
"""

from __future__ import annotations

import logging
from typing import Callable, Mapping, Protocol

import torch

from ..config import ClosedLoop, FuseMethod
from ..errors import ConfigError, IncompatibleModelError
from ..progress import StopToken, check_stop
from ..schedule.context import context_windows

log = logging.getLogger("vidsd.motion.windowed")


class WindowModel(Protocol):
    """``model_fn(x_window, **per_row_window) -> Tensor`` shaped like ``x_window``."""

    def __call__(self, x: torch.Tensor, **per_row: torch.Tensor) -> torch.Tensor: ...


def _flat(n: int) -> torch.Tensor:
    return torch.ones(n)


def _pyramid(n: int) -> torch.Tensor:
    i = torch.arange(n)
    return torch.minimum(i + 1, n - i).to(torch.float32)


FUSERS: dict[str, Callable[[int], torch.Tensor]] = {
    FuseMethod.FLAT.value: _flat,
    FuseMethod.PYRAMID.value: _pyramid,
}
"""Fuse method name → weights ``(n,)`` float32 for the positions of an ``n``-frame window."""


def fuse_weights(fuse: str | FuseMethod, n: int) -> torch.Tensor:
    """Weights ``(n,)`` for the positions of one window; unknown ``fuse`` → ConfigError."""
    name = str(fuse)
    if name not in FUSERS:
        raise ConfigError("fuse", fuse, list(FUSERS))
    return FUSERS[name](n)


def _halves(x: torch.Tensor, num_frames: int) -> int:
    if num_frames < 1 or x.shape[0] not in (num_frames, 2 * num_frames):
        allowed = f"{num_frames} or {2 * num_frames} rows (num_frames={num_frames}, times 1 or 2 halves)"
        raise ConfigError("x", tuple(x.shape), allowed)
    return x.shape[0] // num_frames


def _check_per_row(per_row: Mapping[str, torch.Tensor], rows: int) -> None:
    for name, value in per_row.items():
        if value.shape[0] != rows:
            raise ConfigError(f"per_row[{name!r}]", tuple(value.shape), f"first dimension {rows} (as x)")


def _rows(window: list[int], halves: list[int], num_frames: int, device: torch.device) -> torch.Tensor:
    """Row indices of ``window``'s frames in each of ``halves``, half after half."""
    return torch.tensor([h * num_frames + f for h in halves for f in window], dtype=torch.long, device=device)


def _call(
    model_fn: WindowModel, x: torch.Tensor, per_row: Mapping[str, torch.Tensor], rows: torch.Tensor
) -> torch.Tensor:
    """Run the model on ``rows`` of ``x`` and of every ``per_row`` tensor; ``(len(rows), ...)``."""
    x_win = x.index_select(0, rows)
    extra = {name: value.index_select(0, rows.to(value.device)) for name, value in per_row.items()}
    out = model_fn(x_win, **extra)
    if out.shape != x_win.shape:
        raise IncompatibleModelError(f"model_fn returned {tuple(out.shape)} for a window of {tuple(x_win.shape)}")
    return out


def _run_window(
    model_fn: WindowModel,
    x: torch.Tensor,
    per_row: Mapping[str, torch.Tensor],
    window: list[int],
    layout: tuple[int, int, bool],
    acc: torch.Tensor,
    weights: torch.Tensor,
) -> None:
    """Add one window's weighted prediction into ``acc`` ``(halves*L, ...)``.

    ``layout`` is ``(num_frames, halves, cond_uncond_together)``; ``weights`` ``(n,)`` are per
    window position. ``index_add_`` counts a frame that occurs twice in one window twice. Each
    model output is released as soon as it has been added.
    """
    num_frames, halves, together = layout
    groups = [list(range(halves))] if together else [[h] for h in range(halves)]
    w = weights.to(device=acc.device, dtype=acc.dtype)
    for group in groups:
        rows = _rows(window, group, num_frames, x.device)
        scale = w.repeat(len(group)).view((-1,) + (1,) * (x.dim() - 1))
        acc.index_add_(0, rows.to(acc.device), _call(model_fn, x, per_row, rows).to(acc.dtype) * scale)


def denoise_windowed(
    model_fn: WindowModel,
    x: torch.Tensor,
    *,
    num_frames: int,
    context_size: int,
    stride: int = 1,
    overlap: int = -1,
    closed_loop: str | ClosedLoop = "R-P",
    step: int = 0,
    fuse: str | FuseMethod = "flat",
    cond_uncond_together: bool = True,
    set_frames: Callable[[int], None] | None = None,
    per_row: Mapping[str, torch.Tensor] | None = None,
    stop: StopToken | None = None,
) -> torch.Tensor:
    """Run ``model_fn`` on each context window of step ``step`` and fuse the results.

    Args:
        model_fn: ``model_fn(x_window, **per_row_window)``, ``x_window`` ``(k*n, C, H, W)`` for an
            ``n``-frame window of ``k`` halves; returns the same shape.
        x: ``(halves*L, C, H, W)`` (any trailing dims), ``halves`` 1 or 2, cond half first.
        num_frames: L.
        context_size, stride, overlap, closed_loop, step: as
            :func:`~lib_vidsd.schedule.context.context_windows`.
        fuse: ``flat`` or ``pyramid`` (see :data:`FUSERS`).
        cond_uncond_together: one call per window with both halves' rows (``2n`` rows), or one
            call per half (``n`` rows each).
        set_frames: called with the window's length before its call(s): the frame count the
            motion module must use.
        per_row: tensors with first dimension ``halves*L`` (timesteps, text context, ...), sliced
            like ``x`` and passed to ``model_fn`` by name.
        stop: checked before every window; raises :class:`~lib_vidsd.errors.Interrupted`.

    Returns:
        ``(halves*L, C, H, W)`` in ``x``'s dtype: each row the weighted mean of its predictions.
    """
    halves = _halves(x, num_frames)
    per_row = per_row or {}
    _check_per_row(per_row, x.shape[0])
    windows = context_windows(step, num_frames, context_size, stride, overlap, closed_loop)
    fuse_weights(fuse, 1)  # an unknown name fails before any model call
    acc = torch.zeros(x.shape, dtype=torch.promote_types(x.dtype, torch.float32), device=x.device)
    total = torch.zeros(num_frames, dtype=acc.dtype, device=x.device)
    for window in windows:
        check_stop(stop, "between context windows")
        if set_frames is not None:
            set_frames(len(window))
        weights = fuse_weights(fuse, len(window))
        _run_window(model_fn, x, per_row, window, (num_frames, halves, cond_uncond_together), acc, weights)
        total.index_add_(0, torch.tensor(window, device=x.device), weights.to(total))
    log.debug("step %d: %d windows over %d frames", step, len(windows), num_frames)
    acc /= total.repeat(halves).view((-1,) + (1,) * (x.dim() - 1))
    return acc.to(x.dtype)
