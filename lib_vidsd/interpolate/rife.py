"""RIFE frame interpolation: the IFNet 4.x networks of Practical-RIFE, as ComfyUI and Deforum run them.

RIFE (Huang et al., "Real-Time Intermediate Flow Estimation for Video Frame Interpolation", ECCV 2022)
estimates, coarse to fine, the flows from the wanted time ``t`` back to both frames and a blend
mask; the result is the mask-weighted mix of the two backward-warped frames. Layer names and
numerics follow ComfyUI-Frame-Interpolation's ``vfi_models/rife/rife_arch.py`` (``IFNet(arch_ver)``),
whose names the public files use:

=======  ======================================================  ====================================
version  blocks (c)                                              files
=======  ======================================================  ====================================
4.0      4: conv + PReLU, 5-channel transposed conv; carries     ``sudo_rife4_*.pth``, 4.0/4.1 pkl
         contextnet/unet refinement weights
4.6      4: ResConv + LeakyReLU(0.2), transposed conv +          Deforum ``RIFE46.pkl``
         PixelShuffle; masks summed over blocks
4.7      4.6 plus a 4-channel feature encoder; each block's      ``rife47.pth``, ``rife49.pth``
         mask replaces the last
4.17     4.7 with an 8-channel four-conv encoder                 ``rife417.pth``
4.26     5 blocks; each block hands 8 feature channels on        ``rife426.pth`` (also 4.25)
=======  ======================================================  ====================================

Conventions: frames ``[B, 3, H, W]`` float RGB in 0..1 (8-bit value / 255), ``t = 0`` is ``x0``;
the network output is not clamped (callers clamp). Padding is zeros at the bottom and right:
``"comfyui"`` to multiples of 64 (inside ComfyUI's ``IFNet.forward``), ``"deforum"`` to multiples
of ``max(128, int(128 / scale))`` (Deforum and Practical-RIFE's scripts, before the model). The two
give different pictures. After padding, H and W must be multiples of ``4 * scale_list[0]``.

Run as ComfyUI's node calls the model with its default toggles (and as Deforum does): no ensemble,
no 4.0 refinement network and no 4.0 re-run at doubled scales; the 4.0 refinement weights are
held only so that those files load strictly.

Weights are read with safetensors or ``torch.load(weights_only=True)``; an optional ``module.``
prefix (Practical-RIFE / Deforum files, saved from DistributedDataParallel) is stripped and extra
tensors are ignored.
"""

from __future__ import annotations

import functools
import logging
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError, IncompatibleModelError
from ..safeload import load_tensor_file

log = logging.getLogger("vidsd.interpolate.rife")

RIFE_VERSIONS = ("4.0", "4.6", "4.7", "4.17", "4.26")
#: releases that reuse the architecture of a version in :data:`RIFE_VERSIONS`
VERSION_ALIASES = {"4.1": "4.0", "4.8": "4.7", "4.9": "4.7", "4.25": "4.26"}
PAD_MODES = ("comfyui", "deforum")
PREFIX = "module."
FILE_SUFFIXES = (".safetensors", ".pkl", ".pth", ".pt", ".ckpt")

StateDictSource = Union[str, os.PathLike, Mapping[str, Tensor]]


@dataclass(frozen=True)
class _Arch:
    """What differs between the IFNet versions."""

    widths: tuple[int, ...]  # per-block width c of the published files
    residual: bool  # ResConv stacks + LeakyReLU(0.2) + PixelShuffle (4.5+), else conv + PReLU (4.0)
    lastconv_out: int  # output channels of each block's transposed conv
    encoder: str  # "" none, "pair" (4.7: conv, transposed conv), "head" (4.17, 4.26: four convs)
    encoder_width: int  # hidden channels of the encoder
    features: int  # encoder output channels per frame
    block_features: int  # channels each block hands to the next one (4.26)
    replace_mask: bool  # 4.7+: a block's mask replaces the previous one; 4.0/4.6 sum them
    refinement: bool  # 4.0 files carry contextnet/unet weights

    @property
    def first_in(self) -> int:
        """Block 0 input: both frames, both feature maps, the time plane."""
        return 7 + 2 * self.features

    @property
    def rest_in(self) -> int:
        """Later blocks: warped frames and features, time, mask, block features, then the flow (4)."""
        return 12 + 2 * self.features + self.block_features


