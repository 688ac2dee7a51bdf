"""Patch-match nearest-neighbour fields for video deflickering, in plain PyTorch (CPU or CUDA).

This is the matcher behind the FastBlend smoother (DiffSynth-Studio ``diffsynth/extensions/FastBlend``,
also shipped as Artiprocher/sd-webui-fastblend), re-derived from the semantics written down in
``shared/fixtures/stylize/README.md``; none of its code is reused. Everything "re-renders a style frame
``s`` in the geometry of frame ``t``" by matching guide ``s`` (the original footage) to guide ``t``.

Layout and units
----------------
* Images are float32 ``(B, H, W, C)`` on a 0..255 scale, channels last. Kernel inputs are zero-padded
  by ``pad`` pixels on each side: ``(B, H + 2*pad, W + 2*pad, C)``; the padding counts as black.
* An NNF is an integer ``(B, H, W, 2)`` "pull" map in target geometry: entry ``(x, y)`` holds the
  source pixel ``(row, col)`` whose neighbourhood target pixel ``(x, y)`` copies. Row first.
* Costs are raw sums of squared differences over a ``p x p`` window and all channels (no
  normalisation): ``guide_weight * SSD(guide) + SSD(style)``.

How the three kernels are vectorised
------------------------------------
A patch row of ``p`` pixels is ``p * C`` contiguous floats in a channels-last buffer, so every patch
is read as ``p`` "strips" gathered with one ``index_select`` each from an overlapping strided view
(:func:`_strip_view`), in chunks sized to stay in cache. The SSD of a candidate field is then ``p``
gathers, a subtraction and a dot product per chunk. The remap (patch voting) gathers, for each of
the ``p * p`` window offsets, one pixel per target through the neighbour's match, summed in the CUDA
kernel's order (so it is bit-identical to it); an extra all-ones channel, zero in the padding, counts
the contributions whose source lies inside the image.

Costs are float32 like the reference's; the guide is scaled by ``sqrt(guide_weight)`` and stacked with
the style so that one 6-channel SSD gives ``guide_weight * SSD(guide) + SSD(style)`` (the last bits
differ from the reference's two sums; the recorded runs replay exactly all the same).

Exact shortcuts (the result is what the plain evaluation gives):
* a candidate equal to the current entry is never better (acceptance is strictly ``<``), so with the
  per-frame style term only the pixels whose candidate differs are evaluated;
* partial SSD sums only grow, so a candidate stops being summed once its partial sum reaches the
  current cost (early termination).

Randomness comes from a :class:`RandomSource` the caller owns (default :class:`SeededRandom`, a CPU
``torch.Generator`` so draws do not depend on the device); tests replay recorded draws through it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum
from typing import Protocol, runtime_checkable

import torch
import torch.nn.functional as F

from ..errors import ConfigError

Tensor = torch.Tensor

RANDOM_SEARCH_STEPS = 3
"""Random candidates tried per iteration (FastBlend's ``random_search_steps``; fixed there too)."""
RANDOM_SEARCH_RANGE = 4
"""Largest random jitter per coordinate (``random_search_range``): steps are uniform in ``[-4, 4]``."""

# Floats per working buffer of the SSD loop: 1 MB buffers stay in a CPU core's L2 cache.
_CHUNK_FLOATS = {"cpu": 1 << 18, "cuda": 1 << 26}


class StyleTerm(str, Enum):
    """Which style term the cost uses (FastBlend's matcher switches)."""

    OWN = "own"
    """Style estimate of the target = this pair's source remapped by the NNF at the iteration start."""
    MEAN = "mean"
    """``use_mean_target_style`` (accurate mode): mean over the batch of every source remapped by the
    field being evaluated."""
    PAIRWISE = "pairwise"
    """``use_pairwise_patch_error`` (interpolation): pairs at even/odd batch positions; the SSD between
    the two sources' patches at their matches, given to both members."""


class Initialize(str, Enum):
    """Coarsest-level NNF (``initialize``)."""

    IDENTITY = "identity"
    RANDOM = "random"


@dataclass(frozen=True)
class MatchSettings:
    """Patch-match settings; names of the reference in brackets, defaults those of blending.

    * ``patch_size`` (``minimum_patch_size``, 5; 15 for keyframe interpolation): odd patch side of the
      last iteration; iteration ``k`` of ``iterations`` uses ``patch_size + 2 * (iterations - 1 - k)``.
    * ``iterations`` (``num_iter``, 5): iterations per pyramid level.
    * ``guide_weight`` (10.0): weight of the guide SSD against the style SSD.
    * ``initialize`` (``"identity"``): coarsest-level NNF, ``"identity"`` or ``"random"``.
    * ``tracking`` (``tracking_window_size``, 0): batch neighbours ``b +- 1..tracking`` whose matches
      are tried as candidates (meaningful when consecutive batch elements are consecutive frames).
    * ``style_term``: see :class:`StyleTerm`.
    * ``reference_upsampling`` (False): reproduce FastBlend's NNF upsampling between levels, which adds
      the odd-row/odd-column ``+1`` only to rows and columns whose index is odd and below the batch
      size. Off, every odd row and column gets it (the intended rule, fixed upstream in 2025).
    """

    patch_size: int = 5
    iterations: int = 5
    guide_weight: float = 10.0
    initialize: Initialize | str = Initialize.IDENTITY
    tracking: int = 0
    style_term: StyleTerm | str = StyleTerm.OWN
    reference_upsampling: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "initialize", _enum(Initialize, self.initialize, "initialize"))
        object.__setattr__(self, "style_term", _enum(StyleTerm, self.style_term, "style_term"))
        if not _is_int(self.patch_size) or self.patch_size < 1 or self.patch_size % 2 == 0:
            raise ConfigError("patch_size", self.patch_size, "an odd integer >= 1", "5 for blending, 15 for keyframes")
        if not _is_int(self.iterations) or self.iterations < 1:
            raise ConfigError("iterations", self.iterations, "an integer >= 1", "the reference uses 5")
        if not isinstance(self.guide_weight, (int, float)) or not math.isfinite(self.guide_weight):
            raise ConfigError("guide_weight", self.guide_weight, "a finite number >= 0")
        if self.guide_weight < 0:
            raise ConfigError("guide_weight", self.guide_weight, "a finite number >= 0")
        if not _is_int(self.tracking) or self.tracking < 0:
            raise ConfigError("tracking", self.tracking, "an integer >= 0")

    @property
    def patch_sizes(self) -> list[int]:
        """Patch side per iteration, largest first (``[13, 11, 9, 7, 5]`` with the defaults)."""
        return [self.patch_size + 2 * (self.iterations - 1 - k) for k in range(self.iterations)]

    @property
    def pad(self) -> int:
        """Zero padding of every image: half the largest patch."""
        return self.patch_sizes[0] // 2


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _enum(kind, value, field):
    try:
        return kind(value)
    except ValueError as e:
        raise ConfigError(field, value, [m.value for m in kind]) from e


