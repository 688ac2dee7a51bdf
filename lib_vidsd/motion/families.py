"""Motion-module families: what tells them apart, and what each one needs around it.

The families and their published files (``fixtures/animatediff/manifests``):

==========  ========================  ======  ===  ==================  =====================
family      published file            levels  mid  positional table    GroupNorm over frames
==========  ========================  ======  ===  ==================  =====================
v1          mm_sd_v15.ckpt            4       no   pe [1, 24, C]       yes
v2          mm_sd_v15_v2.ckpt         4       yes  pe [1, 32, C]       no
v3          v3_sd15_mm.ckpt           4       no   pe [1, 32, C]       no
sdxl        mm_sdxl_v10_beta.ckpt     3       no   pe [1, 32, C]       no
hotshotxl   mm_sdxl_hs.safetensors    3       no   pe [1, 24, C]       yes
animatelcm  AnimateLCM_sd15_t2v.ckpt  4       yes  pos_encoding 64     no
==========  ========================  ======  ===  ==================  =====================

Detection reads key names and tensor shapes only (it works on meta tensors): the level count
(``down_blocks.3`` present or not), the mid block, and the positional table's *length* (dim 1
of ``[1, L, C]``). sd-webui-animatediff asks whether 32 occurs anywhere in the first table's
shape instead, which calls a 32-channel V1 dict V3; we do not.

The original HotShot-XL layout (``temporal_attentions.j.X``, ``positional_encoding``) is renamed
to the converted one by :func:`canonical_keys`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from ..errors import ConfigError, IncompatibleModelError

log = logging.getLogger("vidsd.motion.families")

SD15_CHANNELS = (320, 640, 1280, 1280)
SDXL_CHANNELS = (320, 640, 1280)
DOWN_MODULES = 2  # motion modules per down level
UP_MODULES = 3  # per up level
MID_MODULES = 1


@dataclass(frozen=True)
class Family:
    """One checkpoint family: its layout and what the UNet needs while it is injected.

    ``beta_schedule`` uses diffusers' names: ``linear`` = betas spaced linearly from
    ``beta_start`` to ``beta_end``; ``scaled_linear`` = √β spaced linearly (then squared).
    """

    name: str
    label: str
    is_sdxl: bool
    has_mid_block: bool
    table_length: int
    table_name: str  # the positional buffer's name in the files: "pe" or "pos_encoding"
    group_norm_over_frames: bool
    beta_schedule: str = "linear"
    beta_start: float = 0.00085
    beta_end: float = 0.012

    @property
    def levels(self) -> int:
        return 3 if self.is_sdxl else 4

    @property
    def channels(self) -> tuple[int, ...]:
        """The published files' channels per level, shallowest first."""
        return SDXL_CHANNELS if self.is_sdxl else SD15_CHANNELS

    def describe(self) -> str:
        mid = "mid_block" if self.has_mid_block else "no mid_block"
        return f"{self.name}: {self.levels} levels, {mid}, pos_encoder.{self.table_name} [1, {self.table_length}, C]"


_FAMILIES = (
    Family("v1", "AnimateDiff V1", False, False, 24, "pe", True),
    Family("v2", "AnimateDiff V2", False, True, 32, "pe", False),
    Family("v3", "AnimateDiff V3", False, False, 32, "pe", False),
    Family("sdxl", "AnimateDiff SDXL", True, False, 32, "pe", False, "scaled_linear", 0.00085, 0.020),
    Family("hotshotxl", "HotShot-XL", True, False, 24, "pe", True),
    Family("animatelcm", "AnimateLCM", False, True, 64, "pos_encoding", False),
)
#: Every family by name, in detection-table order.
FAMILIES: dict[str, Family] = {f.name: f for f in _FAMILIES}


def get_family(name: str) -> Family:
    """The :class:`Family` called ``name``; an unknown name raises ``ConfigError`` listing them."""
    try:
        return FAMILIES[name]
    except KeyError:
        raise ConfigError("family", name, list(FAMILIES)) from None


