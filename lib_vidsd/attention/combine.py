"""Combine-pattern cross-frame attention: frames rendered together attend to each other.

Video stylisation renders a chunk of frames per UNet call. With this patch the self-attention
(``attn1``) of every transformer block lets frame ``i`` of the call attend to the keys and values of
the frames its *combine pattern* names, and of reference images, as well as its own:

    out_i = softmax(Q_i · [K_s1, K_s2, …]ᵀ · scale) · [V_s1, V_s2, …],   (s1, s2, …) = sources(i)

with ``Q_i = to_q(x_i)``, ``K_s = to_k(x_s)``, ``V_s = to_v(x_s)`` and ``x_s`` the input tokens of
source ``s`` to the same module in the same UNet evaluation. One softmax runs over the union of the
sources' tokens; a source named twice counts twice, as in the reference.

Two ways of choosing the sources (source: alibaba/EasyNLP ``diffusion/DiffSynth`` and
modelscope/DiffSynth-Studio; see ``fixtures/stylize/README.md`` § 1):

* **combine pattern** (EasyNLP DiffSynth's ``combine_pattern``): a list of entries, each a relative
  frame offset or ``"reference_k"``. Offset ``p`` names frame ``i + p`` clamped to the clip: below 0
  gives frame 0, past the end the last frame, so duplicates are kept (frame 0 with ``[-1, 0, 1]``
  sees frames 0, 0, 1). An offset at or below :data:`FIRST_FRAME` (``-10000``) names the first frame.
  ``"reference_k"`` names the k-th reference image. The pattern must contain ``0`` (the frame itself,
  whose queries are used). :func:`pattern_sources` gives the table.
* **groups** (DiffSynth-Studio's ``cross_frame_attention`` with ``unet_batch_size``): the frames of a
  call are cut into consecutive groups of ``group_size`` (the last may be smaller); every frame
  attends to every frame of its group, itself included, without duplicates or references. Studio also
  feeds the group's *mean* text embedding to ``attn2``: ``group_text="mean"`` does that, the default
  ``"per_frame"`` keeps each frame's own conditioning (prompt travel keeps working).

Batch layout of a UNet call (declared with :meth:`CombineAttention.set_batch`): the rows are
``halves`` consecutive blocks of equal size, one per classifier-free-guidance half (A1111 batches
``[cond…, uncond…]``, diffusers ``[uncond…, cond…]``; a call carrying one half has one block). Each
block holds the reference rows (in the order given) and then the chunk's frames (in the order given).
Sources are looked up within the same half only: the conditional and unconditional passes are never
pooled, as in the reference where they are separate UNet calls.

How a renderer drives it, step-major (one step over all chunks, then the next step)::

    with CombineAttention(unet, pattern=[-10000, "reference_0", -1, 0, 1], num_frames=n) as cfa:
        for t in timesteps:
            cfa.begin_step()                                   # drops the previous step's cache
            for chunk in (range(0, 8), range(8, 16), ...):     # increasing frame order
                refs = [0] if chunk.start == 0 else []         # references only in the first chunk
                x = torch.cat([noised_refs[refs], latents[chunk]])
                with cfa.batch(frames=chunk, references=refs):
                    eps = unet(torch.cat([x, x]), t, cond_and_uncond)   # both halves in one call

Chunk-major (A1111: a chunk is an img2img batch sampled to the end before the next one): call
:meth:`set_batch` (or :meth:`batch`) once per chunk and never :meth:`begin_step`; the n-th UNet
evaluation of a chunk is matched with the n-th of the earlier chunks.

The per-step cache: whatever a later chunk may need from an earlier one — the reference rows' keys
and values (computed once per step, in the chunk that carries them, never per frame or chunk) and
the frames a later frame's negative offsets reach (the first frame for ``-10000``, the last
``|min offset|`` frames of the chunk) — is kept per ``(evaluation, module, half)``; everything else
is dropped after each call. Frames a positive offset reaches beyond the chunk's last frame do not
exist yet: the chunk's last frame stands in for them (DiffSynth's clip-end rule applied at the chunk
end). So chunked processing equals whole-batch processing exactly for patterns without positive
offsets and for groups when chunks are cut at group boundaries; with positive offsets the frames
next to a chunk end differ (overlap chunks and discard the overlap to soften the seam).

Memory: a cached source costs, per UNet evaluation, 2 (keys, values) × Σ over modules of
tokens × channels × bytes per element × halves. For SD1.5 at 512×512 in float16 with both halves:
2 × (5·4096·320 + 5·1024·640 + 5·256·1280 + 64·1280) × 2 B × 2 ≈ 92 MB. Step-major with
``[-10000, "reference_0", -1, 0, 1]`` holds three sources (first, previous, reference): ≈ 280 MB,
whatever the clip length. Chunk-major holds that per evaluation (×20 steps ≈ 5.5 GB): pass
``cache_device="cpu"`` there. The attention itself gathers ``rows × len(sources) × tokens × channels``
keys and values; ``attention_chunk`` bounds the rows gathered at once.

Exact EasyNLP batches: EasyNLP renders frame ``i`` as a batch of ``len(pattern)`` slots (the
gathered frames' latents) in which every slot attends to all slots. Build such a batch with
:func:`pattern_sources` and render it with ``group_size=len(pattern)``; it costs ``len(pattern)``
UNet rows per frame, where the pattern mode costs one.
"""