def pyramid_sizes(height: int, width: int, settings: MatchSettings) -> list[tuple[int, int]]:
    """``(h, w)`` of every pyramid level, coarsest first; the last is ``(height, width)``.

    ``L = floor(log2(min(H, W) / largest_patch))`` levels; level ``l`` is ``(H // 2**(L-1-l),
    W // 2**(L-1-l))``. Raises :class:`ConfigError` when ``L < 1`` (the image is smaller than twice the
    largest patch; the reference crashes there).
    """
    largest = settings.patch_sizes[0]
    levels = 0
    while largest << (levels + 1) <= min(height, width):  # exact integer floor(log2(min / largest))
        levels += 1
    if levels < 1:
        raise ConfigError(
            "patch_size",
            settings.patch_size,
            f"at most {(min(height, width) // 2 - 2 * (settings.iterations - 1)) | 1} for a {width}x{height} image",
            "the image must be at least twice the largest patch; lower patch_size or iterations",
        )
    return [(height >> (levels - 1 - lv), width >> (levels - 1 - lv)) for lv in range(levels)]


@runtime_checkable
class RandomSource(Protocol):
    """Where the matcher's random draws come from, in the reference's order.

    Per pyramid level and iteration: one :meth:`permutation` of the four propagation directions, then
    :data:`RANDOM_SEARCH_STEPS` calls of :meth:`steps`. :meth:`random_nnf` only with ``initialize="random"``.
    """

    def permutation(self) -> list[int]:
        """An order of the directions 0 (from above), 1 (from the left), 2 (from below), 3 (from the right)."""
        ...

    def steps(self, shape: tuple[int, int, int, int]) -> Tensor:
        """Integer steps of ``shape`` ``(B, h, w, 2)``, uniform in ``[-4, 4]`` (CPU or any device)."""
        ...

    def random_nnf(self, batch: int, height: int, width: int) -> Tensor:
        """A uniformly random ``(batch, height, width, 2)`` field of in-image coordinates."""
        ...