def noise_schedule(family: str, steps: int = 1000) -> torch.Tensor:
    """``alphas_cumprod`` (float32, ``[steps]``, CPU) the UNet uses while ``family`` is injected.

    SD1.5 families and HotShot-XL: betas linear 0.00085 → 0.012 (not SD's own √β-linear
    schedule); AnimateDiff SDXL: √β linear √0.00085 → √0.020. Matches the tables
    sd-webui-animatediff installs (``fixtures/animatediff/tiny/inject/alphas_cumprod.safetensors``).
    """
    spec = get_family(family)
    if spec.beta_schedule == "scaled_linear":
        betas = torch.linspace(spec.beta_start**0.5, spec.beta_end**0.5, steps, dtype=torch.float32) ** 2
    else:
        betas = torch.linspace(spec.beta_start, spec.beta_end, steps, dtype=torch.float32)
    return torch.cumprod(1.0 - betas, dim=0)


# --- key names ----------------------------------------------------------------------------------

MOTION_KEY = re.compile(
    r"^(?:down_blocks\.(\d+)|up_blocks\.(\d+)|mid_block)\.motion_modules\.(\d+)\.temporal_transformer\."
)
TABLE_KEY = re.compile(r"\.pos_encoder\.(pe|pos_encoding)$")
_LEGACY_HOTSHOT = re.compile(r"^((?:down|up)_blocks\.\d+|mid_block)\.temporal_attentions\.(\d+)\.")


