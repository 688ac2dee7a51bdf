"""A whole motion module: the temporal modules of every UNet level, laid out like the files.

``down_blocks[i].motion_modules[j]`` (2 per level), ``up_blocks[i].motion_modules[j]`` (3 per
level; ``up_blocks[0]`` is the deepest), ``mid_block.motion_modules[0]`` for V2 and AnimateLCM.
``state_dict()`` names equal the checkpoint names, so ``load_state_dict(strict=True)`` works.
Where each temporal module goes in a UNet is the injection's business (``inject.py``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch import Tensor, nn

from .families import DOWN_MODULES, MID_MODULES, UP_MODULES, Family, get_family
from .layers import TemporalModule


class MotionLevel(nn.Module):
    """The temporal modules of one UNet level (``.motion_modules``); ``forward`` chains them.

    Chaining is what the numeric fixtures test; inside a UNet the modules are interleaved with
    ResBlocks and attention instead.
    """

    def __init__(self, channels: int, num_modules: int, table_length: int, table_name: str = "pe"):
        super().__init__()
        self.motion_modules = nn.ModuleList(
            [TemporalModule(channels, table_length, table_name) for _ in range(num_modules)]
        )

    def forward(self, x: Tensor, frames: int) -> Tensor:
        """``x`` ``(halves·frames, C, H, W)`` → same shape, through every module in order."""
        for module in self.motion_modules:
            x = module(x, frames)
        return x


class MotionModule(nn.Module):
    """Every temporal module of one checkpoint, plus the family facts injection needs.

    Attributes: ``family`` (``v1, v2, v3, sdxl, hotshotxl, animatelcm``), ``context_limit`` (the
    positional table length: the most frames one window may have), ``is_sdxl`` (three levels),
    ``group_norm_over_frames`` (V1, HotShot-XL: while injected, the UNet's GroupNorms normalise
    over all frames of a half), ``channels`` (per level, shallowest first), ``spec``
    (:class:`~lib_vidsd.motion.families.Family`).
    """

    def __init__(self, family: str, channels: Sequence[int] | None = None):
        super().__init__()
        spec = get_family(family)
        channels = tuple(int(c) for c in (channels if channels is not None else spec.channels))
        if len(channels) != spec.levels:
            raise ValueError(f"channels: got {list(channels)}; {family} has {spec.levels} levels")
        self.spec: Family = spec
        self.family = spec.name
        self.context_limit = spec.table_length
        self.is_sdxl = spec.is_sdxl
        self.group_norm_over_frames = spec.group_norm_over_frames
        self.channels = channels
        length, name = spec.table_length, spec.table_name
        self.down_blocks = nn.ModuleList([MotionLevel(c, DOWN_MODULES, length, name) for c in channels])
        self.up_blocks = nn.ModuleList([MotionLevel(c, UP_MODULES, length, name) for c in reversed(channels)])
        self.mid_block: MotionLevel | None = (
            MotionLevel(channels[-1], MID_MODULES, length, name) if spec.has_mid_block else None
        )

    def named_temporal_modules(self) -> Iterator[tuple[str, TemporalModule]]:
        """``("down_blocks.0.motion_modules.0", module)``, … for every temporal module."""
        for name, module in self.named_modules():
            if isinstance(module, TemporalModule):
                yield name, module

    def extra_repr(self) -> str:
        return f"family={self.family}, channels={list(self.channels)}, context_limit={self.context_limit}"


def build_motion_module(
    family: str,
    channels: Sequence[int] | None = None,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> MotionModule:
    """A freshly initialised :class:`MotionModule` (``device="meta"`` for a skeleton, no memory).

    ``channels`` per level, shallowest first (default: the published files' 320/640/1280[/1280]).
    Weights are PyTorch's default init (``proj_out`` is not zeroed); tables are the sinusoid.
    """
    with torch.device(device or "cpu"):
        module = MotionModule(family, channels)
    if dtype is not None:
        module.to(dtype=dtype)
    return module.eval()
