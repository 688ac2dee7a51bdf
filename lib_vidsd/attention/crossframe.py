"""Cross-frame attention: a frame's self-attention also looks at earlier frames' renders.

Multi-frame rendering stylises a clip one frame at a time. To keep the style consistent, the
self-attention (``attn1``) of every transformer block of frame ``k`` attends to the keys and
values of the first frame and of the previous frame as well as its own, as in Text2Video-Zero
(Khachatryan et al. 2023, "cross-frame attention") and Rerender-A-Video (Yang et al. 2023):

    out = softmax(Q_k · [K_k, K_first, K_prev]ᵀ · scale) · [V_k, V_first, V_prev]

where ``Q_k = to_q(x_k)`` and ``K_r = to_k(x_r)``, ``V_r = to_v(x_r)`` with ``x_r`` the
reference frame's own input tokens to the same module at the same sampling step. Frames render
sequentially, so those inputs are recorded while a frame renders and used by later frames.

Matching a call with its reference: the n-th call of a module during this frame uses the n-th
call of that module during the reference frame (one call per UNet evaluation, so sampling step and
cond/uncond pass line up when every frame runs the same sampler and steps). Batch rows are matched
by index: the cond/uncond layout of a UNet call is the same for every frame.

Memory: a frame's record holds every recorded input, on ``storage_device`` in ``storage_dtype``:

    bytes per frame ≈ Σ over recorded calls of rows × tokens × channels × bytes per element

For SD1.5 at 512×512 (64×64 latents) one UNet call with cond+uncond (2 rows) in float16 records
5 modules × 4096 tokens × 320 channels + 5 × 1024 × 640 + 5 × 256 × 1280 + 64 × 1280, about
46 MB; 20 steps make about 0.92 GB per frame. At most three records exist at once (first,
previous, and the frame being rendered); between frames two. ``max_tokens=1024`` leaves the
4096-token modules alone and cuts this to about 0.4 GB per frame.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError, IncompatibleModelError
from ..patching import PatchHandle, open_patch

log = logging.getLogger("vidsd.attention.crossframe")

PATCH_NAME = "cross_frame_attention"

#: The UNet's parts in the order a forward pass runs them, per UNet kind.
_PARTS = {
    "ldm": ("input_blocks", "middle_block", "output_blocks"),
    "diffusers": ("down_blocks", "mid_block", "up_blocks"),
}
#: Class names of the self-attention modules (``attn1``) of each kind's transformer blocks.
_ATTENTION_CLASSES = {
    "ldm": ("CrossAttention", "MemoryEfficientCrossAttention"),
    "diffusers": ("Attention",),
}
#: diffusers processors that compute plain softmax attention, which ours reproduces with references
#: added; any other processor (IP-Adapter, custom ones) keeps running as it is.
_PLAIN_PROCESSORS = (
    "AttnProcessor",
    "AttnProcessor2_0",
    "AttnProcessorNPU",
    "SlicedAttnProcessor",
    "XFormersAttnProcessor",
)
#: diffusers ``Attention`` options our computation does not reproduce; a module using one is left as it is.
_UNSUPPORTED_DIFFUSERS_PARTS = ("spatial_norm", "group_norm", "norm_q", "norm_k")


class Reference(str, Enum):
    """Which earlier frames a frame attends to."""

    FIRST = "first"  # the first frame rendered (its record is kept for the whole clip)
    PREVIOUS = "previous"  # the frame rendered just before


# --- finding the self-attention modules --------------------------------------------------------


def _unet_kind(unet: nn.Module) -> str:
    for kind, parts in _PARTS.items():
        down, _mid, up = parts  # a diffusers UNet may have no mid block (mid_block_type=None)
        if isinstance(getattr(unet, down, None), nn.Module) and isinstance(getattr(unet, up, None), nn.Module):
            return kind
    raise IncompatibleModelError(
        f"{type(unet).__name__} is not a UNet vidsd knows: expected an ldm/sgm UNetModel (input_blocks, "
        "middle_block, output_blocks) or a diffusers UNet2DConditionModel (down_blocks, mid_block, up_blocks)"
    )


def _is_self_attention(block: nn.Module, kind: str) -> bool:
    """Whether ``block`` is a transformer block whose ``attn1`` attends to its own tokens."""
    attn = block._modules.get("attn1")
    if attn is None or type(attn).__name__ not in _ATTENTION_CLASSES[kind]:
        return False
    # ldm's disable_self_attn and diffusers' only_cross_attention turn attn1 into cross-attention
    return not (getattr(block, "disable_self_attn", False) or getattr(block, "only_cross_attention", False))


def self_attention_sites(unet: nn.Module) -> list[tuple[str, nn.Module]]:
    """Every self-attention module (``attn1`` of each transformer block) as ``(dotted name, module)``.

    Works on an ldm/sgm ``UNetModel`` (``ldm.modules.attention.CrossAttention``) and a diffusers
    ``UNet2DConditionModel`` (``Attention``), found from class names and attributes. Listed in the
    order a forward pass runs them: down (input) blocks, middle block, up (output) blocks.
    Raises :class:`IncompatibleModelError` for another model, or a UNet without self-attention.
    """
    kind = _unet_kind(unet)
    sites = []
    for part in _PARTS[kind]:
        tree = getattr(unet, part, None)
        for name, block in tree.named_modules(prefix=part) if tree is not None else ():
            if _is_self_attention(block, kind):
                sites.append((f"{name}.attn1", block.attn1))
    if not sites:
        raise IncompatibleModelError(f"this {kind} UNet has no self-attention modules (attn1 of transformer blocks)")
    return sites


# --- the attention computation -----------------------------------------------------------------


def _attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int, scale: float | None) -> torch.Tensor:
    """Multi-head softmax attention: ``q (B, Nq, H·D)``, ``k, v (B, Nk, H·D)`` → ``(B, Nq, H·D)``.

    Channels are split head-major (``(h d)``), as both ldm and diffusers lay them out.
    """
    q, k, v = (t.unflatten(-1, (heads, -1)).transpose(1, 2) for t in (q, k, v))
    return F.scaled_dot_product_attention(q, k, v, scale=scale).transpose(1, 2).flatten(2)


def _project_out(module: nn.Module, out: torch.Tensor) -> torch.Tensor:
    """``to_out``: ldm's ``Sequential`` and diffusers' ``ModuleList`` of (Linear, Dropout) alike."""
    for layer in module.to_out:
        out = layer(out)
    return out


def _ldm_attention(module: nn.Module, x: torch.Tensor, kv: torch.Tensor) -> torch.Tensor:
    """ldm ``CrossAttention`` with queries from ``x (B, N, C)`` and keys/values from ``kv (B, M, C)``."""
    q, k, v = module.to_q(x), module.to_k(kv), module.to_v(kv)
    return _project_out(module, _attend(q, k, v, module.heads, getattr(module, "scale", None)))


def _diffusers_attention(module: nn.Module, x: torch.Tensor, kv: torch.Tensor) -> torch.Tensor:
    """diffusers ``Attention`` (what ``AttnProcessor2_0`` computes for 3-D input without norms), keys/values
    from ``kv (B, M, C)``; the residual connection and output rescaling are honoured."""
    q, k, v = module.to_q(x), module.to_k(kv), module.to_v(kv)
    out = _project_out(module, _attend(q, k, v, module.heads, module.scale))
    if module.residual_connection:
        out = out + x
    return out / module.rescale_output_factor


# --- which calls are plain self-attention ------------------------------------------------------


def _is_default(value: Any) -> bool:
    return value is None or (type(value) is int and value == 0)


def _plain_input(args: tuple, kwargs: dict[str, Any], first: str) -> torch.Tensor | None:
    """The hidden states ``(B, N, C)`` of a call whose other arguments are all left at their defaults
    (no context, no mask, no extra tokens), else ``None``."""
    if args:
        x, rest = args[0], [*args[1:], *kwargs.values()]
    else:
        x, rest = kwargs.get(first), [v for k, v in kwargs.items() if k != first]
    if not isinstance(x, torch.Tensor) or x.ndim != 3 or not all(_is_default(v) for v in rest):
        return None
    return x


def _ldm_input(module: nn.Module, args: tuple, kwargs: dict[str, Any]) -> torch.Tensor | None:
    return _plain_input(args, kwargs, "x")


def _diffusers_input(module: nn.Module, args: tuple, kwargs: dict[str, Any]) -> torch.Tensor | None:
    if type(getattr(module, "processor", None)).__name__ not in _PLAIN_PROCESSORS:
        return None
    if any(getattr(module, part, None) is not None for part in _UNSUPPORTED_DIFFUSERS_PARTS):
        return None
    return _plain_input(args, kwargs, "hidden_states")


_KINDS: dict[str, tuple[Callable[..., torch.Tensor | None], Callable[..., torch.Tensor]]] = {
    "ldm": (_ldm_input, _ldm_attention),
    "diffusers": (_diffusers_input, _diffusers_attention),
}


# --- records -----------------------------------------------------------------------------------


@dataclass
class _FrameRecord:
    """The self-attention inputs of one frame: ``(module name, call index) → (rows, tokens, channels)``."""

    index: int
    calls: dict[tuple[str, int], torch.Tensor] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def next_call(self, name: str) -> int:
        """The index of this call among the module's calls in this frame (0, 1, …)."""
        call = self.counts.get(name, 0)
        self.counts[name] = call + 1
        return call

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.calls.values())