class SeededRandom:
    """:class:`RandomSource` from a CPU ``torch.Generator`` seeded once: same seed, same draws, any device."""

    def __init__(self, seed: int = 0):
        self.generator = torch.Generator(device="cpu")
        self.generator.manual_seed(int(seed))

    def permutation(self) -> list[int]:
        return torch.randperm(4, generator=self.generator).tolist()

    def steps(self, shape: tuple[int, int, int, int]) -> Tensor:
        r = RANDOM_SEARCH_RANGE
        return torch.randint(-r, r + 1, shape, generator=self.generator, dtype=torch.int64)

    def random_nnf(self, batch: int, height: int, width: int) -> Tensor:
        rows = torch.randint(0, height, (batch, height, width), generator=self.generator, dtype=torch.int64)
        cols = torch.randint(0, width, (batch, height, width), generator=self.generator, dtype=torch.int64)
        return torch.stack([rows, cols], dim=-1)


# ---------------------------------------------------------------------------------------------------
# Kernels
# ---------------------------------------------------------------------------------------------------


def _chunk_rows(device: torch.device, floats_per_row: int) -> int:
    budget = _CHUNK_FLOATS["cuda" if device.type == "cuda" else "cpu"]
    return max(256, budget // max(1, floats_per_row))


def _strip_view(padded: Tensor, p: int) -> Tensor:
    """Overlapping view ``(B*Hp*Wp - p + 1, p*C)`` of a contiguous ``(B, Hp, Wp, C)`` buffer.

    Row ``k`` is the ``p`` pixels starting at flat pixel ``k`` (channels interleaved): one patch row.
    """
    channels = padded.shape[-1]
    flat = padded.reshape(-1)
    return flat.as_strided((flat.numel() // channels - p + 1, p * channels), (channels, 1))


def _corner_index(nnf: Tensor, padded_shape: tuple[int, ...], pad: int, r: int) -> Tensor:
    """Flat pixel index (into the padded buffer) of the top-left pixel of each source patch: ``(B*H*W,)``."""
    batch = nnf.shape[0]
    hp, wp = padded_shape[1], padded_shape[2]
    b = torch.arange(batch, device=nnf.device).view(batch, 1, 1) * (hp * wp)
    return (b + (nnf[..., 0] + (pad - r)) * wp + (nnf[..., 1] + (pad - r))).reshape(-1)


def _grid_corner_index(batch: int, height: int, width: int, padded_shape, pad: int, r: int, device) -> Tensor:
    """Like :func:`_corner_index` for the identity field (the target's own patches)."""
    hp, wp = padded_shape[1], padded_shape[2]
    b = torch.arange(batch, device=device).view(batch, 1, 1) * (hp * wp)
    i = torch.arange(height, device=device).view(1, height, 1)
    j = torch.arange(width, device=device).view(1, 1, width)
    return (b + (i + (pad - r)) * wp + (j + (pad - r))).reshape(-1)


def _ssd(
    strips_a: Tensor,
    corner_a: Tensor,
    strips_b: Tensor,
    corner_b: Tensor,
    p: int,
    row_stride: int,
    threshold: Tensor | None = None,
) -> Tensor:
    """SSD of ``N`` pairs of ``p x p`` patches, given their top-left flat pixel indices: ``(N,)`` float32.

    ``strips_*`` come from :func:`_strip_view` with the same ``p``; ``row_stride`` is the padded width.
    With ``threshold`` (``(N,)``), a pair whose partial sum reaches its threshold is abandoned and
    reported as ``+inf`` (its full sum could only be larger).
    """
    n = corner_a.numel()
    out = torch.empty(n, dtype=torch.float32, device=corner_a.device)
    if n == 0:
        return out
    width = strips_a.shape[1]
    chunk = _chunk_rows(corner_a.device, width)
    buf_a = torch.empty((min(chunk, n), width), dtype=torch.float32, device=corner_a.device)
    buf_b = torch.empty_like(buf_a)
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        ca, cb = corner_a[start:stop], corner_b[start:stop]
        acc = torch.zeros(stop - start, dtype=torch.float32, device=corner_a.device)
        if threshold is None:
            for dx in range(p):
                a = torch.index_select(strips_a, 0, ca + dx * row_stride, out=buf_a[: stop - start])
                a.sub_(torch.index_select(strips_b, 0, cb + dx * row_stride, out=buf_b[: stop - start]))
                acc += torch.linalg.vecdot(a, a)
            out[start:stop] = acc
            continue
        limit = threshold[start:stop]
        where = torch.arange(start, stop, device=corner_a.device)
        for dx in range(p):
            m = ca.numel()
            a = torch.index_select(strips_a, 0, ca + dx * row_stride, out=buf_a[:m])
            a.sub_(torch.index_select(strips_b, 0, cb + dx * row_stride, out=buf_b[:m]))
            acc += torch.linalg.vecdot(a, a)
            if dx + 1 < p:
                keep = (acc < limit).nonzero().view(-1)
                if keep.numel() < m:
                    out[where] = math.inf
                    where, ca, cb = where[keep], ca[keep], cb[keep]
                    acc, limit = acc[keep], limit[keep]
                    if keep.numel() == 0:
                        break
        out[where] = acc
    return out


def _pull_remap(source4: Tensor, nnf: Tensor, pad: int, p: int) -> Tensor:
    """Patch voting, ``(B, H, W, C)`` from a padded ``source4`` ``(B, Hp, Wp, C+1)`` whose last channel is 1
    inside the image and 0 in the padding.

    Target pixel ``x`` averages ``source[nnf(x + d) - d]`` over the offsets ``d`` of the window whose
    neighbour ``x + d`` is inside the image and whose source lies inside the image (the padding adds
    zero to both the sum and the count). Offsets are visited row by row and summed one at a time, the
    order of the CUDA kernel, so the float32 result is the kernel's to the bit.
    """
    batch, height, width = nnf.shape[:3]
    channels = source4.shape[-1]
    wp = source4.shape[2]
    r = p // 2
    margin = r * wp + r  # largest |offset| between a neighbour's match and the pixel read
    pixels = source4.reshape(-1, channels)
    # Zero blocks before and after the buffer: neighbours outside the image point into the one after,
    # and index_select on a view shifted by the offset replaces subtracting it from every index.
    sentinel = pixels.shape[0] + margin
    pixels = torch.cat([pixels.new_zeros((margin, channels)), pixels, pixels.new_zeros((2 * margin + 1, channels))])
    centre = _corner_index(nnf, source4.shape, pad, 0).view(batch, height, width)
    # Rows first, so that a band of rows of several images is one contiguous block of indices.
    framed = torch.full((height + 2 * r, batch, width + 2 * r), sentinel, dtype=torch.int64, device=nnf.device)
    framed[r : r + height, :, r : r + width] = centre.permute(1, 0, 2)
    out = torch.empty((batch, height, width, channels - 1), dtype=torch.float32, device=nnf.device)
    budget = _CHUNK_FLOATS["cuda" if nnf.device.type == "cuda" else "cpu"] // 4  # pixels per pass
    images = max(1, min(batch, budget // (height * width)))
    rows = height if images > 1 else max(1, budget // width)
    for b0 in range(0, batch, images):
        b1 = min(batch, b0 + images)
        for top in range(0, height, rows):
            bottom = min(height, top + rows)
            acc = torch.zeros(((bottom - top) * (b1 - b0) * width, channels), dtype=torch.float32, device=nnf.device)
            shifted = [framed[top : bottom + 2 * r, b0:b1, dc : dc + width].contiguous() for dc in range(2 * r + 1)]
            for dr in range(-r, r + 1):
                for dc in range(-r, r + 1):
                    neighbour = shifted[dc + r][r + dr : r + dr + bottom - top].view(-1)
                    acc += pixels[margin - (dr * wp + dc) :].index_select(0, neighbour)
            acc = acc.view(bottom - top, b1 - b0, width, channels).permute(1, 0, 2, 3)
            torch.div(acc[..., :-1], acc[..., -1:], out=out[b0:b1, top:bottom])
    return out


def _with_count_channel(padded: Tensor, pad: int) -> Tensor:
    """``padded`` with an extra last channel: 1 inside the image, 0 in the padding."""
    ones = torch.zeros(padded.shape[:-1] + (1,), dtype=padded.dtype, device=padded.device)
    ones[:, pad : padded.shape[1] - pad, pad : padded.shape[2] - pad] = 1.0
    return torch.cat([padded, ones], dim=-1).contiguous()


def remap(source: Tensor, nnf: Tensor, patch_size: int, pad: int) -> Tensor:
    """FastBlend's remapping kernel: re-render ``source`` in the target geometry given by ``nnf``.

    ``source`` float32 ``(B, H+2*pad, W+2*pad, C)`` zero-padded; ``nnf`` integer ``(B, H, W, 2)``;
    ``patch_size`` odd with ``patch_size // 2 <= pad``. Output pixel ``(x, y)`` is the mean, over the
    neighbours ``(x+dx, y+dy)`` inside the image with ``|dx|, |dy| <= patch_size // 2``, of
    ``source[nnf(x+dx, y+dy) - (dx, dy)]``, sources outside the image skipped. Returns a zero-padded
    ``(B, H+2*pad, W+2*pad, C)`` buffer like the kernel's.
    """
    src4 = _with_count_channel(source.float().contiguous(), pad)
    out = _pull_remap(src4, nnf.long(), pad, patch_size)
    return F.pad(out.permute(0, 3, 1, 2), (pad, pad, pad, pad)).permute(0, 2, 3, 1).contiguous()


def patch_error(source: Tensor, nnf: Tensor, target: Tensor, patch_size: int, pad: int) -> Tensor:
    """FastBlend's patch-error kernel: SSD of ``target``'s patch at ``(x, y)`` and ``source``'s at ``nnf(x, y)``.

    ``source``, ``target`` float32 ``(B, H+2*pad, W+2*pad, C)`` zero-padded; returns ``(B, H, W)``.
    """
    batch, height, width = nnf.shape[:3]
    r = patch_size // 2
    source, target = source.float().contiguous(), target.float().contiguous()
    corner_s = _corner_index(nnf.long(), source.shape, pad, r)
    corner_t = _grid_corner_index(batch, height, width, target.shape, pad, r, nnf.device)
    err = _ssd(
        _strip_view(source, patch_size),
        corner_s,
        _strip_view(target, patch_size),
        corner_t,
        patch_size,
        source.shape[2],
    )
    return err.view(batch, height, width)


def pairwise_patch_error(
    source_a: Tensor, nnf_a: Tensor, source_b: Tensor, nnf_b: Tensor, patch_size: int, pad: int
) -> Tensor:
    """FastBlend's pairwise kernel: SSD of ``source_a``'s patch at ``nnf_a(x, y)`` and ``source_b``'s at ``nnf_b(x, y)``.

    Sources float32 ``(B, H+2*pad, W+2*pad, C)`` zero-padded; fields ``(B, H, W, 2)``; returns ``(B, H, W)``.
    """
    batch, height, width = nnf_a.shape[:3]
    r = patch_size // 2
    source_a, source_b = source_a.float().contiguous(), source_b.float().contiguous()
    corner_a = _corner_index(nnf_a.long(), source_a.shape, pad, r)
    corner_b = _corner_index(nnf_b.long(), source_b.shape, pad, r)
    err = _ssd(
        _strip_view(source_a, patch_size),
        corner_a,
        _strip_view(source_b, patch_size),
        corner_b,
        patch_size,
        source_a.shape[2],
    )
    return err.view(batch, height, width)


# ---------------------------------------------------------------------------------------------------
# Resampling between pyramid levels
# ---------------------------------------------------------------------------------------------------


def _area_weights(src: int, dst: int, device) -> Tensor:
    """``(dst, src)`` matrix of OpenCV ``INTER_AREA`` weights for one axis (box overlap / scale)."""
    scale = src / dst
    edges = torch.arange(dst + 1, dtype=torch.float64) * scale
    lo, hi = edges[:-1].view(-1, 1), edges[1:].view(-1, 1)
    k = torch.arange(src, dtype=torch.float64).view(1, -1)
    overlap = (torch.minimum(hi, k + 1) - torch.maximum(lo, k)).clamp_min(0.0)
    return (overlap / scale).to(device=device, dtype=torch.float32)


def area_resize(images: Tensor, height: int, width: int) -> Tensor:
    """Downscale ``(B, H, W, C)`` float images like OpenCV's ``INTER_AREA`` (block mean for integer factors)."""
    _, h, w, _ = images.shape
    if (h, w) == (height, width):
        return images
    x = images.permute(0, 3, 1, 2)
    if h % height == 0 and w % width == 0:
        x = F.avg_pool2d(x, (h // height, w // width))
    else:
        x = torch.einsum("ih,bchw,jw->bcij", _area_weights(h, height, x.device), x, _area_weights(w, width, x.device))
    return x.permute(0, 2, 3, 1).contiguous()


def upsample_nnf(nnf: Tensor, height: int, width: int, reference_quirk: bool = False) -> Tensor:
    """Carry a field from one pyramid level to the next (twice the size, or ``height x width``).

    Every entry is copied to its 2x2 block with doubled coordinates, ``+1`` on the row of odd rows and
    on the column of odd columns; when the doubled size is not ``height x width`` the field is resized
    bilinearly (OpenCV ``INTER_LINEAR`` geometry), truncated to integers and clamped to the image.
    ``reference_quirk`` reproduces FastBlend, whose ``+1`` reaches only rows and columns whose index is
    odd and below the batch size (README quirk 2).
    """
    batch = nnf.shape[0]
    up = nnf.repeat_interleave(2, dim=1).repeat_interleave(2, dim=2) * 2
    if reference_quirk:
        odd = [i for i in range(batch) if i & 1]
        rows = torch.tensor([i for i in odd if i < up.shape[1]], dtype=torch.long, device=nnf.device)
        cols = torch.tensor([i for i in odd if i < up.shape[2]], dtype=torch.long, device=nnf.device)
        up[:, rows, :, 0] += 1
        up[:, :, cols, 1] += 1
    else:
        up[:, 1::2, :, 0] += 1
        up[:, :, 1::2, 1] += 1
    if up.shape[1:3] != (height, width):
        resized = F.interpolate(
            up.permute(0, 3, 1, 2).float(), size=(height, width), mode="bilinear", align_corners=False
        )
        up = resized.to(torch.int64).permute(0, 2, 3, 1)
    return _clamp(up, height, width)


def _clamp(nnf: Tensor, height: int, width: int) -> Tensor:
    return torch.stack([nnf[..., 0].clamp(0, height - 1), nnf[..., 1].clamp(0, width - 1)], dim=-1)


def _identity_nnf(batch: int, height: int, width: int, device) -> Tensor:
    rows = torch.arange(height, device=device).view(height, 1).expand(height, width)
    cols = torch.arange(width, device=device).view(1, width).expand(height, width)
    return torch.stack([rows, cols], dim=-1).unsqueeze(0).repeat(batch, 1, 1, 1)


def _neighbour_candidate(nnf: Tensor, direction: int, height: int, width: int) -> Tensor:
    """Every pixel takes its neighbour's match shifted one step on (edge pixels reuse their own entry)."""
    if direction == 0:  # from above: row + 1
        cand = torch.cat([nnf[:, :1], nnf[:, :-1]], dim=1)
        delta = (1, 0)
    elif direction == 1:  # from the left: col + 1
        cand = torch.cat([nnf[:, :, :1], nnf[:, :, :-1]], dim=2)
        delta = (0, 1)
    elif direction == 2:  # from below: row - 1
        cand = torch.cat([nnf[:, 1:], nnf[:, -1:]], dim=1)
        delta = (-1, 0)
    else:  # from the right: col - 1
        cand = torch.cat([nnf[:, :, 1:], nnf[:, :, -1:]], dim=2)
        delta = (0, -1)
    cand = cand + torch.tensor(delta, dtype=cand.dtype, device=cand.device)
    return _clamp(cand, height, width)


def _batch_shift(nnf: Tensor, d: int) -> Tensor:
    """Element ``b`` takes element ``b + d``'s field, clamped to the first/last element."""
    batch = nnf.shape[0]
    index = (torch.arange(batch, device=nnf.device) + d).clamp(0, batch - 1)
    return nnf.index_select(0, index)


# ---------------------------------------------------------------------------------------------------
# The matcher
# ---------------------------------------------------------------------------------------------------


class _Level:
    """One pyramid level of one batch: padded buffers and the cost of a field."""

    def __init__(self, settings: MatchSettings, source_guide: Tensor, target_guide: Tensor, source_style: Tensor):
        self.settings = settings
        self.batch, self.height, self.width = source_guide.shape[:3]
        self.pad = settings.pad
        self.device = source_guide.device
        pad = self.pad
        g = math.sqrt(float(settings.guide_weight))
        padding = (0, 0, pad, pad, pad, pad)
        self.style4 = _with_count_channel(F.pad(source_style, padding), pad)
        if settings.style_term == StyleTerm.PAIRWISE:
            self.src = F.pad(source_guide * g, padding).contiguous()
            self.tgt = F.pad(target_guide * g, padding).contiguous()
            self.style = F.pad(source_style, padding).contiguous()
        else:
            # Guide scaled by sqrt(guide_weight) and style side by side: one 6-channel SSD per candidate.
            self.src = F.pad(torch.cat([source_guide * g, source_style], dim=-1), padding).contiguous()
            self.tgt = F.pad(
                torch.cat([target_guide * g, torch.zeros_like(source_style)], dim=-1), padding
            ).contiguous()
        self.wp = self.src.shape[2]
        self._p = -1

    def set_patch(self, p: int) -> None:
        self._p = p
        r = p // 2
        self.src_strips = _strip_view(self.src, p)
        self.tgt_strips = _strip_view(self.tgt, p)
        self.grid = _grid_corner_index(self.batch, self.height, self.width, self.src.shape, self.pad, r, self.device)
        if self.settings.style_term == StyleTerm.PAIRWISE:
            self.style_strips = _strip_view(self.style, p)

    def remap(self, nnf: Tensor, p: int) -> Tensor:
        """``(B, h, w, 3)``: the source style re-rendered through ``nnf`` with patch ``p``."""
        return _pull_remap(self.style4, nnf, self.pad, p)

    def set_style_estimate(self, estimate: Tensor) -> None:
        pad = self.pad
        self.tgt[:, pad : pad + self.height, pad : pad + self.width, 3:] = estimate

    def cost(self, nnf: Tensor, threshold: Tensor | None = None, only: Tensor | None = None) -> Tensor:
        """Cost of every pixel's entry in ``nnf``: ``(B*h*w,)``; ``+inf`` where not evaluated.

        ``only`` (bool ``(B*h*w,)``) restricts the evaluation (own style term only); ``threshold``
        enables early termination against the current costs.
        """
        p, r = self._p, self._p // 2
        term = self.settings.style_term
        if term == StyleTerm.MEAN:
            estimate = self.remap(nnf, p).mean(dim=0, keepdim=True)
            self.set_style_estimate(estimate.expand(self.batch, -1, -1, -1))
        corners = _corner_index(nnf, self.src.shape, self.pad, r)
        if term == StyleTerm.PAIRWISE:
            return self._pairwise_cost(corners, threshold)
        if only is None:
            return _ssd(self.src_strips, corners, self.tgt_strips, self.grid, p, self.wp, threshold)
        out = torch.full_like(self.grid, math.inf, dtype=torch.float32)
        idx = only.nonzero().view(-1)
        limit = None if threshold is None else threshold[idx]
        out[idx] = _ssd(self.src_strips, corners[idx], self.tgt_strips, self.grid[idx], p, self.wp, limit)
        return out

    def _pairwise_cost(self, corners: Tensor, threshold: Tensor | None) -> Tensor:
        """Guide SSD of each member plus the SSD between the pair's two source patches, given to both."""
        p, n = self._p, self.height * self.width
        guide = _ssd(self.src_strips, corners, self.tgt_strips, self.grid, p, self.wp, threshold)
        pairs = corners.view(-1, 2, n)
        first, second = pairs[:, 0].reshape(-1), pairs[:, 1].reshape(-1)
        if threshold is None:
            style = _ssd(self.style_strips, first, self.style_strips, second, p, self.wp)
        else:
            # A pair term at least the larger member's room (current cost minus its guide SSD) rejects
            # both. The room is widened by 1e-5 of the current cost, far above float32 rounding, so
            # early termination never rejects a winner; -inf (both members already out) stays out.
            current = threshold.view(-1, 2, n)
            room = (current - guide.view(-1, 2, n)).amax(dim=1) + current.amax(dim=1) * 1e-5
            room = room.reshape(-1)
            style = torch.full_like(room, math.inf)
            alive = (room > 0).nonzero().view(-1)
            style[alive] = _ssd(
                self.style_strips, first[alive], self.style_strips, second[alive], p, self.wp, room[alive]
            )
        return guide + style.view(-1, 1, n).expand(-1, 2, n).reshape(-1)


class PatchMatcher:
    """Pyramid patch matcher (FastBlend's ``PyramidPatchMatcher``) for images of one size.

    ``match(source_guide, target_guide, source_style, rng)`` takes float32 ``(B, H, W, 3)`` tensors on
    one device (0..255) and returns the final NNF ``(B, H, W, 2)`` int64 and the source style
    re-rendered in each target's geometry ``(B, H, W, 3)`` float32. Batch elements are independent
    except through the ``mean`` and ``pairwise`` style terms and tracking. Levels are built from the
    full-size images with area averaging (OpenCV ``INTER_AREA``); the coarsest starts from the identity
    (or a random field), each finer one from the previous field upsampled (:func:`upsample_nnf`).
    """

    def __init__(self, height: int, width: int, settings: MatchSettings | None = None):
        self.settings = settings or MatchSettings()
        self.height, self.width = height, width
        self.levels = pyramid_sizes(height, width, self.settings)
        self._pairwise = self.settings.style_term == StyleTerm.PAIRWISE
        self.trace: list[dict[str, Tensor]] | None = None
        """Set to a list to record each level's NNF in and out (``{"nnf_in", "nnf_out"}``)."""

    def match(
        self, source_guide: Tensor, target_guide: Tensor, source_style: Tensor, rng: RandomSource
    ) -> tuple[Tensor, Tensor]:
        batch = source_guide.shape[0]
        if self._pairwise and batch % 2:
            raise ConfigError("batch", batch, "an even number of pairs", "the pairwise style term matches pairs")
        nnf = None
        out = None
        for index, (h, w) in enumerate(self.levels):
            if index == 0:
                if self.settings.initialize == Initialize.RANDOM:
                    nnf = rng.random_nnf(batch, h, w).to(device=source_guide.device, dtype=torch.int64)
                else:
                    nnf = _identity_nnf(batch, h, w, source_guide.device)
            else:
                nnf = upsample_nnf(nnf, h, w, self.settings.reference_upsampling)
            level = _Level(
                self.settings,
                area_resize(source_guide, h, w),
                area_resize(target_guide, h, w),
                area_resize(source_style, h, w),
            )
            nnf_in = nnf
            nnf = self._estimate_level(level, nnf, rng)
            if self.trace is not None:
                self.trace.append({"nnf_in": nnf_in, "nnf_out": nnf})
            if index == len(self.levels) - 1:
                out = level.remap(nnf, self.settings.patch_sizes[-1])
        return nnf, out

    def _estimate_level(self, level: _Level, nnf: Tensor, rng: RandomSource) -> Tensor:
        settings = self.settings
        h, w = level.height, level.width
        own = settings.style_term == StyleTerm.OWN
        for p in settings.patch_sizes:
            level.set_patch(p)
            if own:
                level.set_style_estimate(level.remap(nnf, p))
            err = level.cost(nnf)
            flat = nnf.view(-1, 2)

            def update(cand: Tensor, sparse: bool) -> None:
                nonlocal nnf, err, flat
                cflat = cand.reshape(-1, 2)
                # Only the per-frame style term makes a pixel's cost depend on its own entry alone.
                changed = (cflat != flat).any(dim=1) if own and sparse else None
                cand_err = level.cost(cand, threshold=err, only=changed)
                better = cand_err < err
                flat = torch.where(better.unsqueeze(1), cflat, flat)
                err = torch.where(better, cand_err, err)
                nnf = flat.view(nnf.shape)

            for direction in rng.permutation():
                update(_neighbour_candidate(nnf, int(direction), h, w), sparse=True)
            for _ in range(RANDOM_SEARCH_STEPS):
                step = rng.steps((level.batch, h, w, 2)).to(device=nnf.device, dtype=torch.int64)
                update(_clamp(nnf + step, h, w), sparse=False)
            for d in range(1, settings.tracking + 1):
                update(self._track(nnf, d), sparse=True)
                update(self._track(nnf, -d), sparse=True)
        return nnf

    def _track(self, nnf: Tensor, d: int) -> Tensor:
        if not self._pairwise:
            return _batch_shift(nnf, d)
        cand = torch.empty_like(nnf)
        cand[0::2] = _batch_shift(nnf[0::2], d)
        cand[1::2] = _batch_shift(nnf[1::2], d)
        return cand