from __future__ import annotations

import logging
import numbers
import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from ..patching import PatchError, PatchHandle, active_patches, open_patch
from .crossframe import _KINDS, _attend, _project_out, _unet_kind, self_attention_sites
from .crossframe import PATCH_NAME as CROSS_FRAME_PATCH_NAME

log = logging.getLogger("vidsd.attention.combine")

PATCH_NAME = "combine_attention"

#: An offset at or below this names the first frame (DiffSynth's ``-10000`` trick, for any clip length).
FIRST_FRAME = -10000

#: A pattern entry: a relative frame offset, or ``"reference_k"``.
PatternEntry = int | str
#: A source of keys and values: an absolute frame index, or ``"reference_k"``.
Source = int | str

_REFERENCE = re.compile(r"reference_(\d+)")
_GROUP_TEXT = ("per_frame", "mean")
#: The keyword that carries the text context of ``attn2``, per UNet kind (positional index 1 otherwise).
_CONTEXT_ARG = {"ldm": "context", "diffusers": "encoder_hidden_states"}


# --- patterns ----------------------------------------------------------------------------------


def _pattern_error(value: Any, hint: str) -> ConfigError:
    return ConfigError(
        "combine_pattern",
        value,
        "a list of frame offsets (integers; -10000 = the first frame) and reference_<k> names, containing 0",
        hint,
    )


def _entry(item: Any, pattern: Any) -> PatternEntry:
    if isinstance(item, str):
        text = item.strip()
        match = _REFERENCE.fullmatch(text)
        if match:
            return f"reference_{int(match.group(1))}"
        try:
            return int(text)
        except ValueError:
            raise _pattern_error(pattern, f"{item!r} is neither an integer nor reference_<k>") from None
    if isinstance(item, bool) or not isinstance(item, numbers.Integral):
        raise _pattern_error(pattern, f"{item!r} is neither an integer nor reference_<k>")
    return int(item)


def parse_combine_pattern(pattern: str | Iterable[PatternEntry]) -> tuple[PatternEntry, ...]:
    """A combine pattern as a tuple of ``int`` offsets and ``"reference_k"`` names.

    Accepts a sequence (``[-10000, "reference_0", -1, 0, 1]``) or text with entries separated by commas
    or spaces, optionally in brackets or quotes (``"-10000, reference_0, -1, 0, 1"``). Raises
    :class:`ConfigError` (field ``combine_pattern``) for an empty pattern, an unknown entry or a pattern
    without ``0``.
    """
    if isinstance(pattern, str):
        items: list[Any] = [s.strip("'\"") for s in re.split(r"[\s,]+", pattern.strip().strip("[]()")) if s]
    else:
        try:
            items = list(pattern)
        except TypeError:
            raise _pattern_error(pattern, "not a list") from None
    entries = tuple(_entry(item, pattern) for item in items)
    if not entries:
        raise _pattern_error(pattern, "the pattern is empty")
    if 0 not in entries:
        raise _pattern_error(pattern, "it must contain 0: the frame itself, whose queries attend")
    return entries


def _reference_index(entry: PatternEntry) -> int | None:
    return int(entry[len("reference_") :]) if isinstance(entry, str) else None


