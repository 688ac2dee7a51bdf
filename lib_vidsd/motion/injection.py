"""Injecting a motion module's temporal layers into a UNet, reversibly.

Nothing in the UNet's module tree changes: each temporal layer runs as a forward hook on the
layer it follows (see :mod:`lib_vidsd.patching.sites`), so ``state_dict()`` keeps its keys and
values, and restoring removes exactly the hooks we added. For the v1 and HotShot-XL families the
UNet's residual-block GroupNorms (and its output norm) get an instance-level ``forward`` that
normalises over all frames of each half, as those modules were trained; the class is untouched.

The family's noise schedule is returned as data (:attr:`MotionPatch.alphas_cumprod`): the caller
applies it to its sampler, with its own undo.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from ..errors import ConfigError, IncompatibleModelError
from ..patching import PatchHandle, find_layout, open_patch
from ..patching.sites import Site, UNetLayout
from .families import noise_schedule
from .lora import apply_motion_loras

log = logging.getLogger("vidsd.motion.inject")

PATCH_NAME = "motion"


class MotionPatch:
    """What :func:`inject` returns: the undo journal plus the knobs a sampler turns while injected.

    ``frames`` is the window length the temporal layers assume (rows of a UNet call are
    ``halves × frames``); ``enabled`` switches the temporal layers off without removing them.
    A context manager: leaving the ``with`` block restores the UNet.
    """

    def __init__(self, handle: PatchHandle, motion_module, frames: int, layout: UNetLayout):
        self.handle = handle
        self.motion_module = motion_module
        self.layout = layout
        self.enabled = True
        self.frames = frames
        self.alphas_cumprod = noise_schedule(motion_module.family)

    @property
    def frames(self) -> int:
        return self._frames

    @frames.setter
    def frames(self, value: int) -> None:
        limit = self.motion_module.context_limit
        if not 1 <= value <= limit:
            raise ConfigError("batch_size", value, f"1..{limit} for a {self.motion_module.family} motion module")
        self._frames = value

    def set_frames(self, value: int) -> None:
        self.frames = value

    @property
    def active(self) -> bool:
        return self.handle.active

    def restore(self) -> None:
        self.handle.restore()

    def __enter__(self) -> MotionPatch:
        return self

    def __exit__(self, *exc) -> None:
        self.restore()


def _check_fits(layout: UNetLayout, mm) -> None:
    """Raise before anything is touched when the module's levels or channels do not fit the UNet."""
    mm_levels = len(mm.down_blocks)
    if mm_levels != layout.levels:
        what = {3: "an SDXL", 4: "an SD1.5"}
        raise IncompatibleModelError(
            f"{mm.family} motion module is for {what.get(mm_levels, f'a {mm_levels}-level')} UNet; "
            f"this is {what.get(layout.levels, f'a {layout.levels}-level')} UNet ({layout.describe()})"
        )
    pairs = list(zip(layout.down, mm.down_blocks, strict=True)) + list(zip(layout.up, mm.up_blocks, strict=True))
    if mm.mid_block is not None:
        if layout.mid is None:
            raise IncompatibleModelError(
                f"{mm.family} motion module has a mid block; the UNet's middle has no attention"
            )
        pairs.append(([layout.mid], mm.mid_block))
    for sites, level in pairs:
        if len(sites) != len(level.motion_modules):
            raise IncompatibleModelError(
                f"{mm.family} motion module has {len(level.motion_modules)} layers where the UNet has "
                f"{len(sites)} sites ({sites[0].name}…): {layout.describe()}"
            )
        for site, tm in zip(sites, level.motion_modules, strict=True):
            if _module_channels(tm) != site.channels:
                raise IncompatibleModelError(
                    f"{mm.family} motion module layer for {site.name} has {_module_channels(tm)} channels; "
                    f"the UNet has {site.channels} there"
                )


def _module_channels(tm) -> int:
    return tm.temporal_transformer.norm.num_channels


