"""Patch-match deflickering ("FastBlend smoother") and keyframe propagation for uint8 RGB clips.

Two clips go in: the *style* frames (rendered independently, they flicker) and the *guide* frames
(the original footage, which carries the true motion). Every output frame ``t`` is an average of style
frames re-rendered in frame ``t``'s geometry by :class:`~.patchmatch.PatchMatcher` (guide ``s`` matched
to guide ``t``). Semantics follow FastBlend (DiffSynth-Studio; see ``shared/fixtures/stylize/README.md``)
with three of its defects fixed: balanced mode averages the whole window (the reference drops the last
remapped frame of each window), the NNF upsampling between pyramid levels reaches every odd row and
column, and outputs are rounded (the reference truncates).

Blend modes (window ``w``: target ``t`` averages frames ``max(0, t-w) .. min(n-1, t+w)`` uniformly):

* ``fast``: a binary-indexed table of partial window sums built once from the left and once from the
  right; ``O(n log n)`` matches whatever the window. A frame reaches ``t`` in at most two hops, the
  second matching an already blended image, so it is a little blurrier than the others.
* ``balanced``: every other frame of the window matched directly to ``t``; ``O(n w)`` matches.
* ``accurate``: like balanced, ``t`` itself included, the sources of one target matched jointly with
  the "mean target style" cost (each pulled towards their consensus), in batches of ``batch_size``
  (only frames of one batch are coupled, as in the reference); about twice the cost per match.

Keyframe interpolation (:func:`interpolate_keyframes`) re-renders a few stylised keyframes onto every
frame: frame ``m`` between keyframes ``l < m < r`` is ``(r-m)/(r-l) * remap(l) + (m-l)/(r-l) * remap(r)``
with both matches coupled by the pairwise cost; frames outside the keyframes use the nearest one twice;
with a single keyframe, batches of consecutive frames are matched from it (optionally with tracking).
Keyframes themselves are returned unchanged (the reference re-renders them through the matcher).

Memory: frames stay uint8 on the host; the fast mode keeps only the table entries that later windows
still read (about ``2 * window`` images on the device, where the reference keeps the whole table) and
one float32 window sum per frame on the host between its two passes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import Enum
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from PIL import Image, ImageEnhance

from ..errors import ConfigError
from ..progress import ProgressSink, StopToken, check_stop
from .patchmatch import Initialize, MatchSettings, PatchMatcher, SeededRandom, StyleTerm, pyramid_sizes

log = logging.getLogger("vidsd.deflicker")

Tensor = torch.Tensor
RemapFn = Callable[[list[tuple[int, int]], Tensor], Tensor]
"""``remap(pairs, styles)``: ``styles`` ``(B, H, W, C)`` re-rendered from guide ``s`` to guide ``t`` for each
``(s, t)`` of ``pairs``; the runners below only ever call this (tests plug an identity matcher)."""
EmitFn = Callable[[int, Tensor], None]


class BlendMode(str, Enum):
    """How :func:`deflicker` blends a window (FastBlend's ``Fast``, ``Balanced``, ``Accurate``)."""

    FAST = "fast"
    BALANCED = "balanced"
    ACCURATE = "accurate"


# ---------------------------------------------------------------------------------------------------
# Public entry points
# ---------------------------------------------------------------------------------------------------


def deflicker(
    frames: Sequence[Any],
    *,
    guide: Sequence[Any] | None = None,
    mode: BlendMode | str = BlendMode.FAST,
    window: int = 15,
    batch_size: int = 8,
    patch_size: int = 5,
    iterations: int = 5,
    guide_weight: float = 10.0,
    tracking: int = 0,
    initialize: str = "identity",
    contrast: float = 1.0,
    sharpness: float = 1.0,
    seed: int = 0,
    progress: ProgressSink | None = None,
    stop: StopToken | None = None,
    device: str | torch.device | None = None,
) -> list[np.ndarray]:
    """Remove flicker from ``frames`` (uint8 ``(H, W, 3)`` RGB) guided by ``guide``; returns as many frames.

    Parameters (the reference's names and defaults in brackets):

    * ``guide``: the original footage, same length and size; ``None`` uses ``frames`` as their own guide.
    * ``mode`` (``Fast``): ``"fast"``, ``"balanced"`` or ``"accurate"`` (see the module docstring).
    * ``window`` (``window_size``, 15): frames on each side blended into each output, >= 1.
    * ``batch_size`` (8): patch-match pairs per matcher call (memory vs speed; in accurate mode also the
      largest group of jointly matched sources, so ``>= 2*window + 1`` couples the whole window).
    * ``patch_size`` (``minimum_patch_size``, 5), ``iterations`` (``num_iter``, 5), ``guide_weight``
      (10.0), ``initialize`` (``"identity"``), ``tracking`` (``tracking_window_size``, 0; accurate mode
      only): see :class:`~.patchmatch.MatchSettings`.
    * ``contrast``, ``sharpness`` (1.0 = unchanged): PIL ``ImageEnhance`` factors applied to each output
      (DiffSynth-Studio chains 1.1 and 1.1 after its smoother).
    * ``seed``: the matcher's random search; the same seed gives the same output on the same device.
    * ``progress(done, total, text)`` counts matched pairs; ``stop`` is polled between matcher calls
      (raises :class:`~lib_vidsd.errors.Interrupted`); ``device`` defaults to CUDA when available.
    """
    style = _as_frames(frames, "frames")
    guide_frames = style if guide is None else _as_frames(guide, "guide")
    if len(guide_frames) != len(style) or guide_frames[0].shape != style[0].shape:
        raise ConfigError(
            "guide",
            f"{len(guide_frames)} frames of {guide_frames[0].shape}",
            f"{len(style)} frames of {style[0].shape} (like frames)",
        )
    blend = _enum(BlendMode, mode, "mode")
    _check_int("window", window, 1)
    _check_int("batch_size", batch_size, 1)
    _check_post(contrast, sharpness)
    if blend != BlendMode.ACCURATE and tracking != 0:
        raise ConfigError("tracking", tracking, "0 for fast and balanced modes", "tracking helps accurate mode only")
    term = StyleTerm.MEAN if blend == BlendMode.ACCURATE else StyleTerm.OWN
    settings = _settings(patch_size, iterations, guide_weight, initialize, tracking, term)
    height, width = style[0].shape[:2]
    pyramid_sizes(height, width, settings)  # refuses images too small for the patch size
    job = MatchJob(guide_frames, settings, seed, _device(device), progress, stop, f"deflicker ({blend.value})")
    styles = HostFrames(style, job.device)
    n = len(style)
    out: list[np.ndarray | None] = [None] * n
    emit = _emitter(out, contrast, sharpness)
    if blend == BlendMode.FAST:
        job.total = fast_pair_count(n, window)
        run_fast(n, window, batch_size, job.remap, styles, emit)
    elif blend == BlendMode.BALANCED:
        job.total = sum(len(_window(t, n, window)) - 1 for t in range(n))
        run_balanced(n, window, batch_size, job.remap, styles, emit)
    else:
        job.total = sum(len(_window(t, n, window)) for t in range(n))
        run_accurate(n, window, batch_size, job.remap, styles, emit)
    log.info("deflicker %s: %d frames, %d patch-match pairs", blend.value, n, job.done)
    return out  # type: ignore[return-value]


def interpolate_keyframes(
    frames: Sequence[Any],
    keyframes: Mapping[int, Any],
    *,
    batch_size: int = 8,
    patch_size: int = 15,
    iterations: int = 5,
    guide_weight: float = 10.0,
    tracking: int = 0,
    initialize: str = "identity",
    contrast: float = 1.0,
    sharpness: float = 1.0,
    seed: int = 0,
    progress: ProgressSink | None = None,
    stop: StopToken | None = None,
    device: str | torch.device | None = None,
) -> list[np.ndarray]:
    """Propagate stylised ``keyframes`` (``{frame index: uint8 (H, W, 3)}``) to every frame of ``frames``.

    ``frames`` is the guide (the original footage, uint8 ``(H, W, 3)``); the result has one frame per
    guide frame, the keyframes themselves unchanged. ``batch_size`` (8) counts interpolation tasks (two
    matches each), or frames per call with a single keyframe, which then needs ``batch_size > 2 *
    tracking``. ``patch_size`` defaults to 15 (the reference's interpolation default, "larger is
    better"); the other parameters are those of :func:`deflicker`.
    """
    guide = _as_frames(frames, "frames")
    n = len(guide)
    if not isinstance(keyframes, Mapping) or not keyframes:
        raise ConfigError("keyframes", keyframes, "a non-empty {frame index: frame} mapping")
    keys = sorted(keyframes)
    for k in keys:
        if not _is_int(k) or not 0 <= k < n:
            raise ConfigError("keyframes", k, f"frame indices 0..{n - 1}")
    key_frames = _as_frames([keyframes[k] for k in keys], "keyframes")
    if key_frames[0].shape != guide[0].shape:
        raise ConfigError("keyframes", key_frames[0].shape, f"frames of {guide[0].shape} (like frames)")
    _check_int("batch_size", batch_size, 1)
    _check_post(contrast, sharpness)
    single = len(keys) == 1
    if single and batch_size <= 2 * tracking:
        raise ConfigError("batch_size", batch_size, f"more than 2 * tracking = {2 * tracking}", "with one keyframe")
    term = StyleTerm.OWN if single else StyleTerm.PAIRWISE
    settings = _settings(patch_size, iterations, guide_weight, initialize, tracking, term)
    pyramid_sizes(guide[0].shape[0], guide[0].shape[1], settings)
    job = MatchJob(guide, settings, seed, _device(device), progress, stop, "keyframe interpolation")
    styles = HostFrames(dict(zip(keys, key_frames, strict=True)), job.device)
    out: list[np.ndarray | None] = [None] * n
    emit = _emitter(out, contrast, sharpness)
    if single:
        job.total = single_key_pair_count(n, batch_size, tracking)
        run_single_keyframe(n, keys[0], batch_size, tracking, job.remap, styles, emit)
    else:
        job.total = 2 * (n - len(keys))
        run_interpolation(n, keys, batch_size, job.remap, styles, emit)
    return out  # type: ignore[return-value]


# ---------------------------------------------------------------------------------------------------
# Runners: schedules over an abstract remap(pairs, styles); float frames out through emit(t, frame)
# ---------------------------------------------------------------------------------------------------


def _window(t: int, n: int, window: int) -> range:
    return range(max(0, t - window), min(n, t + window + 1))


def _batches(items: list, size: int):
    for start in range(0, len(items), size):
        yield items[start : start + size]


def tree_blocks(left: int, right: int) -> list[tuple[int, int]]:
    """Split ``[left, right]`` into maximal aligned blocks, from the right: ``(end frame, level)``.

    A block of level ``L`` ending at ``u`` covers ``u - 2**L + 1 .. u`` and exists when the lowest ``L``
    bits of ``u`` are all ones (a Fenwick tree), e.g. ``tree_blocks(0, 5) == [(5, 1), (3, 2)]``.
    """
    blocks = []
    node = right
    while node >= left:
        level = 0
        while (node >> level) & 1 and node - (1 << (level + 1)) + 1 >= left:
            level += 1
        blocks.append((node, level))
        node -= 1 << level
    return blocks


@dataclass
class _FastPlan:
    """One direction of the fast mode, in pass order (frame ``i`` of the pass)."""

    queries: list[list[tuple[int, int]]]  # per target: the blocks of its half window
    depth: list[int]  # per frame: the highest table level any query reads
    last_use: dict[tuple[int, int], int]  # (end, level) -> last target that reads it

    @classmethod
    def build(cls, n: int, window: int) -> _FastPlan:
        queries = [tree_blocks(max(0, t - window), t) for t in range(n)]
        depth = [0] * n
        last_use: dict[tuple[int, int], int] = {}
        for t, blocks in enumerate(queries):
            for end, level in blocks:
                depth[end] = max(depth[end], level)
                last_use[(end, level)] = t
        return cls(queries, depth, last_use)

    def table_tasks(self, j: int) -> list[tuple[int, int, int]]:
        """``(source, j, level)``: level ``L`` of ``j`` matches the lower half of its block directly to ``j``."""
        return [
            (s, j, level)
            for level in range(1, self.depth[j] + 1)
            for s in range(j - (1 << level) + 1, j - (1 << (level - 1)) + 1)
        ]

    def pair_count(self) -> int:
        table = sum(len(self.table_tasks(j)) for j in range(len(self.depth)))
        return table + sum(sum(1 for end, _ in blocks if end != t) for t, blocks in enumerate(self.queries))


def fast_pair_count(n: int, window: int) -> int:
    """Patch-match pairs :func:`run_fast` needs (both directions)."""
    return 2 * _FastPlan.build(n, window).pair_count()


def _fast_pass(
    order: list[int], window: int, batch_size: int, remap: RemapFn, styles
) -> tuple[list[Tensor], list[int]]:
    """Window sums over ``[t - window, t]`` of the pass ``order`` (frames in pass order): ``(sums, weights)``.

    Targets are processed in chunks of ``batch_size``: first the table levels of the chunk's frames
    (raw frames matched directly to the block's end), then the chunk's queries (blended blocks matched
    once more from their end to the target); table entries are dropped after their last reader.
    """
    n = len(order)
    plan = _FastPlan.build(n, window)
    table: dict[tuple[int, int], Tensor] = {}
    sums: list[Tensor | None] = [None] * n
    weights = [0] * n
    for chunk_start in range(0, n, batch_size):
        chunk = range(chunk_start, min(n, chunk_start + batch_size))
        tasks = [task for j in chunk for task in plan.table_tasks(j)]
        level_sums: dict[tuple[int, int], Tensor] = {}
        for batch in _batches(tasks, batch_size):
            out = remap(
                [(order[s], order[j]) for s, j, _ in batch], torch.stack([styles[order[s]] for s, _, _ in batch])
            )
            for (_, j, level), frame in zip(batch, out, strict=True):
                key = (j, level)
                level_sums[key] = frame if key not in level_sums else level_sums[key] + frame
        for j in chunk:
            entry = styles[order[j]]
            for level in range(plan.depth[j] + 1):
                if level:
                    entry = (entry + level_sums.pop((j, level)) / (1 << (level - 1))) / 2
                if (j, level) in plan.last_use:
                    table[(j, level)] = entry
        queries = []
        for t in chunk:
            for end, level in plan.queries[t]:
                if end == t:
                    _accumulate(sums, weights, t, table[(t, level)] * (1 << level), 1 << level)
                else:
                    queries.append((end, t, level))
        for batch in _batches(queries, batch_size):
            out = remap(
                [(order[u], order[t]) for u, t, _ in batch], torch.stack([table[(u, lv)] for u, _, lv in batch])
            )
            for (_, t, level), frame in zip(batch, out, strict=True):
                _accumulate(sums, weights, t, frame * (1 << level), 1 << level)
        for key in [k for k in table if plan.last_use[k] < chunk.stop]:
            del table[key]
    return sums, weights  # type: ignore[return-value]


def _accumulate(sums: list, weights: list[int], t: int, frame: Tensor, weight: int) -> None:
    sums[t] = frame if sums[t] is None else sums[t] + frame
    weights[t] += weight


def run_fast(n: int, window: int, batch_size: int, remap: RemapFn, styles, emit: EmitFn) -> None:
    """Fast mode: ``(left_sum + right_sum - own_frame) / (left_weight + right_weight - 1)`` per target."""
    backward = list(range(n - 1, -1, -1))
    right, right_w = _fast_pass(backward, window, batch_size, remap, styles)
    right = [r.cpu() for r in right]  # one full set of sums waits for the other pass: keep it on the host
    left, left_w = _fast_pass(list(range(n)), window, batch_size, remap, styles)
    for t in range(n):
        i = n - 1 - t
        total = left[t] + right[i].to(left[t].device) - styles[t]
        emit(t, total / (left_w[t] + right_w[i] - 1))
        left[t] = None  # type: ignore[call-overload]


def run_balanced(
    n: int, window: int, batch_size: int, remap: RemapFn, styles, emit: EmitFn, targets: Sequence[int] | None = None
) -> None:
    """Balanced mode: the target's frame and every other window frame matched to it, averaged uniformly.

    ``targets`` (default all frames) limits the outputs computed, e.g. for a preview."""
    targets = range(n) if targets is None else sorted(set(targets))
    tasks = [(s, t) for t in targets for s in _window(t, n, window) if s != t]
    sums: dict[int, Tensor] = {}
    counts: dict[int, int] = {}
    for t in targets:
        if len(_window(t, n, window)) == 1:
            emit(t, styles[t])
    for batch in _batches(tasks, batch_size):
        out = remap(batch, torch.stack([styles[s] for s, _ in batch]))
        for (_, t), frame in zip(batch, out, strict=True):
            if t not in sums:
                sums[t], counts[t] = styles[t].clone(), 1
            sums[t] += frame
            counts[t] += 1
            if counts[t] == len(_window(t, n, window)):
                emit(t, sums.pop(t) / counts.pop(t))


def run_accurate(
    n: int, window: int, batch_size: int, remap: RemapFn, styles, emit: EmitFn, targets: Sequence[int] | None = None
) -> None:
    """Accurate mode: every window frame (the target included) matched to the target, in batches of
    ``batch_size`` consecutive sources (the matcher couples one batch), then averaged; ``targets`` as
    in :func:`run_balanced`."""
    for t in range(n) if targets is None else sorted(set(targets)):
        frames = _window(t, n, window)
        total = None
        for start in range(frames.start, frames.stop, batch_size):
            sources = list(range(start, min(frames.stop, start + batch_size)))
            out = remap([(s, t) for s in sources], torch.stack([styles[s] for s in sources])).sum(dim=0)
            total = out if total is None else total + out
        emit(t, total / len(frames))


def interpolation_tasks(n: int, keys: list[int]) -> list[list[tuple[int, int, int]]]:
    """Groups of ``(l, m, r)`` tasks: ``l <= m < r`` between keyframes, ``(k0, m, k0)`` before the first,
    ``(kN, m, kN)`` from the last on; keyframes themselves included (as in the reference)."""
    groups = []
    if keys[0] > 0:
        groups.append([(keys[0], m, keys[0]) for m in range(keys[0])])
    for left, right in zip(keys[:-1], keys[1:], strict=True):
        groups.append([(left, m, right) for m in range(left, right)])
    groups.append([(keys[-1], m, keys[-1]) for m in range(keys[-1], n)])
    return groups


def interpolation_weights(left: int, m: int, right: int) -> tuple[float, float]:
    """``(w_l, w_r)`` = ``((r-m)/(r-l), (m-l)/(r-l))``, ``(0.5, 0.5)`` when ``l == r``."""
    if left == right:
        return 0.5, 0.5
    return (right - m) / (right - left), (m - left) / (right - left)


def run_interpolation(
    n: int, keys: list[int], batch_size: int, remap: RemapFn, styles, emit: EmitFn, targets: Sequence[int] | None = None
) -> None:
    """Keyframe interpolation with two or more keyframes; ``styles[k]`` is keyframe ``k``'s frame.

    Each task makes the pair ``(l -> m, r -> m)`` (even/odd batch positions, coupled by the pairwise
    cost); ``batch_size`` tasks per call, never mixing groups. Keyframes are emitted unchanged;
    ``targets`` as in :func:`run_balanced`.
    """
    wanted = set(range(n) if targets is None else targets)
    key_set = set(keys)
    for k in keys:
        if k in wanted:
            emit(k, styles[k])
    for group in interpolation_tasks(n, keys):
        tasks = [task for task in group if task[1] not in key_set and task[1] in wanted]
        for batch in _batches(tasks, batch_size):
            pairs = [pair for left, m, right in batch for pair in ((left, m), (right, m))]
            out = remap(pairs, torch.stack([styles[s] for s, _ in pairs]))
            for i, (left, m, right) in enumerate(batch):
                w_l, w_r = interpolation_weights(left, m, right)
                emit(m, out[2 * i] * w_l + out[2 * i + 1] * w_r)


def _single_key_batches(n: int, batch_size: int, tracking: int):
    """``(l, r, emitted frames)`` of each call of the single-keyframe runner.

    Consecutive frames ``l .. r-1`` are matched from the keyframe in one call (so tracking can pass
    matches between neighbours); a frame is kept from the first call where it has ``tracking``
    neighbours on its right, or from the last call.
    """
    frame_id = 0
    step = batch_size - 2 * tracking
    for i in range(0, n, step):
        left, right = (max(n - batch_size, 0), n) if i + batch_size > n else (i, i + batch_size)
        emitted = []
        for m in range(left, right):
            if m == frame_id:
                emitted.append(m)
                frame_id += 1
            if right < n and right - frame_id <= tracking:
                break
        yield left, right, emitted
        if frame_id >= n:
            return


def single_key_pair_count(n: int, batch_size: int, tracking: int) -> int:
    """Patch-match pairs :func:`run_single_keyframe` needs."""
    return sum(right - left for left, right, _ in _single_key_batches(n, batch_size, tracking))


def run_single_keyframe(n: int, key: int, batch_size: int, tracking: int, remap: RemapFn, styles, emit: EmitFn) -> None:
    """One keyframe: every frame matched from it, ``batch_size`` consecutive frames per call."""
    for left, right, emitted in _single_key_batches(n, batch_size, tracking):
        out = remap([(key, m) for m in range(left, right)], torch.stack([styles[key]] * (right - left)))
        for m in emitted:
            emit(m, styles[key] if m == key else out[m - left])


# ---------------------------------------------------------------------------------------------------
# Plumbing: frames, the matcher job, output conversion
# ---------------------------------------------------------------------------------------------------


class HostFrames:
    """uint8 frames kept on the host, handed out as float32 ``(H, W, 3)`` tensors on ``device``."""

    def __init__(self, frames: Sequence[np.ndarray] | Mapping[int, np.ndarray], device: torch.device):
        self.frames = frames
        self.device = device

    def __getitem__(self, index: int) -> Tensor:
        return torch.tensor(self.frames[index], device=self.device).float()  # a copy: inputs may be read-only


class MatchJob:
    """The real ``remap`` of the runners: guide batches through one :class:`PatchMatcher`, random draws from
    one seeded source, progress counted in pairs (``total`` set by the caller), ``stop`` polled per call."""

    def __init__(
        self,
        guide: Sequence[np.ndarray],
        settings: MatchSettings,
        seed: int = 0,
        device: torch.device | str = "cpu",
        progress: ProgressSink | None = None,
        stop: StopToken | None = None,
        text: str = "patch match",
    ):
        device = torch.device(device)
        self.guide = HostFrames(guide, device)
        self.device = device
        self.matcher = PatchMatcher(guide[0].shape[0], guide[0].shape[1], settings)
        self.rng = SeededRandom(seed)
        self.progress, self.stop, self.text = progress, stop, text
        self.done, self.total = 0, 0

    def remap(self, pairs: list[tuple[int, int]], styles: Tensor) -> Tensor:
        check_stop(self.stop, self.text)
        source = torch.stack([self.guide[s] for s, _ in pairs])
        target = torch.stack([self.guide[t] for _, t in pairs])
        _, out = self.matcher.match(source, target, styles, self.rng)
        self.done += len(pairs)
        if self.progress is not None:
            self.progress(self.done, self.total, self.text)
        return out


def _emitter(out: list, contrast: float, sharpness: float) -> EmitFn:
    def emit(t: int, frame: Tensor) -> None:
        image = frame.clamp(0, 255).round().to(torch.uint8).cpu().numpy()
        out[t] = postprocess(image, contrast=contrast, sharpness=sharpness)

    return emit


def postprocess(frame: np.ndarray, *, contrast: float = 1.0, sharpness: float = 1.0) -> np.ndarray:
    """PIL ``ImageEnhance.Contrast`` then ``ImageEnhance.Sharpness`` on a uint8 RGB frame (1.0 = unchanged)."""
    if contrast == 1.0 and sharpness == 1.0:
        return frame
    image = Image.fromarray(frame)
    if contrast != 1.0:
        image = ImageEnhance.Contrast(image).enhance(contrast)
    if sharpness != 1.0:
        image = ImageEnhance.Sharpness(image).enhance(sharpness)
    return np.asarray(image, dtype=np.uint8).copy()


def _as_frames(frames: Any, field: str) -> list[np.ndarray]:
    if isinstance(frames, (str, bytes)) or not isinstance(frames, Sequence) or len(frames) == 0:
        raise ConfigError(field, type(frames).__name__, "a non-empty sequence of uint8 (H, W, 3) RGB frames")
    arrays = [np.ascontiguousarray(np.asarray(f)) for f in frames]
    first = arrays[0]
    for a in arrays:
        if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 3 or a.shape != first.shape:
            raise ConfigError(field, f"{a.dtype} {a.shape}", f"uint8 (H, W, 3) RGB frames all of {first.shape}")
    return arrays


def _settings(patch_size, iterations, guide_weight, initialize, tracking, term) -> MatchSettings:
    return MatchSettings(
        patch_size=patch_size,
        iterations=iterations,
        guide_weight=guide_weight,
        initialize=_enum(Initialize, initialize, "initialize"),
        tracking=tracking,
        style_term=term,
    )


def _device(device) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ConfigError("device", device, "a torch device such as 'cpu' or 'cuda'") from e


def _enum(kind, value, field):
    try:
        return kind(value)
    except ValueError as e:
        raise ConfigError(field, value, [m.value for m in kind]) from e


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _check_int(field: str, value: Any, minimum: int) -> None:
    if not _is_int(value) or value < minimum:
        raise ConfigError(field, value, f"an integer >= {minimum}")


def _check_post(contrast: float, sharpness: float) -> None:
    for field, value in (("contrast", contrast), ("sharpness", sharpness)):
        if not isinstance(value, (int, float)) or not 0 <= value < float("inf"):
            raise ConfigError(field, value, "a number >= 0 (1.0 = unchanged)")