def _references_tuple(references: Iterable[str | Reference]) -> tuple[Reference, ...]:
    if isinstance(references, str):
        references = (references,)
    out: list[Reference] = []
    for ref in references:
        try:
            value = Reference(ref)
        except ValueError as e:
            raise ConfigError("references", ref, [r.value for r in Reference]) from e
        if value not in out:
            out.append(value)
    return tuple(out)


# --- the controller ----------------------------------------------------------------------------


class CrossFrameAttention:
    """Cross-frame attention on an ldm or diffusers UNet: the patch, the frame records, the switches.

    Usage, one frame at a time::

        with CrossFrameAttention(unet, references=("first", "previous")) as xfa:
            for i, frame in enumerate(frames):
                xfa.begin_frame(i)
                render(frame)            # every sampling step calls the UNet as usual
                xfa.end_frame()

    ``references``: ``"first"`` and/or ``"previous"`` (see :class:`Reference`); the same frame is
    never used twice (at frame 1, first and previous are both frame 0). ``storage_device`` and
    ``storage_dtype``: where and how records are kept (see the module docstring for their size).
    ``max_tokens``: calls with more tokens (``H·W`` of the latent at that level) run unchanged and are
    not recorded, bounding memory at high resolution; ``None`` means no limit.

    ``enabled = False`` runs every module's own forward (records are still made while ``record`` is
    true, so references stay up to date); ``record = False`` stops recording. Outside a frame
    (before :meth:`begin_frame`, after :meth:`end_frame`) every module runs its own forward.
    A call without a usable reference (none recorded for that call index, or a different number of
    batch rows or channels) runs the module's own forward, bit for bit.
    """

    def __init__(
        self,
        unet: nn.Module,
        references: Iterable[str | Reference] = (Reference.FIRST, Reference.PREVIOUS),
        *,
        storage_device: str | torch.device = "cpu",
        storage_dtype: torch.dtype = torch.float16,
        max_tokens: int | None = None,
    ):
        self.references = _references_tuple(references)
        if not storage_dtype.is_floating_point:
            raise ConfigError("storage_dtype", storage_dtype, "a floating-point dtype")
        if max_tokens is not None and (type(max_tokens) is not int or max_tokens < 0):
            raise ConfigError("max_tokens", max_tokens, "None or an integer >= 0")
        self.storage_device = torch.device(storage_device)
        self.storage_dtype = storage_dtype
        self.max_tokens = max_tokens
        self.enabled = True
        self.record = True
        self.sites = self_attention_sites(unet)
        self._first: _FrameRecord | None = None
        self._previous: _FrameRecord | None = None
        self._current: _FrameRecord | None = None
        self._keep_current = False
        self._handle = self._patch(unet)

    # --- patching ----------------------------------------------------------------------------

    def _patch(self, unet: nn.Module) -> PatchHandle:
        kind = _unet_kind(unet)
        handle = open_patch(unet, PATCH_NAME)
        try:
            for name, module in self.sites:
                handle.override_forward(module, self._forward_for(name, module, kind))
            handle.on_restore(self.reset)  # free the records with the patch (also via restore_all)
        except BaseException:
            handle.restore()
            raise
        log.info("cross-frame attention on %d %s self-attention modules (%s)", len(self.sites), kind, self.references)
        return handle

    def _forward_for(self, name: str, module: nn.Module, kind: str) -> Callable[..., Any]:
        """The instance forward of one module: ours when references exist, else the module's own."""
        own = module.__dict__.get("forward")  # an instance forward already there, else the class's at call time
        plain_input, attention = _KINDS[kind]

        def forward(mod: nn.Module, *args: Any, **kwargs: Any) -> Any:
            x = plain_input(mod, args, kwargs)
            refs = self._on_call(name, x)
            if refs:
                return attention(mod, x, torch.cat([x, *refs], dim=1))
            if own is not None:
                return own(*args, **kwargs)
            return type(mod).forward(mod, *args, **kwargs)

        return forward

    def _on_call(self, name: str, x: torch.Tensor | None) -> list[torch.Tensor]:
        """Count the call, record its input when wanted; the reference tokens to add (may be empty)."""
        frame = self._current
        if frame is None:
            return []
        key = (name, frame.next_call(name))
        if x is None or (self.max_tokens is not None and x.shape[1] > self.max_tokens):
            return []
        if self.record and self._keep_current:
            frame.calls[key] = x.detach().to(self.storage_device, self.storage_dtype, copy=True)
        if not self.enabled:
            return []
        return self._reference_tokens(key, x)

    def _reference_tokens(self, key: tuple[str, int], x: torch.Tensor) -> list[torch.Tensor]:
        """Each reference frame's input for this call ``(B, M, C)``, on ``x``'s device and dtype; a
        reference without this call, or with other rows or channels than ``x``, is left out."""
        tokens = []
        for record in self._reference_records():
            ref = record.calls.get(key)
            if ref is not None and ref.shape[0] == x.shape[0] and ref.shape[2] == x.shape[2]:
                tokens.append(ref.to(device=x.device, dtype=x.dtype))
        return tokens

    def _reference_records(self) -> list[_FrameRecord]:
        records: list[_FrameRecord] = []
        for ref in self.references:
            record = self._first if ref is Reference.FIRST else self._previous
            if record is not None and all(record is not r for r in records):
                records.append(record)
        return records

    # --- frames ------------------------------------------------------------------------------

    def begin_frame(self, index: int) -> None:
        """Start rendering frame ``index``: module calls are counted (and recorded) from here.

        A frame begun and never ended (an interrupted render) is discarded: it never becomes a reference.
        """
        self._current = _FrameRecord(index)
        needs_first = Reference.FIRST in self.references and self._first is None
        self._keep_current = needs_first or Reference.PREVIOUS in self.references

    def end_frame(self) -> None:
        """Finish the frame: it becomes the "previous" reference, and the "first" one when none is kept yet.

        The record it replaces is dropped unless it is also the first. No-op outside a frame.
        """
        frame, self._current = self._current, None
        if frame is None:
            return
        if Reference.FIRST in self.references and self._first is None and frame.calls:
            self._first = frame
        if Reference.PREVIOUS in self.references:
            self._previous = frame

    def reset(self) -> None:
        """Forget every record (a new clip starts); the patch stays."""
        self._first = self._previous = self._current = None

    @property
    def frame_index(self) -> int | None:
        """The frame being rendered, or ``None`` outside a frame."""
        return None if self._current is None else self._current.index

    @property
    def reference_frames(self) -> dict[str, int]:
        """The frames kept as references, e.g. ``{"first": 0, "previous": 4}``."""
        records = {Reference.FIRST: self._first, Reference.PREVIOUS: self._previous}
        return {ref.value: rec.index for ref, rec in records.items() if rec is not None}

    def stored_bytes(self) -> int:
        """Bytes held by the records (first, previous and the frame being rendered, each counted once)."""
        records = {id(r): r for r in (self._first, self._previous, self._current) if r is not None}
        return sum(r.nbytes() for r in records.values())

    # --- undo --------------------------------------------------------------------------------

    @property
    def active(self) -> bool:
        return self._handle.active

    def restore(self) -> None:
        """Remove every forward we set and drop the records. Idempotent."""
        self._handle.restore()

    def __enter__(self) -> CrossFrameAttention:
        return self

    def __exit__(self, *exc: object) -> None:
        self.restore()