_FOUR = (192, 128, 96, 64)
_ARCHS = {
    "4.0": _Arch(_FOUR, False, 5, "", 0, 0, 0, replace_mask=False, refinement=True),
    "4.6": _Arch(_FOUR, True, 24, "", 0, 0, 0, replace_mask=False, refinement=False),
    "4.7": _Arch(_FOUR, True, 24, "pair", 16, 4, 0, replace_mask=True, refinement=False),
    "4.17": _Arch(_FOUR, True, 24, "head", 32, 8, 0, replace_mask=True, refinement=False),
    "4.26": _Arch(_FOUR + (32,), True, 52, "head", 16, 4, 8, replace_mask=True, refinement=False),
}


def canonical_version(version: Any) -> str:
    """``version`` as one of :data:`RIFE_VERSIONS` (``"4.9"`` → ``"4.7"``, ``"4.25"`` → ``"4.26"``)."""
    text = str(version).strip()
    text = VERSION_ALIASES.get(text, text)
    if text not in _ARCHS:
        raise ConfigError("version", version, list(RIFE_VERSIONS) + list(VERSION_ALIASES))
    return text


def default_scale_list(version: str, scale: float = 1.0) -> list[float]:
    """Per-block downscale factors: ``[8/s, 4/s, 2/s, 1/s]`` (4.0–4.17), ``[16/s, …, 1/s]`` (4.25/4.26).

    ``scale`` is ComfyUI's ``scale_factor`` / Practical-RIFE's ``--scale``: 0.5 for UHD frames
    (coarser flow, faster), 2 for small frames.
    """
    blocks = len(_ARCHS[canonical_version(version)].widths)
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not math.isfinite(scale) or scale <= 0:
        raise ConfigError("scale", scale, "a positive number (0.5 for UHD frames)")
    return [2 ** (blocks - 1 - i) / scale for i in range(blocks)]


def pad_multiple(pad: str, scale: float = 1.0) -> int:
    """What H and W are padded to a multiple of: 64 (``"comfyui"``) or ``max(128, int(128 / scale))``
    (``"deforum"``)."""
    if pad == "comfyui":
        return 64
    if pad == "deforum":
        return max(128, int(128 / scale))
    raise ConfigError("pad", pad, list(PAD_MODES))


# --------------------------------------------------------------------------------------------- layers


def warp(image: Tensor, flow: Tensor) -> Tensor:
    """Backward warp: ``out(x, y) = image(x + flow_x, y + flow_y)``, bilinear, borders replicated.

    ``image [B, C, H, W]``, ``flow [B, 2, H, W]`` in pixels. Coordinates are normalised with
    ``align_corners=True`` (±1 are the centres of the outer pixels), as RIFE's warp layer does.
    """
    _, _, h, w = flow.shape
    xs = torch.linspace(-1.0, 1.0, w, device=flow.device).view(1, 1, 1, w).expand(1, 1, h, w)
    ys = torch.linspace(-1.0, 1.0, h, device=flow.device).view(1, 1, h, 1).expand(1, 1, h, w)
    offset = torch.cat((flow[:, 0:1] / ((w - 1.0) / 2.0), flow[:, 1:2] / ((h - 1.0) / 2.0)), 1)
    grid = (torch.cat((xs, ys), 1) + offset).permute(0, 2, 3, 1).to(image.dtype)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=True)


def _resize(x: Tensor, factor: float) -> Tensor:
    """Bilinear resize by ``factor`` (output size ``floor(n * factor)``), half-pixel centres."""
    return F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)


def _conv(cin: int, cout: int, stride: int, residual: bool) -> nn.Sequential:
    """3×3 conv then LeakyReLU(0.2) (4.5+) or PReLU (4.0): names ``.0`` (conv), ``.1`` (PReLU slopes)."""
    act = nn.LeakyReLU(0.2) if residual else nn.PReLU(cout)
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), act)


