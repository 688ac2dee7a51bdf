"""Where temporal layers go in a UNet, found from its module tree (never from hard-coded indices).

Two UNet families are understood:

- ldm / sgm ``UNetModel`` (what A1111 runs for SD1.x/2.x and SDXL): ``input_blocks``,
  ``middle_block``, ``output_blocks``, each a sequence of ResBlock / SpatialTransformer /
  Downsample / Upsample layers;
- diffusers ``UNet2DConditionModel``: ``down_blocks``, ``mid_block``, ``up_blocks`` with
  ``resnets``, ``attentions``, ``downsamplers`` and ``upsamplers``.

The rule is the same for both: in every sub-block that holds a residual block, the temporal
layer goes on the output of its last spatial transformer, or of its residual block when it has
none (so before an Upsample that ends the sub-block, and inside the block, where the skip
connections pick it up). Levels are delimited by the down- and upsamplers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..errors import IncompatibleModelError

_RES = ("ResBlock", "ResnetBlock2D")
_ATTN = ("SpatialTransformer", "Transformer2DModel")
_DOWN = ("Downsample", "Downsample2D")
_UP = ("Upsample", "Upsample2D")


@dataclass(frozen=True)
class Site:
    """A module whose output receives a temporal layer: ``name`` is its dotted path in the UNet."""

    name: str
    module: torch.nn.Module
    channels: int


@dataclass
class UNetLayout:
    kind: str  # "ldm" or "diffusers"
    down: list[list[Site]]
    mid: Site | None
    up: list[list[Site]]
    group_norms: list[tuple[str, torch.nn.Module]] = field(default_factory=list)

    @property
    def levels(self) -> int:
        return len(self.down)

    def describe(self) -> str:
        def chans(levels):
            return "/".join(str(lv[0].channels) if lv else "-" for lv in levels)

        return (
            f"{self.kind} UNet, {self.levels} levels, down sites {[len(lv) for lv in self.down]} "
            f"(channels {chans(self.down)}), mid {'yes' if self.mid else 'no'}, up sites {[len(lv) for lv in self.up]}"
        )


def _kind(module: torch.nn.Module) -> str:
    return type(module).__name__


def _channels(module: torch.nn.Module) -> int:
    value = getattr(module, "out_channels", None) or getattr(module, "in_channels", None)
    if not isinstance(value, int):
        raise IncompatibleModelError(f"cannot tell the channel count of {_kind(module)}")
    return value


def _site_in(prefix: str, layers: list[tuple[str, torch.nn.Module]]) -> Site | None:
    """The last spatial transformer of a sub-block, else its first residual block."""
    attns = [(n, m) for n, m in layers if _kind(m) in _ATTN]
    res = [(n, m) for n, m in layers if _kind(m) in _RES]
    if not res:
        return None
    name, module = attns[-1] if attns else res[0]
    return Site(f"{prefix}.{name}", module, _channels(module))


def _ldm_layout(unet: torch.nn.Module) -> UNetLayout:
    down: list[list[Site]] = [[]]
    for i, block in enumerate(unet.input_blocks):
        layers = list(block.named_children())
        if any(_kind(m) in _DOWN for _, m in layers):
            down.append([])
            continue
        site = _site_in(f"input_blocks.{i}", layers)
        if site is not None:
            down[-1].append(site)
    up: list[list[Site]] = [[]]
    for i, block in enumerate(unet.output_blocks):
        layers = list(block.named_children())
        site = _site_in(f"output_blocks.{i}", layers)
        if site is not None:
            up[-1].append(site)
        if any(_kind(m) in _UP for _, m in layers):
            up.append([])
    mid_layers = list(unet.middle_block.named_children())
    mid_attn = [(n, m) for n, m in mid_layers if _kind(m) in _ATTN]
    mid = Site(f"middle_block.{mid_attn[-1][0]}", mid_attn[-1][1], _channels(mid_attn[-1][1])) if mid_attn else None
    norms = [
        (name, m) for name, m in unet.named_modules() if isinstance(m, torch.nn.GroupNorm) and _inside_res(unet, name)
    ]
    out_norm = [(f"out.{n}", m) for n, m in unet.out.named_children() if isinstance(m, torch.nn.GroupNorm)]
    return UNetLayout("ldm", [lv for lv in down if lv], mid, [lv for lv in up if lv], norms + out_norm)


def _diffusers_layout(unet: torch.nn.Module) -> UNetLayout:
    def level(prefix: str, block) -> list[Site]:
        attns = getattr(block, "attentions", None)
        holders = attns if attns is not None and len(attns) else block.resnets
        holder_name = "attentions" if holders is attns else "resnets"
        return [Site(f"{prefix}.{holder_name}.{j}", m, _channels(m)) for j, m in enumerate(holders)]

    down = [level(f"down_blocks.{i}", b) for i, b in enumerate(unet.down_blocks)]
    up = [level(f"up_blocks.{i}", b) for i, b in enumerate(unet.up_blocks)]
    mid = None
    attns = getattr(unet.mid_block, "attentions", None) if unet.mid_block is not None else None
    if attns is not None and len(attns):
        mid = Site("mid_block.attentions.0", attns[0], _channels(attns[0]))
    norms = [
        (name, m) for name, m in unet.named_modules() if isinstance(m, torch.nn.GroupNorm) and _inside_res(unet, name)
    ]
    if isinstance(getattr(unet, "conv_norm_out", None), torch.nn.GroupNorm):
        norms.append(("conv_norm_out", unet.conv_norm_out))
    return UNetLayout("diffusers", down, mid, up, norms)


def _inside_res(root: torch.nn.Module, name: str) -> bool:
    """Whether the module at dotted ``name`` sits inside a residual block."""
    parts = name.split(".")
    module = root
    for part in parts[:-1]:
        module = getattr(module, part)
        if _kind(module) in _RES:
            return True
    return False


def find_layout(unet: torch.nn.Module) -> UNetLayout:
    """The temporal-layer sites of an ldm/sgm ``UNetModel`` or a diffusers ``UNet2DConditionModel``."""
    if all(hasattr(unet, a) for a in ("input_blocks", "middle_block", "output_blocks")):
        return _ldm_layout(unet)
    if all(hasattr(unet, a) for a in ("down_blocks", "mid_block", "up_blocks")):
        return _diffusers_layout(unet)
    raise IncompatibleModelError(
        f"{_kind(unet)} is not a UNet vidsd knows: expected an ldm/sgm UNetModel (input_blocks, middle_block, "
        "output_blocks) or a diffusers UNet2DConditionModel (down_blocks, mid_block, up_blocks)"
    )