def _frame_for(offset: int, frame: int, num_frames: int, last: int) -> int:
    """The frame an offset names from ``frame``: clamped to the clip, a positive offset also to ``last``."""
    if offset <= FIRST_FRAME:
        return 0
    target = min(max(frame + offset, 0), num_frames - 1)
    return min(target, last) if offset > 0 else target


def pattern_sources(pattern: str | Iterable[PatternEntry], frame: int, num_frames: int) -> list[Source]:
    """The sources frame ``frame`` of a ``num_frames`` clip gathers, slot by slot (EasyNLP's
    ``combine_image``): frame indices, and ``"reference_k"`` for references.

    ``pattern_sources([-1, 0, 1], 0, 5) == [0, 0, 1]``; ``pattern_sources([-1, 0, 1], 4, 5) == [3, 4, 4]``.
    """
    entries = parse_combine_pattern(pattern)
    _check_frame_count(num_frames)
    if type(frame) is not int or not 0 <= frame < num_frames:
        raise ConfigError("frame", frame, f"0 … {num_frames - 1}")
    return [e if isinstance(e, str) else _frame_for(e, frame, num_frames, num_frames - 1) for e in entries]


def _needed_later(pattern: tuple[PatternEntry, ...], last: int, num_frames: int) -> set[int]:
    """Frames up to ``last`` that a frame after ``last`` reaches through a negative offset."""
    if last >= num_frames - 1:
        return set()
    needed: set[int] = set()
    for offset in pattern:
        if isinstance(offset, str) or offset >= 0:
            continue
        if offset <= FIRST_FRAME:
            needed.add(0)
            continue
        # frames i in (last, num_frames) reach i + offset, clamped at 0
        low, high = max(last + 1 + offset, 0), min(max(num_frames - 1 + offset, 0), last)
        needed.update(range(low, high + 1))
    return needed


def _check_frame_count(num_frames: Any) -> None:
    if type(num_frames) is not int or num_frames < 1:
        raise ConfigError("num_frames", num_frames, "an integer >= 1")


# --- one call's layout -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Layout:
    """What one CFG half of a UNet call holds and what each of its rows attends to."""

    rows: tuple[Source, ...]  # references ("reference_k") first, then the chunk's frames
    sources: tuple[tuple[Source, ...], ...]  # per row, in order
    keep: frozenset[Source]  # sources later chunks of this step may need (cached after the call)
    frames: tuple[int, ...]

    @property
    def trivial(self) -> bool:
        """Every row attends to itself only and nothing is kept: the module's own forward is exact."""
        return not self.keep and all(src == (row,) for row, src in zip(self.rows, self.sources, strict=True))


def _check_indices(field: str, values: Iterable[Any], limit: int | None) -> tuple[int, ...]:
    out = tuple(values)
    allowed = "increasing integers >= 0" + ("" if limit is None else f" and < {limit}")
    for value in out:
        if type(value) is not int or value < 0 or (limit is not None and value >= limit):
            raise ConfigError(field, list(out), allowed)
    if any(b <= a for a, b in zip(out, out[1:], strict=False)):
        raise ConfigError(field, list(out), allowed)
    return out


# --- the controller ----------------------------------------------------------------------------