class ResConv(nn.Module):
    """``LeakyReLU0.2(conv3x3(x) * beta + x)`` with a learnt per-channel ``beta [1, c, 1, 1]``."""

    def __init__(self, c: int):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, 1, 1)
        self.beta = nn.Parameter(torch.ones(1, c, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return F.leaky_relu(self.conv(x) * self.beta + x, 0.2)


class IFBlock(nn.Module):
    """One coarse-to-fine stage: works at ``1/scale`` of the frame size, returns full-size outputs.

    ``forward(x, flow, scale)``: ``x [B, C, H, W]`` (C = the block's input channels, without the
    flow), ``flow [B, 4, H, W]`` in pixels or ``None`` for the first block. Returns ``(flow
    [B, 4, H, W]`` in pixels (channels 0-1 warp frame 0, 2-3 frame 1), ``mask [B, 1, H, W]``
    (logit of frame 0's weight), ``features [B, 8, H, W]`` (4.26) or ``None)``. H and W must be
    multiples of ``4 * scale``: two stride-2 convs at ``1/scale`` are undone exactly only then.
    """

    def __init__(self, in_channels: int, c: int, arch: _Arch):
        super().__init__()
        self.residual = arch.residual
        self.block_features = arch.block_features
        self.conv0 = nn.Sequential(_conv(in_channels, c // 2, 2, arch.residual), _conv(c // 2, c, 2, arch.residual))
        if arch.residual:
            self.convblock = nn.Sequential(*(ResConv(c) for _ in range(8)))
            self.lastconv = nn.Sequential(nn.ConvTranspose2d(c, arch.lastconv_out, 4, 2, 1), nn.PixelShuffle(2))
        else:
            self.convblock = nn.Sequential(*(_conv(c, c, 1, False) for _ in range(8)))
            self.lastconv = nn.ConvTranspose2d(c, arch.lastconv_out, 4, 2, 1)

    def forward(self, x: Tensor, flow: Tensor | None, scale: float) -> tuple[Tensor, Tensor, Tensor | None]:
        x = _resize(x, 1.0 / scale)
        if flow is not None:
            x = torch.cat((x, _resize(flow, 1.0 / scale) / scale), 1)
        feat = self.conv0(x)
        feat = self.convblock(feat) if self.residual else self.convblock(feat) + feat
        # lastconv gives 4x (PixelShuffle) or 2x (4.0) the conv0 size; resize back to the input size
        up = scale if self.residual else scale * 2
        out = _resize(self.lastconv(feat), up)
        features = out[:, 5 : 5 + self.block_features] if self.block_features else None
        return out[:, :4] * up, out[:, 4:5], features


class _Head(nn.Module):
    """Feature encoder of 4.17 / 4.26: stride-2 conv, two convs, transposed conv back to full size."""

    def __init__(self, width: int, out: int):
        super().__init__()
        self.cnn0 = nn.Conv2d(3, width, 3, 2, 1)
        self.cnn1 = nn.Conv2d(width, width, 3, 1, 1)
        self.cnn2 = nn.Conv2d(width, width, 3, 1, 1)
        self.cnn3 = nn.ConvTranspose2d(width, out, 4, 2, 1)

    def forward(self, x: Tensor) -> Tensor:
        x = F.leaky_relu(self.cnn0(x), 0.2)
        x = F.leaky_relu(self.cnn1(x), 0.2)
        x = F.leaky_relu(self.cnn2(x), 0.2)
        return self.cnn3(x)


def _encoder(arch: _Arch) -> nn.Module | None:
    if arch.encoder == "pair":  # 4.7: no activation between the two layers
        return nn.Sequential(
            nn.Conv2d(3, arch.encoder_width, 3, 2, 1), nn.ConvTranspose2d(arch.encoder_width, arch.features, 4, 2, 1)
        )
    if arch.encoder == "head":
        return _Head(arch.encoder_width, arch.features)
    return None


# (in, out) channels of the 4.0 refinement stages
_CONTEXT = ((3, 16), (16, 32), (32, 64), (64, 128))
_UNET_DOWN = ((17, 32), (64, 64), (128, 128), (256, 256))
_UNET_UP = ((512, 128), (256, 64), (128, 32), (64, 16))


def _refinement_weights() -> tuple[nn.ModuleDict, nn.ModuleDict]:
    """``contextnet`` and ``unet`` of the 4.0 files (a residual refinement of the merged frame).

    Only held, never run: ComfyUI runs them only with its "ensemble" toggle off and Practical-RIFE
    only with ``fastmode=False``; both defaults skip them.
    """

    def stage(cin: int, cout: int) -> nn.ModuleDict:
        return nn.ModuleDict({"conv1": _conv(cin, cout, 2, False), "conv2": _conv(cout, cout, 1, False)})

    def up(cin: int, cout: int) -> nn.Sequential:
        return nn.Sequential(nn.ConvTranspose2d(cin, cout, 4, 2, 1), nn.PReLU(cout))

    contextnet = nn.ModuleDict({f"conv{i + 1}": stage(cin, cout) for i, (cin, cout) in enumerate(_CONTEXT)})
    unet = nn.ModuleDict({f"down{i}": stage(cin, cout) for i, (cin, cout) in enumerate(_UNET_DOWN)})
    unet.update({f"up{i}": up(cin, cout) for i, (cin, cout) in enumerate(_UNET_UP)})
    unet["conv"] = nn.Conv2d(16, 3, 3, 1, 1)
    return contextnet, unet


class BlockOutput(NamedTuple):
    """What one block returned, at the padded size.

    ``flow [B, 4, Hp, Wp]`` in pixels (block 0: the flow itself; later blocks: the increment added
    to it; channels 0-1 warp frame 0, 2-3 frame 1); ``mask [B, 1, Hp, Wp]``: logit of frame 0's weight.
    """

    flow: Tensor
    mask: Tensor


class IFNet(nn.Module):
    """RIFE IFNet ``version`` (one of :data:`RIFE_VERSIONS` or an alias) with per-block widths ``widths``.

    ``widths`` defaults to the published ones (192/128/96/64, plus 32 for 4.26); narrower ones
    build the same structure smaller (the tiny test fixtures). Parameter names are ComfyUI's, so
    ``load_state_dict(strict=True)`` takes a ComfyUI file or a prefix-stripped Practical-RIFE one.
    Use :func:`load_rife` to read a file.
    """

    def __init__(self, version: str = "4.7", widths: Sequence[int] | None = None):
        super().__init__()
        self.version = canonical_version(version)
        self.arch = _ARCHS[self.version]
        self.widths = _check_widths(widths, self.arch)
        for i, c in enumerate(self.widths):
            setattr(self, f"block{i}", IFBlock(self.arch.rest_in if i else self.arch.first_in, c, self.arch))
        self.encode = _encoder(self.arch)
        if self.arch.refinement:
            self.contextnet, self.unet = _refinement_weights()

    @property
    def blocks(self) -> list[IFBlock]:
        return [getattr(self, f"block{i}") for i in range(len(self.widths))]

    def forward(
        self,
        x0: Tensor,
        x1: Tensor,
        timestep: float | Tensor = 0.5,
        scale_list: Sequence[float] | None = None,
        *,
        pad: str = "comfyui",
    ) -> Tensor:
        """The frame at ``timestep`` between ``x0`` and ``x1``: ``[B, 3, H, W]``, not clamped.

        ``x0``, ``x1``: ``[B, 3, H, W]`` RGB in 0..1 (clamped on the way in). ``timestep``: a float
        or a tensor ``[B, 1, 1, 1]`` (one time per pair). ``scale_list``: one downscale factor per
        block, default :func:`default_scale_list` at scale 1. ``pad``: ``"comfyui"`` (zeros
        bottom/right to multiples of 64) or ``"deforum"`` (to multiples of ``max(128, int(128 /
        scale))``, with ``scale = 1 / scale_list[-1]``); the result is cropped back to H × W.
        """
        return self.forward_with_blocks(x0, x1, timestep, scale_list, pad=pad)[0]

    def forward_with_blocks(
        self,
        x0: Tensor,
        x1: Tensor,
        timestep: float | Tensor = 0.5,
        scale_list: Sequence[float] | None = None,
        *,
        pad: str = "comfyui",
    ) -> tuple[Tensor, list[BlockOutput]]:
        """:meth:`forward`, plus each block's flow and mask output (at the padded size)."""
        _check_pair(x0, x1)
        scales = self._scales(scale_list)
        h, w = x0.shape[2:]
        multiple = pad_multiple(pad, 1.0 / scales[-1])
        hp, wp = -(-h // multiple) * multiple, -(-w // multiple) * multiple
        _check_fit(hp, wp, scales, self.arch.residual, f"frames {h}x{w} padded ({pad!r}) to {hp}x{wp}")
        padding = (0, wp - w, 0, hp - h)
        img0 = F.pad(x0.clamp(0, 1), padding)
        img1 = F.pad(x1.clamp(0, 1), padding)
        merged, steps = self._estimate(img0, img1, _time_plane(timestep, img0), scales)
        return merged[:, :, :h, :w], steps

    def _scales(self, scale_list: Sequence[float] | None) -> list[float]:
        if scale_list is None:
            return default_scale_list(self.version)
        scales = [float(s) for s in scale_list]
        if len(scales) != len(self.widths) or not all(math.isfinite(s) and s > 0 for s in scales):
            raise ConfigError(
                "scale_list", list(scale_list), f"{len(self.widths)} positive numbers for RIFE {self.version}"
            )
        return scales

    def _estimate(self, img0: Tensor, img1: Tensor, t: Tensor, scales: list[float]) -> tuple[Tensor, list[BlockOutput]]:
        """Coarse-to-fine flow and mask on padded frames; returns the merged frame and block outputs."""
        f0 = f1 = None
        if self.encode is not None:
            f0, f1 = self.encode(img0), self.encode(img1)
        flow = mask = feat = None
        warped0, warped1 = img0, img1
        steps = []
        for block, scale in zip(self.blocks, scales, strict=True):
            if flow is None:
                d_flow, d_mask, feat = block(_cat(img0, img1, f0, f1, t), None, scale)
                flow, mask = d_flow, d_mask
            else:
                wf0 = warp(f0, flow[:, :2]) if f0 is not None else None
                wf1 = warp(f1, flow[:, 2:4]) if f1 is not None else None
                d_flow, d_mask, feat = block(_cat(warped0, warped1, wf0, wf1, t, mask, feat), flow, scale)
                flow = flow + d_flow
                mask = d_mask if self.arch.replace_mask else mask + d_mask
            steps.append(BlockOutput(d_flow, d_mask))
            warped0, warped1 = warp(img0, flow[:, :2]), warp(img1, flow[:, 2:4])
        weight = torch.sigmoid(mask)
        return warped0 * weight + warped1 * (1 - weight), steps


def _cat(*parts: Tensor | None) -> Tensor:
    return torch.cat([p for p in parts if p is not None], 1)


def _check_widths(widths: Sequence[int] | None, arch: _Arch) -> tuple[int, ...]:
    if widths is None:
        return arch.widths
    out = tuple(int(c) for c in widths)
    if len(out) != len(arch.widths) or any(c < 2 for c in out):
        raise ConfigError("widths", list(widths), f"{len(arch.widths)} block widths of at least 2")
    return out


def _check_pair(x0: Tensor, x1: Tensor) -> None:
    if x0.ndim != 4 or x0.shape[1] != 3 or x0.shape != x1.shape:
        raise ConfigError("frames", f"{tuple(x0.shape)} and {tuple(x1.shape)}", "two tensors [B, 3, H, W] of one shape")


def _block_size(n: int, scale: float, residual: bool) -> int:
    """Rows (or columns) a block returns for ``n`` in: resize by 1/scale, two stride-2 convs, 4x up."""
    m = math.floor(n * (1.0 / scale))
    m = ((m - 1) // 2 + 1) if m > 0 else 0
    m = ((m - 1) // 2 + 1) if m > 0 else 0
    return math.floor(m * 4 * scale) if residual else math.floor(m * 2 * (scale * 2))


def _check_fit(hp: int, wp: int, scales: list[float], residual: bool, what: str) -> None:
    """Refuse sizes a block would not give back unchanged (torch would fail on the concatenation)."""
    for i, s in enumerate(scales):
        if _block_size(hp, s, residual) != hp or _block_size(wp, s, residual) != wp:
            raise ConfigError(
                "scale_list",
                scales,
                f"factors for which the padded frame size is a multiple of 4 × scale_list[0] = {4 * scales[0]:g}",
                hint=f"{what}; block {i} at scale {s:g} does not fit. Use a larger scale or pad='deforum', "
                "which pads to a multiple of max(128, 128 / scale)",
            )


def _time_plane(timestep: float | Tensor, like: Tensor) -> Tensor:
    """``timestep`` (a float, or one value per pair as ``[B, 1, 1, 1]``) as a plane ``[B, 1, Hp, Wp]``."""
    b, _, h, w = like.shape
    t = torch.as_tensor(timestep, dtype=like.dtype, device=like.device)
    if t.numel() == 1:
        t = t.reshape(1, 1, 1, 1)
    elif tuple(t.shape) != (b, 1, 1, 1):
        raise ConfigError("timestep", tuple(t.shape), f"a float or a tensor [{b}, 1, 1, 1]")
    return t.expand(b, 1, h, w)


# ----------------------------------------------------------------------------- detection and loading


def strip_prefix(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """Names without the ``module.`` prefix of Practical-RIFE / Deforum files.

    When any name carries it, only those names are kept (what Practical-RIFE and Deforum load);
    otherwise the mapping is returned as it is.
    """
    if not any(k.startswith(PREFIX) for k in state_dict):
        return dict(state_dict)
    return {k[len(PREFIX) :]: v for k, v in state_dict.items() if k.startswith(PREFIX)}


def _shapes(keys_or_state_dict: Mapping[str, Any] | Iterable[str]) -> dict[str, tuple[int, ...] | None]:
    """Prefix-stripped name → shape (from tensors, meta tensors or shape tuples); ``None`` for bare names."""
    if isinstance(keys_or_state_dict, Mapping):
        items = keys_or_state_dict
    else:
        items = dict.fromkeys(keys_or_state_dict)
    out: dict[str, tuple[int, ...] | None] = {}
    for name, value in strip_prefix(items).items():
        shape = getattr(value, "shape", value)
        if shape is None or (isinstance(shape, Sequence) and not isinstance(shape, str)):
            out[name] = tuple(int(n) for n in shape) if shape is not None else None
        # anything else (a step counter, a config string) is not a tensor: left out
    return out


def _unsupported(version: str, why: str) -> IncompatibleModelError:
    return IncompatibleModelError(
        f"RIFE {version} state dict ({why}): not supported; supported versions: {', '.join(RIFE_VERSIONS)}"
    )


def _version_from_names(shapes: Mapping[str, tuple[int, ...] | None]) -> str:
    """The rules of the fixtures' ``manifests/index.json``, on prefix-stripped names (and shapes)."""
    if "block0.conv0.0.0.weight" not in shapes:
        sample = ", ".join(list(shapes)[:4]) or "no tensors"
        raise IncompatibleModelError(f"not a RIFE 4.x state dict: no block0.conv0.0.0.weight (it has {sample})")
    if "encode.cnn3.weight" in shapes:
        return "4.26" if "block4.conv0.0.0.weight" in shapes else "4.17"
    if "encode.6.weight" in shapes:
        raise _unsupported("4.10-4.12", "a Sequential encode.0/2/4/6 feature head")
    if "encode.0.weight" in shapes:
        return "4.7"
    if "block0.lastconv.weight" in shapes or any(k.startswith("contextnet.") for k in shapes):
        if "block0.conv0.0.1.weight" in shapes:
            return "4.0"
        raise _unsupported("4.2-4.4", "contextnet/unet without PReLU slopes")
    lastconv = shapes.get("block0.lastconv.0.weight")
    if lastconv is not None and len(lastconv) == 4 and lastconv[1] == 20:
        raise _unsupported("4.5", "block0.lastconv.0.weight with 20 outputs")
    if "block0.lastconv.0.weight" in shapes:
        return "4.6"
    raise IncompatibleModelError("not a RIFE 4.x state dict: block0 has no lastconv weight")


@functools.lru_cache(maxsize=32)
def _layout(version: str, widths: tuple[int, ...] | None) -> tuple[tuple[str, tuple[int, ...]], ...]:
    """Every (name, shape) of ``IFNet(version, widths)`` in state-dict order (built on the meta device)."""
    with torch.device("meta"):
        net = IFNet(version, widths)
    return tuple((k, tuple(v.shape)) for k, v in net.state_dict().items())


def _widths(shapes: Mapping[str, tuple[int, ...] | None], count: int | None = None) -> tuple[int, ...]:
    widths: list[int] = []
    while (count is None or len(widths) < count) and shapes.get(f"block{len(widths)}.conv0.1.0.weight"):
        widths.append(shapes[f"block{len(widths)}.conv0.1.0.weight"][0])
    if not widths:
        raise IncompatibleModelError("not a RIFE 4.x state dict: no block0.conv0.1.0.weight to read a width from")
    return tuple(widths)


def _listed(items: list[str], limit: int = 6) -> str:
    return "; ".join(items[:limit]) + (f"; … ({len(items) - limit} more)" if len(items) > limit else "")


def _check_layout(shapes: Mapping[str, tuple[int, ...] | None], version: str) -> tuple[int, ...] | None:
    """Require every tensor of ``version`` with its shape (extras are ignored); return the block widths
    (``None`` when only names were given)."""
    missing = [k for k, _ in _layout(version, None) if k not in shapes]
    if missing:
        raise IncompatibleModelError(f"RIFE {version} state dict: {len(missing)} tensors missing: {_listed(missing)}")
    if any(s is None for s in shapes.values()):
        return None
    widths = _widths(shapes, len(_ARCHS[version].widths))
    wrong = [f"{k}: got {list(shapes[k])}, expected {list(s)}" for k, s in _layout(version, widths) if shapes[k] != s]
    if wrong:
        raise IncompatibleModelError(
            f"RIFE {version} state dict (block widths {list(widths)}): {len(wrong)} tensors with the wrong shape: "
            + _listed(wrong)
        )
    return widths


def detect_rife_version(keys_or_state_dict: Mapping[str, Any] | Iterable[str]) -> str:
    """The RIFE version (one of :data:`RIFE_VERSIONS`) of a state dict, a name → shape mapping or bare names.

    An optional ``module.`` prefix is stripped and extra tensors are ignored, but every tensor the
    version needs must be there, with its shape when shapes are given (block widths are read from
    the dict). Bare names cannot tell 4.5 from 4.6 or check shapes. Raises
    :class:`IncompatibleModelError` naming the missing or misshapen tensors, or saying the dict is
    not RIFE 4.x or is an unsupported 4.x.
    """
    shapes = _shapes(keys_or_state_dict)
    version = _version_from_names(shapes)
    _check_layout(shapes, version)
    return version


def rife_widths_from_state_dict(state_dict: Mapping[str, Any]) -> tuple[int, ...]:
    """Per-block widths ``c`` (output channels of ``block<i>.conv0.1.0.weight``), prefix stripped."""
    return _widths(_shapes(state_dict))


def _tensors(obj: Any, what: str) -> dict[str, Tensor]:
    if not isinstance(obj, Mapping):
        raise IncompatibleModelError(f"{what}: expected a mapping of names to tensors, got {type(obj).__name__}")
    tensors = {k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, Tensor)}
    if len(tensors) != len(obj):
        log.debug("%s: ignored %d entries that are not tensors", what, len(obj) - len(tensors))
    return tensors


def _read_file(path: Path) -> dict[str, Tensor]:
    """Tensors of a ``.safetensors`` file or a pickled state dict (weights-only unpickling), on the CPU."""
    suffix = path.suffix.lower()
    if suffix not in FILE_SUFFIXES:
        raise ConfigError("model", path.name, list(FILE_SUFFIXES), hint="a RIFE weight file type")
    if not path.is_file():
        raise ConfigError("model", str(path), "an existing RIFE weight file")
    obj = load_tensor_file(path, "PyTorch")
    return _tensors(obj, path.name)


def load_rife(
    source: StateDictSource,
    *,
    version: str | None = None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> IFNet:
    """An :class:`IFNet` in eval mode holding the weights of ``source``: a path or a state dict.

    Paths: ``.safetensors``, or ``.pkl`` / ``.pth`` / ``.pt`` / ``.ckpt`` pickles read with
    ``torch.load(weights_only=True)`` (anything but tensors and plain containers is refused). The
    version is detected (:func:`detect_rife_version`) unless given; block widths are read from the
    weights. ``model.version`` says which version it is.
    """
    if isinstance(source, Mapping):
        tensors = _tensors(source, "state dict")
    else:
        tensors = _read_file(Path(source))
    tensors = strip_prefix(tensors)
    shapes = _shapes(tensors)
    version = canonical_version(version) if version is not None else _version_from_names(shapes)
    widths = _check_layout(shapes, version)
    model = IFNet(version, widths)
    model.load_state_dict({k: tensors[k] for k, _ in _layout(version, widths)}, strict=True)
    ignored = len(tensors) - len(model.state_dict())
    if ignored:
        log.debug("RIFE %s: ignored %d tensors the network does not use", version, ignored)
    return model.to(device=device, dtype=dtype).eval().requires_grad_(False)


# ------------------------------------------------------------------------------------------ frames


def _check_frames(a: Any, b: Any) -> None:
    for frame in (a, b):
        if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            desc = f"{type(frame).__name__} {getattr(frame, 'dtype', '')} {getattr(frame, 'shape', '')}".strip()
            raise ConfigError("frames", desc, "uint8 (H, W, 3) RGB arrays")
    if a.shape != b.shape:
        raise ConfigError("frames", f"{a.shape} and {b.shape}", "two frames of the same size")


def _check_ts(ts: Sequence[float]) -> list[float]:
    out = []
    for t in ts:
        if isinstance(t, bool) or not isinstance(t, (int, float, np.number)) or not 0 <= t <= 1:
            raise ConfigError("ts", t, "numbers from 0 to 1")
        out.append(float(t))
    return out


def _to_tensor(frame: np.ndarray, device: torch.device, dtype: torch.dtype) -> Tensor:
    """``uint8 (H, W, 3)`` → ``[1, 3, H, W]`` in 0..1."""
    x = torch.from_numpy(np.ascontiguousarray(frame)).to(device).permute(2, 0, 1).unsqueeze(0)
    return (x.float() / 255.0).to(dtype)


def _to_uint8(x: Tensor) -> list[np.ndarray]:
    """``[B, 3, H, W]`` → B ``uint8 (H, W, 3)`` frames: clamped to 0..1, times 255, rounded."""
    x = (x.float().clamp(0, 1) * 255.0).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    return [np.ascontiguousarray(f) for f in x]


def rife_frames(
    model: IFNet,
    a: np.ndarray,
    b: np.ndarray,
    ts: Sequence[float],
    *,
    scale: float = 1.0,
    pad: str = "comfyui",
    batch_size: int = 8,
) -> list[np.ndarray]:
    """Frames between ``a`` (t=0) and ``b`` (t=1), ``uint8 (H, W, 3)`` RGB, one per ``t`` in ``ts``.

    Every ``t`` is one direct model call (as ComfyUI and Deforum's 4.x path do, no recursion);
    up to ``batch_size`` of them run as one batch with a ``[B, 1, 1, 1]`` time tensor. ``scale``
    picks the scale list (:func:`default_scale_list`); ``pad`` is ``"comfyui"`` or ``"deforum"``
    (see :meth:`IFNet.forward`). Runs on the model's device and dtype.
    """
    if not isinstance(model, IFNet):
        raise ConfigError("model", type(model).__name__, "a RIFE IFNet (lib_vidsd.interpolate.rife.load_rife)")
    _check_frames(a, b)
    times = _check_ts(ts)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError("batch_size", batch_size, "a positive integer")
    scales = default_scale_list(model.version, scale)
    pad_multiple(pad)  # refuse an unknown mode before any work
    param = next(model.parameters())
    x0 = _to_tensor(a, param.device, param.dtype)
    x1 = _to_tensor(b, param.device, param.dtype)
    out: list[np.ndarray] = []
    with torch.inference_mode():
        for start in range(0, len(times), batch_size):
            chunk = times[start : start + batch_size]
            n = len(chunk)
            t = torch.tensor(chunk, dtype=param.dtype, device=param.device).view(n, 1, 1, 1)
            y = model(x0.expand(n, -1, -1, -1), x1.expand(n, -1, -1, -1), t, scales, pad=pad)
            out.extend(_to_uint8(y))
    return out


def rife_run(
    a: np.ndarray, b: np.ndarray, ts: Sequence[float], *, model: IFNet, scale: float = 1.0, pad: str = "comfyui"
) -> list[np.ndarray]:
    """:func:`rife_frames` in the shape of an interpolation method (``run(a, b, ts, model=…, **options)``)."""
    return rife_frames(model, a, b, ts, scale=scale, pad=pad)