def canonical_keys(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """The same tensors under the names :class:`~lib_vidsd.motion.model.MotionModule` uses.

    Renames the original HotShot-XL layout (``<level>.temporal_attentions.<j>.X`` →
    ``<level>.motion_modules.<j>.temporal_transformer.X``, ``pos_encoder.positional_encoding`` →
    ``pos_encoder.pe``); other names are kept. Values are not copied.
    """
    if not any(".temporal_attentions." in k for k in state_dict):
        return dict(state_dict)
    renamed = {}
    for key, value in state_dict.items():
        key = _LEGACY_HOTSHOT.sub(r"\1.motion_modules.\2.temporal_transformer.", key)
        if key.endswith(".pos_encoder.positional_encoding"):
            key = key[: -len("positional_encoding")] + "pe"
        renamed[key] = value
    log.debug("renamed the original HotShot-XL layout (%d tensors)", len(renamed))
    return renamed


@dataclass(frozen=True)
class Layout:
    """What a state dict's names and shapes say (see :func:`read_layout`)."""

    motion_tensors: int
    down_levels: tuple[int, ...]
    up_levels: tuple[int, ...]
    has_mid_block: bool
    table_names: tuple[str, ...]  # "pe" / "pos_encoding" as found
    table_lengths: tuple[int, ...]  # distinct dim-1 sizes of the tables


def read_layout(state_dict: Mapping[str, Any]) -> Layout:
    """Levels, mid block and positional tables of a canonical-named state dict (shapes only)."""
    down, up, mid, count = set(), set(), False, 0
    names, lengths = set(), set()
    for key, value in state_dict.items():
        m = MOTION_KEY.match(key)
        if m is None:
            continue
        count += 1
        if m.group(1) is not None:
            down.add(int(m.group(1)))
        elif m.group(2) is not None:
            up.add(int(m.group(2)))
        else:
            mid = True
        t = TABLE_KEY.search(key)
        if t is not None:
            shape = tuple(getattr(value, "shape", ()))
            if len(shape) != 3 or shape[0] != 1:
                raise IncompatibleModelError(f"positional table {key}: got shape {list(shape)}; expected [1, L, C]")
            names.add(t.group(1))
            lengths.add(int(shape[1]))
    return Layout(count, tuple(sorted(down)), tuple(sorted(up)), mid, tuple(sorted(names)), tuple(sorted(lengths)))


def _expected_text() -> str:
    return "; ".join(f.describe() for f in FAMILIES.values())


def _found_text(state_dict: Mapping[str, Any], layout: Layout | None = None) -> str:
    keys = list(state_dict)
    text = f"{len(keys)} tensors, first keys: {', '.join(keys[:4]) or '(none)'}"
    if layout is not None:
        text += (
            f"; {layout.motion_tensors} motion-module tensors, down levels {list(layout.down_levels)}, "
            f"up levels {list(layout.up_levels)}, mid_block {'yes' if layout.has_mid_block else 'no'}, "
            f"table lengths {list(layout.table_lengths) or 'none'}"
        )
    return text


def _unknown(state_dict: Mapping[str, Any], layout: Layout | None, why: str) -> IncompatibleModelError:
    return IncompatibleModelError(
        f"not a known motion-module layout ({why}). Expected keys "
        "'<down_blocks.i|up_blocks.i|mid_block>.motion_modules.j.temporal_transformer.…' "
        f"(or the original HotShot-XL '….temporal_attentions.j.…') in one of: {_expected_text()}. "
        f"Found {_found_text(state_dict, layout)}"
    )


def detect_family(state_dict: Mapping[str, Any]) -> str:
    """The family (``v1, v2, v3, sdxl, hotshotxl, animatelcm``) of a motion-module state dict.

    Reads names and ``.shape`` only, so meta tensors work; accepts the original HotShot-XL names.
    Rules: a ``mid_block`` → V2 (table length 32) or AnimateLCM (64, or tables named
    ``pos_encoding``, or no tables at all); else four levels → V1 (24) / V3 (32); three levels →
    HotShot-XL (24) / AnimateDiff SDXL (32). Anything else raises ``IncompatibleModelError``
    saying what was expected and what was found.
    """
    state_dict = canonical_keys(state_dict)
    layout = read_layout(state_dict)
    if layout.motion_tensors == 0:
        raise _unknown(state_dict, None, "no motion-module tensors")
    levels = len(layout.down_levels)
    if layout.down_levels != tuple(range(levels)) or layout.up_levels != layout.down_levels:
        raise _unknown(state_dict, layout, "down and up levels do not match")
    if len(layout.table_lengths) > 1:
        raise _unknown(state_dict, layout, "positional tables of different lengths")
    length = layout.table_lengths[0] if layout.table_lengths else None

    if levels == 4 and layout.has_mid_block:
        if length in (None, 64) or "pos_encoding" in layout.table_names:
            return "animatelcm"
        if length == 32:
            return "v2"
    elif levels == 4:
        by_length = {24: "v1", 32: "v3"}
        if length in by_length:
            return by_length[length]
    elif levels == 3 and not layout.has_mid_block:
        by_length = {24: "hotshotxl", 32: "sdxl"}
        if length in by_length:
            return by_length[length]
    why = f"{levels} levels, {'a' if layout.has_mid_block else 'no'} mid_block, table length {length}"
    raise _unknown(state_dict, layout, why)


def to_diffusers_adapter_keys(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """Original AnimateDiff names → diffusers ``MotionAdapter`` names (diffusers' own conversion
    rules): ``temporal_transformer.`` dropped, ``attention_blocks.0/1`` → ``attn1/2``,
    ``norms.0/1`` → ``norm1/2``, ``ff_norm`` → ``norm3``; diffusers keeps one positional table per
    transformer block (``pos_embed.pe``), so the second attention block's copy is left out."""
    out = {}
    for key, value in state_dict.items():
        if key.endswith("attention_blocks.1.pos_encoder.pe"):
            continue
        key = key.replace("attention_blocks.0.pos_encoder.pe", "pos_embed.pe")
        key = key.replace(".temporal_transformer.", ".")
        key = key.replace("attention_blocks.0", "attn1").replace("attention_blocks.1", "attn2")
        key = key.replace("norms.0", "norm1").replace("norms.1", "norm2").replace("ff_norm", "norm3")
        out[key] = value
    return out