def _temporal_hook(tm, patch: MotionPatch) -> Callable:
    def hook(module, args, output):
        if not patch.enabled:
            return output
        if isinstance(output, torch.Tensor):
            return tm(output, patch.frames)
        if isinstance(output, tuple):  # diffusers blocks call their transformers with return_dict=False
            return (tm(output[0], patch.frames), *output[1:])
        if hasattr(output, "sample"):  # a diffusers BaseOutput
            output.sample = tm(output.sample, patch.frames)
            return output
        raise IncompatibleModelError(f"cannot add a temporal layer after a layer returning {type(output).__name__}")

    return hook


def _grouped_norm(patch: MotionPatch) -> Callable:
    """GroupNorm whose statistics span all frames of a half: ``(halves*F, C, H, W)`` viewed as
    ``(halves, C, F, H·W)``. Computed in float32 like ldm's ``GroupNorm32``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not patch.enabled:
            return type(self).forward(self, x)  # the class's own computation, untouched
        weight = self.weight.float() if self.weight is not None else None
        bias = self.bias.float() if self.bias is not None else None
        frames = patch.frames
        rows, channels = x.shape[:2]
        if rows % frames:
            raise ConfigError("batch_size", frames, f"a divisor of the UNet batch ({rows} rows)")
        halves = rows // frames
        y = x.float().reshape(halves, frames, channels, -1).transpose(1, 2)
        y = F.group_norm(y, self.num_groups, weight, bias, self.eps)
        return y.transpose(1, 2).reshape(x.shape).type(x.dtype)

    return forward


def inject(unet: torch.nn.Module, motion_module, *, frames: int = 16, loras: Sequence = ()) -> MotionPatch:
    """Add ``motion_module``'s temporal layers to ``unet`` (ldm or diffusers); returns the patch.

    ``frames`` is the window length (context batch size) the UNet will be called with; change it
    with :meth:`MotionPatch.set_frames` between calls. ``loras`` are motion LoRAs
    ``[(file or state dict, weight), …]`` added to the module's weights and taken out again
    when the patch is restored. The motion module is moved to the UNet's device and dtype. Raises :class:`IncompatibleModelError` (SD1.5 module on an SDXL UNet, or a
    channel mismatch) before anything is touched. Use as a context manager, or call ``restore()``
    in a ``finally``.
    """
    layout = find_layout(unet)
    _check_fits(layout, motion_module)
    param = next(unet.parameters())
    motion_module.to(device=param.device, dtype=param.dtype)
    handle = open_patch(unet, PATCH_NAME)
    try:
        patch = MotionPatch(handle, motion_module, frames, layout)
        if loras:
            handle.on_restore(apply_motion_loras(motion_module, loras))
        pairs = list(zip(layout.down, motion_module.down_blocks, strict=True))
        if motion_module.mid_block is not None:
            pairs.append(([layout.mid], motion_module.mid_block))
        pairs += list(zip(layout.up, motion_module.up_blocks, strict=True))
        for sites, level in pairs:
            for site, tm in zip(sites, level.motion_modules, strict=True):
                handle.add_hook(site.module, _temporal_hook(tm, patch))
        if motion_module.group_norm_over_frames:
            norm = _grouped_norm(patch)
            for _name, gn in layout.group_norms:
                handle.override_forward(gn, norm)
    except BaseException:
        handle.restore()
        raise
    log.info("injected %s motion module (%s)", motion_module.family, layout.describe())
    return patch


def site_names(layout: UNetLayout) -> list[tuple[str, Site]]:
    """(motion-module key prefix, site) pairs in checkpoint naming, for logs and tests."""
    out = []
    for i, sites in enumerate(layout.down):
        out += [(f"down_blocks.{i}.motion_modules.{j}", s) for j, s in enumerate(sites)]
    if layout.mid is not None:
        out.append(("mid_block.motion_modules.0", layout.mid))
    for i, sites in enumerate(layout.up):
        out += [(f"up_blocks.{i}.motion_modules.{j}", s) for j, s in enumerate(sites)]
    return out
