"""Motion LoRAs: low-rank weight updates for a motion module's linear layers, reversible.

Key layouts accepted, and the evidence for each (no file could be downloaded; the layouts come
from the code that reads them):

1. **Original AnimateDiff** (guoyww ``v2_lora_*.ckpt``, possibly under a ``state_dict`` entry):
   ``<module path>.processor.<proj>_lora.down.weight`` / ``….up.weight``, e.g.
   ``down_blocks.0.motion_modules.0.temporal_transformer.transformer_blocks.0.attention_blocks.0.processor.to_q_lora.down.weight``.
   guoyww/AnimateDiff ``animatediff/utils/convert_lora_safetensor_to_diffusers.py``
   (``convert_motion_lora_ckpt_to_diffusers``) maps such a key to its layer by dropping
   ``processor.``, ``_lora``, ``down.``/``up.`` and turning ``to_out.`` into ``to_out.0.``, then adds
   ``alpha * up @ down`` to the weight: no stored alpha, no rank scaling. sd-webui-animatediff before
   2.0 (``scripts/animatediff_lora.py``, e.g. commit 4cd270d) split these keys at ``_lora.`` the same
   way and handed ``lora_down.weight``/``lora_up.weight`` to A1111's LoRA code.
2. **A1111 / kohya style** (conrevo's ``mm_sd15_v2_lora_*.safetensors`` repacks, which
   sd-webui-animatediff ≥ 2.0 leaves to A1111's built-in LoRA code):
   ``<module path with "." → "_">.lora_down.weight`` / ``.lora_up.weight`` / optional ``.alpha``, e.g.
   ``down_blocks_0_motion_modules_0_temporal_transformer_transformer_blocks_0_attention_blocks_0_to_q.lora_down.weight``.
   Evidence: sd-webui-animatediff ``scripts/animatediff_mm.py::_set_layer_mapping`` (since 2.0.0-a,
   commit e3c58ba) registers every motion-module layer in A1111's ``network_layer_mapping`` under
   ``name.replace(".", "_")``, and A1111's ``networks.load_network`` looks a key up by the part
   before its first ``.``; the suffixes and ``alpha`` are A1111's LoRA module convention
   (scale ``alpha / rank`` when ``alpha`` is stored, else 1). The same names with dots
   (``<module path>.lora_down.weight``) are accepted too.

Every update is ``W += weight · scale · (up @ down)``, computed in float32 and summed over all
LoRAs before it touches ``W`` once. :func:`apply_motion_loras` keeps the original tensors and its
undo copies them back, so undo is bit-exact whatever rounding the update had.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import torch
from torch import Tensor, nn

from ..errors import ConfigError, IncompatibleModelError
from .loading import read_state_dict, unwrap_state_dict

log = logging.getLogger("vidsd.motion.lora")

LoraSource = Union[str, os.PathLike, Mapping[str, Tensor]]

_ORIGINAL = re.compile(r"^(?P<path>.+)\.processor\.(?P<proj>[A-Za-z0-9_]+?)_lora\.(?P<part>down|up)\.weight$")
_KOHYA = re.compile(r"^(?P<path>.+?)\.lora_(?P<part>down|up)\.weight$")
_ALPHA = re.compile(r"^(?P<path>.+)\.alpha$")


@dataclass
class LoraLayer:
    """One low-rank update: ``up`` ``[out, rank]`` @ ``down`` ``[rank, in]``, times ``alpha / rank``
    when ``alpha`` is stored. ``target`` as written in the file, before resolving."""

    target: str
    down: Tensor | None = None
    up: Tensor | None = None
    alpha: float | None = None

    @property
    def scale(self) -> float:
        if self.alpha is None or self.down is None:
            return 1.0
        return self.alpha / self.down.shape[0]


def parse_motion_lora(state_dict: Mapping[str, Tensor], what: str = "LoRA") -> dict[str, LoraLayer]:
    """Group a LoRA state dict by target layer (module path as written: dots or underscores)."""
    layers: dict[str, LoraLayer] = {}
    for key, value in state_dict.items():
        m = _ORIGINAL.match(key)
        if m is not None:
            proj = m.group("proj")
            target = f"{m.group('path')}.{'to_out.0' if proj == 'to_out' else proj}"
        else:
            m = _KOHYA.match(key) or _ALPHA.match(key)
            if m is None:
                raise IncompatibleModelError(
                    f"{what}: key {key!r} is not a motion-LoRA key; expected '….processor.to_q_lora.down.weight' "
                    "(AnimateDiff) or '…_to_q.lora_down.weight' / '….alpha' (A1111 style)"
                )
            target = m.group("path")
        layer = layers.setdefault(target, LoraLayer(target))
        part = m.groupdict().get("part")
        if part == "down":
            layer.down = value
        elif part == "up":
            layer.up = value
        else:
            layer.alpha = float(value.float().item())
    for layer in layers.values():
        if layer.down is None or layer.up is None:
            raise IncompatibleModelError(
                f"{what}: {layer.target} has no {'down' if layer.down is None else 'up'} weight"
            )
    if not layers:
        raise IncompatibleModelError(f"{what}: no LoRA weights in it")
    return layers


def _layer_index(module: nn.Module) -> dict[str, nn.Linear]:
    index: dict[str, nn.Linear] = {}
    for name, sub in module.named_modules():
        if isinstance(sub, nn.Linear):
            index[name] = sub
            index[name.replace(".", "_")] = sub
    return index


def _read(source: LoraSource) -> tuple[dict[str, Tensor], str]:
    if isinstance(source, Mapping):
        return unwrap_state_dict(source, "LoRA"), "LoRA"
    return read_state_dict(source), Path(source).name


def _delta(layer: LoraLayer, target: nn.Linear, family: str, what: str) -> Tensor:
    down, up = layer.down.float(), layer.up.float()
    weight = target.weight
    if (
        down.dim() != 2
        or up.dim() != 2
        or up.shape[1] != down.shape[0]
        or (up.shape[0], down.shape[1]) != tuple(weight.shape)
    ):
        raise IncompatibleModelError(
            f"{what}: {layer.target} has up {list(up.shape)} @ down {list(down.shape)}, but the {family} "
            f"motion module's layer is {list(weight.shape)}; the LoRA was made for another motion module"
        )
    return (up @ down).mul_(layer.scale)


def apply_motion_loras(motion_module: nn.Module, loras: Sequence[tuple[LoraSource, float]]) -> Callable[[], None]:
    """Add every ``(file or state dict, weight)`` LoRA to ``motion_module``'s weights; return undo.

    All LoRAs are read and checked before any weight changes: a LoRA whose layers the module lacks
    (e.g. a V2 LoRA's ``mid_block`` on V3) or whose shapes differ raises ``IncompatibleModelError``
    and leaves the module as it was. The returned callable puts back the original tensors
    bit for bit; calling it again does nothing.
    """
    family = getattr(motion_module, "family", "given")
    index = _layer_index(motion_module)
    deltas: dict[int, tuple[nn.Linear, Tensor]] = {}
    for number, entry in enumerate(loras):
        try:
            source, weight = entry
            weight = float(weight)
        except (TypeError, ValueError):
            raise ConfigError(f"motion_lora[{number}]", entry, "(file or state dict, weight)") from None
        state_dict, what = _read(source)
        for layer in parse_motion_lora(state_dict, what).values():
            target = index.get(layer.target)
            if target is None:
                raise IncompatibleModelError(
                    f"{what}: targets {layer.target}, which the {family} motion module does not have; "
                    "the LoRA was made for another motion module (motion LoRAs are published for V2)"
                )
            delta = _delta(layer, target, family, what).mul_(weight)
            if id(target) in deltas:
                deltas[id(target)][1].add_(delta)
            else:
                deltas[id(target)] = (target, delta)

    originals: list[tuple[nn.Linear, Tensor]] = []
    with torch.no_grad():
        for target, delta in deltas.values():
            originals.append((target, target.weight.detach().clone()))
            updated = target.weight.float() + delta.to(target.weight.device)
            target.weight.copy_(updated.to(target.weight.dtype))
    log.info("applied %d motion LoRA(s) to %d layers", len(loras), len(originals))

    def undo() -> None:
        with torch.no_grad():
            while originals:
                target, original = originals.pop()
                target.weight.copy_(original)
        log.debug("motion LoRA weights restored")

    return undo