class CombineAttention:
    """Cross-frame attention between the frames of one UNet batch, on an ldm or diffusers UNet.

    ``pattern``: a combine pattern (see :func:`parse_combine_pattern`), or ``group_size``: Studio's
    groups — exactly one of them. ``num_frames``: the clip's length (needed by a pattern, for clamping
    at the clip end). ``group_text``: ``"per_frame"`` or ``"mean"`` (groups only, see the module
    docstring). ``attention_chunk``: at most this many rows' keys and values are gathered at once
    (``None``: all). ``cache_device``: where the per-step cache lives (``None``: where it was computed).

    Outside a batch (before :meth:`set_batch`, after :meth:`clear_batch`), with ``enabled = False``,
    and for a layout in which every row attends to itself only (pattern ``[0]``, ``group_size=1``),
    every module runs its own forward, bit for bit. Calls a module makes with extra arguments
    (a context, a mask) or through a non-plain diffusers processor also run unchanged.
    """

    def __init__(
        self,
        unet: nn.Module,
        pattern: str | Iterable[PatternEntry] | None = None,
        *,
        num_frames: int | None = None,
        group_size: int | None = None,
        group_text: str = "per_frame",
        attention_chunk: int | None = None,
        cache_device: str | torch.device | None = None,
    ):
        if (pattern is None) == (group_size is None):
            raise _pattern_error(pattern, "give either a combine pattern or a group_size")
        self.pattern = None if pattern is None else parse_combine_pattern(pattern)
        if group_size is not None and (type(group_size) is not int or group_size < 1):
            raise ConfigError("group_size", group_size, "an integer >= 1")
        if self.pattern is not None or num_frames is not None:
            _check_frame_count(num_frames)
        if group_text not in _GROUP_TEXT:
            raise ConfigError("group_text", group_text, _GROUP_TEXT)
        if group_size is None and group_text != "per_frame":
            raise ConfigError("group_text", group_text, "per_frame", "the mean text context applies to groups only")
        if attention_chunk is not None and (type(attention_chunk) is not int or attention_chunk < 1):
            raise ConfigError("attention_chunk", attention_chunk, "None or an integer >= 1")
        self.group_size = group_size
        self.num_frames = num_frames
        self.group_text = group_text
        self.attention_chunk = attention_chunk
        self.cache_device = None if cache_device is None else torch.device(cache_device)
        self.enabled = True
        self.sites = self_attention_sites(unet)
        self._layout: _Layout | None = None
        self._passes: dict[str, int] = {}
        # (evaluation, module name, half) → source → (keys, values), each (tokens, channels)
        self._cache: dict[tuple[int, str, int], dict[Source, tuple[torch.Tensor, torch.Tensor]]] = {}
        self._handle = self._patch(unet)

    # --- patching ----------------------------------------------------------------------------

    def _patch(self, unet: nn.Module) -> PatchHandle:
        kind = _unet_kind(unet)
        if any(h.name == CROSS_FRAME_PATCH_NAME for h in active_patches(unet)):
            raise PatchError(
                f"{CROSS_FRAME_PATCH_NAME!r} is applied to this model; both replace attn1, restore it first"
            )
        handle = open_patch(unet, PATCH_NAME)
        try:
            for name, module in self.sites:
                handle.override_forward(module, self._attn1_forward(name, module, kind))
            if self.group_text == "mean":
                for name, _ in self.sites:
                    attn2 = unet.get_submodule(name[: -len("attn1")] + "attn2")
                    handle.override_forward(attn2, self._attn2_forward(attn2, kind))
            handle.on_restore(self.reset)
        except BaseException:
            handle.restore()
            raise
        mode = f"pattern {list(self.pattern)}" if self.pattern is not None else f"groups of {self.group_size}"
        log.info("combine attention (%s) on %d %s self-attention modules", mode, len(self.sites), kind)
        return handle

    @staticmethod
    def _own(module: nn.Module) -> Callable[..., Any]:
        """The forward the module had: an instance forward already there, else the class's at call time."""
        own = module.__dict__.get("forward")
        return own if own is not None else (lambda *a, **k: type(module).forward(module, *a, **k))

    def _attn1_forward(self, name: str, module: nn.Module, kind: str) -> Callable[..., Any]:
        own = self._own(module)
        plain_input = _KINDS[kind][0]

        def forward(mod: nn.Module, *args: Any, **kwargs: Any) -> Any:
            layout = self._layout
            if layout is None or not self.enabled:
                return own(*args, **kwargs)
            evaluation = self._next_pass(name)
            x = plain_input(mod, args, kwargs)
            if x is None or layout.trivial:
                return own(*args, **kwargs)
            return self._combined(mod, kind, (evaluation, name), layout, x)

        return forward

    def _attn2_forward(self, module: nn.Module, kind: str) -> Callable[..., Any]:
        own = self._own(module)
        keyword = _CONTEXT_ARG[kind]

        def forward(mod: nn.Module, *args: Any, **kwargs: Any) -> Any:
            layout = self._layout
            if layout is None or not self.enabled:
                return own(*args, **kwargs)
            if len(args) > 1:
                args = (args[0], self._group_mean(layout, args[1]), *args[2:])
            elif kwargs.get(keyword) is not None:
                kwargs = {**kwargs, keyword: self._group_mean(layout, kwargs[keyword])}
            return own(*args, **kwargs)

        return forward

    def _next_pass(self, name: str) -> int:
        evaluation = self._passes.get(name, 0)
        self._passes[name] = evaluation + 1
        return evaluation

    # --- the computation ---------------------------------------------------------------------

    def _halves(self, layout: _Layout, rows: int) -> int:
        per = len(layout.rows)
        if rows % per:
            raise ConfigError(
                "frames",
                list(layout.frames),
                f"a UNet batch of k × {per} rows (references + frames per CFG half)",
                f"this call has {rows} rows; declare each call's frames and references with set_batch",
            )
        return rows // per

    def _group_mean(self, layout: _Layout, context: Any) -> Any:
        """Each frame row's text context replaced by its group's mean (Studio's ``text_emb.mean(0)``)."""
        if not isinstance(context, torch.Tensor) or context.ndim != 3:
            return context
        per = len(layout.rows)
        out = context.clone()
        for half in range(self._halves(layout, context.shape[0])):
            for members in self._groups(layout):
                rows = [half * per + r for r in members]
                out[rows] = context[rows].mean(dim=0, keepdim=True)
        return out

    def _groups(self, layout: _Layout) -> list[list[int]]:
        """Row positions of each group (frame rows only; references come first and stay alone)."""
        start, size = len(layout.rows) - len(layout.frames), self.group_size or 1
        return [list(range(r, min(r + size, len(layout.rows)))) for r in range(start, len(layout.rows), size)]

    def _combined(self, mod: nn.Module, kind: str, key: tuple[int, str], layout: _Layout, x: torch.Tensor):
        """``attn1`` of the whole call: ``x (halves × rows, N, C)`` → ``(halves × rows, N, C)``."""
        per = len(layout.rows)
        halves = self._halves(layout, x.shape[0])
        q, k, v = mod.to_q(x), mod.to_k(x), mod.to_v(x)
        out = torch.empty_like(q)
        for half in range(halves):
            part = slice(half * per, (half + 1) * per)
            cache_key = (*key, half)
            pool_k, pool_v, index = self._pool(layout, cache_key, k[part], v[part])
            by_length: dict[int, list[int]] = {}
            for row, sources in enumerate(layout.sources):
                by_length.setdefault(len(sources), []).append(row)
            for rows in by_length.values():
                step = self.attention_chunk or len(rows)
                for i in range(0, len(rows), step):
                    chunk = rows[i : i + step]
                    idx = torch.tensor([[index[s] for s in layout.sources[r]] for r in chunk], device=x.device)
                    keys = pool_k[idx].flatten(1, 2)  # (rows, sources × N, C)
                    values = pool_v[idx].flatten(1, 2)
                    target = [half * per + r for r in chunk]
                    out[target] = _attend(q[target], keys, values, mod.heads, getattr(mod, "scale", None))
            self._store(layout, cache_key, k[part], v[part])
        out = _project_out(mod, out)
        if kind == "diffusers":
            if mod.residual_connection:
                out = out + x
            out = out / mod.rescale_output_factor
        return out

    def _pool(
        self, layout: _Layout, cache_key: tuple[int, str, int], k: torch.Tensor, v: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, dict[Source, int]]:
        """Keys/values of this half's rows, then of the cached sources the rows need; source → position."""
        index: dict[Source, int] = {row: i for i, row in enumerate(layout.rows)}
        cached = self._cache.get(cache_key, {})
        extra = sorted({s for src in layout.sources for s in src if s not in index}, key=str)
        for source in extra:
            if source not in cached:
                raise self._missing(layout, source)
            kk, vv = cached[source]
            if kk.shape != k.shape[1:]:
                raise ConfigError(
                    "references",
                    source,
                    f"keys of shape {tuple(k.shape[1:])} like the frames'",
                    "references and frames must have the same latent size",
                )
            index[source] = len(index)
        if not extra:
            return k, v, index
        pool_k = torch.cat([k, *(cached[s][0].to(k)[None] for s in extra)])
        pool_v = torch.cat([v, *(cached[s][1].to(v)[None] for s in extra)])
        return pool_k, pool_v, index

    def _missing(self, layout: _Layout, source: Source) -> ConfigError:
        if isinstance(source, str):
            return ConfigError(
                "references",
                source,
                "a reference rendered earlier in this step",
                f"the pattern names {source}: put its row in the step's first chunk (set_batch(references=...))",
            )
        return ConfigError(
            "frames",
            list(layout.frames),
            "chunks fed in increasing frame order within a step",
            f"frame {source}'s keys are needed but were not rendered earlier in this step",
        )

    def _store(self, layout: _Layout, cache_key: tuple[int, str, int], k: torch.Tensor, v: torch.Tensor) -> None:
        """Keep what later chunks need (references, frames reached by negative offsets); drop the rest."""
        old = self._cache.pop(cache_key, {})
        new = {s: kv for s, kv in old.items() if s in layout.keep}
        for row, source in enumerate(layout.rows):
            if source in layout.keep:
                device = self.cache_device or k.device
                new[source] = (k[row].detach().to(device, copy=True), v[row].detach().to(device, copy=True))
        if new:
            self._cache[cache_key] = new

    # --- batches and steps -------------------------------------------------------------------

    def set_batch(self, frames: Iterable[int], references: Iterable[int] = ()) -> None:
        """Declare the following UNet calls' rows: per CFG half, the reference rows ``references``
        (indices k of ``"reference_k"``) and then the absolute frame indices ``frames`` (increasing).

        Also restarts the count of evaluations, by which calls are matched with earlier chunks' cached
        keys and values. Raises :class:`ConfigError` for indices out of range or out of order.
        """
        refs = _check_indices("references", references, None)
        chunk = _check_indices("frames", frames, self.num_frames)
        if refs and self.pattern is None:
            raise ConfigError("references", list(refs), "none", "groups take no reference images")
        if not chunk:
            raise ConfigError("frames", [], "at least one frame")
        self._layout = self._make_layout(chunk, tuple(f"reference_{r}" for r in refs))
        self._passes = {}

    def _make_layout(self, chunk: tuple[int, ...], refs: tuple[str, ...]) -> _Layout:
        rows: tuple[Source, ...] = (*refs, *chunk)
        if self.pattern is None:
            sources = [(r,) for r in refs]
            for start in range(0, len(chunk), self.group_size or 1):
                group = chunk[start : start + (self.group_size or 1)]
                sources.extend(group for _ in group)
            return _Layout(rows, tuple(sources), frozenset(), chunk)
        n, last = self.num_frames or 1, chunk[-1]
        sources = [(r,) for r in refs]
        for frame in chunk:
            sources.append(tuple(e if isinstance(e, str) else _frame_for(e, frame, n, last) for e in self.pattern))
        keep: set[Source] = {e for e in self.pattern if isinstance(e, str)}
        keep |= _needed_later(self.pattern, last, n)
        return _Layout(rows, tuple(sources), frozenset(keep), chunk)

    def clear_batch(self) -> None:
        """Back to every module's own forward (the cache stays)."""
        self._layout = None

    @contextmanager
    def batch(self, frames: Iterable[int], references: Iterable[int] = ()) -> Iterator[CombineAttention]:
        """:meth:`set_batch` for the ``with`` block, :meth:`clear_batch` after it (also after an exception)."""
        self.set_batch(frames, references)
        try:
            yield self
        finally:
            self.clear_batch()

    def begin_step(self) -> None:
        """A new denoising step starts (step-major rendering): drop the cache, restart the evaluation count."""
        self._cache.clear()
        self._passes = {}

    def reset(self) -> None:
        """Forget the batch and the cache (a new clip starts); the patch stays."""
        self._layout = None
        self._cache.clear()
        self._passes = {}

    @property
    def cached_sources(self) -> set[Source]:
        """The frames and references whose keys and values are cached now."""
        return {s for entries in self._cache.values() for s in entries}

    def cache_bytes(self) -> int:
        """Bytes held by the cache."""
        return sum(t.numel() * t.element_size() for e in self._cache.values() for kv in e.values() for t in kv)

    # --- undo --------------------------------------------------------------------------------

    @property
    def active(self) -> bool:
        return self._handle.active

    def restore(self) -> None:
        """Remove every forward we set and drop the cache. Idempotent."""
        self._handle.restore()

    def __enter__(self) -> CombineAttention:
        return self

    def __exit__(self, *exc: object) -> None:
        self.restore()


__all__ = [
    "FIRST_FRAME",
    "PATCH_NAME",
    "CombineAttention",
    "parse_combine_pattern",
    "pattern_sources",
]
