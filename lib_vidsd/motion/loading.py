"""Reading motion-module files and building the matching :class:`MotionModule`.

Files are read with safetensors or ``torch.load(weights_only=True)``: nothing is unpickled
beyond tensors and plain containers. A top-level ``state_dict`` entry is unwrapped (as A1111's
``read_state_dict`` does). Loading is strict — exactly the family's keys and shapes — except for
AnimateLCM, whose files may lack the ``pos_encoding`` tables (recomputed: they are the fixed
sinusoid) and may carry non-motion entries (dropped), as sd-webui-animatediff tolerates.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Union

import torch
from torch import Tensor

from ..errors import ConfigError, IncompatibleModelError
from ..safeload import load_tensor_file
from .families import MOTION_KEY, TABLE_KEY, canonical_keys, detect_family, get_family
from .layers import PositionalEncoding
from .model import MotionModule, build_motion_module

log = logging.getLogger("vidsd.motion.loading")

PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")
SUFFIXES = (".safetensors",) + PICKLE_SUFFIXES

StateDictSource = Union[str, os.PathLike, Mapping[str, Tensor]]


def read_state_dict(path: str | os.PathLike) -> dict[str, Tensor]:
    """The tensors of a ``.safetensors`` / ``.ckpt`` / ``.pt`` / ``.pth`` file, on the CPU, as stored.

    ``.ckpt``-style files go through ``torch.load(weights_only=True)``; a file that needs more
    than tensors and plain containers is refused (``IncompatibleModelError``).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise ConfigError("model", path.name, list(SUFFIXES), hint="a motion-module file type")
    if not path.is_file():
        raise ConfigError("model", str(path), "an existing motion-module file")
    obj = load_tensor_file(path, "PyTorch checkpoint")
    if isinstance(obj, dict) and suffix == ".safetensors":
        return obj
    return unwrap_state_dict(obj, path.name)


def unwrap_state_dict(obj: Any, what: str = "state dict") -> dict[str, Tensor]:
    """The flat name → tensor mapping inside ``obj``: a top-level ``state_dict`` entry is unwrapped,
    entries that are not tensors (``global_step``, …) are dropped."""
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping):
        raise IncompatibleModelError(f"{what}: expected a mapping of names to tensors, got {type(obj).__name__}")
    tensors = {k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, Tensor)}
    if len(tensors) != len(obj):
        log.debug("%s: dropped %d entries that are not tensors", what, len(obj) - len(tensors))
    return tensors


def _level_channels(state_dict: Mapping[str, Tensor], levels: int) -> list[int]:
    channels = []
    for i in range(levels):
        key = f"down_blocks.{i}.motion_modules.0.temporal_transformer.norm.weight"
        if key not in state_dict:
            raise IncompatibleModelError(f"missing {key} (needed to tell the level's channel count)")
        channels.append(int(state_dict[key].shape[0]))
    return channels


def _prepare(state_dict: Mapping[str, Tensor], family: str) -> dict[str, Tensor]:
    """Canonical names; the family's table name; AnimateLCM's extra entries dropped."""
    spec = get_family(family)
    out = {}
    for key, value in canonical_keys(state_dict).items():
        if spec.name == "animatelcm" and MOTION_KEY.match(key) is None:
            continue
        m = TABLE_KEY.search(key)
        if m is not None and m.group(1) != spec.table_name:
            key = key[: m.start(1)] + spec.table_name
        out[key] = value
    dropped = len(state_dict) - len(out)
    if dropped:
        log.info("AnimateLCM file: ignored %d entries outside the motion modules", dropped)
    return out


def _check_keys(module: MotionModule, state_dict: Mapping[str, Tensor]) -> list[str]:
    """Raise ``IncompatibleModelError`` unless names and shapes fit; return tolerated missing keys."""
    expected = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    shapes = [
        f"{k}: file {list(state_dict[k].shape)}, model {list(s)}"
        for k, s in expected.items()
        if k in state_dict and tuple(state_dict[k].shape) != s
    ]
    tolerated = [k for k in missing if module.family == "animatelcm" and TABLE_KEY.search(k)]
    missing = [k for k in missing if k not in tolerated]
    if missing or unexpected or shapes:
        parts = []
        for label, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", shapes)):
            if items:
                parts.append(f"{len(items)} {label} ({'; '.join(items[:3])}{', …' if len(items) > 3 else ''})")
        raise IncompatibleModelError(
            f"the file does not fit the {module.spec.label} layout ({module.family}, channels "
            f"{list(module.channels)}): " + ", ".join(parts)
        )
    return tolerated


def load_motion_module(
    source: StateDictSource,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> MotionModule:
    """A :class:`MotionModule` holding the weights of ``source`` (a file path or a state dict).

    The family is detected from names and shapes (:func:`detect_family`); channels per level come
    from the file. ``device`` defaults to the CPU, ``dtype`` to float32 (whatever was stored,
    fp16 or fp32); pass the UNet's device and dtype to compute alongside it. Returned in eval mode
    with ``requires_grad`` off. A state dict passed in is copied, never shared.
    Raises ``IncompatibleModelError`` for an unknown layout or names/shapes that do not fit.
    """
    owned = not isinstance(source, Mapping)
    if owned:
        what = Path(source).name
        state_dict = read_state_dict(source)
    else:
        what = "state dict"
        state_dict = unwrap_state_dict(source)
    family = detect_family(state_dict)
    state_dict = _prepare(state_dict, family)
    spec = get_family(family)
    skeleton = build_motion_module(family, _level_channels(state_dict, spec.levels), device="meta")
    tolerated = _check_keys(skeleton, state_dict)
    device = torch.device(device) if device is not None else torch.device("cpu")
    dtype = dtype or torch.float32
    if owned:
        # adopt the file's tensors instead of allocating a second copy, then convert
        skeleton.load_state_dict(state_dict, strict=False, assign=True)
        module = skeleton
    else:
        module = skeleton.to_empty(device=device)
        module.load_state_dict(state_dict, strict=False)
    if tolerated:
        log.info("%s: %d positional tables not in the file; using the computed sinusoid", what, len(tolerated))
        _recompute_tables(module, set(tolerated), device)
    module.to(device=device, dtype=dtype)
    module.requires_grad_(False)
    log.info("loaded %s motion module (%s, channels %s) from %s", spec.label, family, list(module.channels), what)
    return module.eval()


def _recompute_tables(module: MotionModule, keys: set[str], device: torch.device) -> None:
    for name, sub in module.named_modules():
        if isinstance(sub, PositionalEncoding) and f"{name}.{sub.table_name}" in keys:
            sub.reset_table(device=device)


def probe_family(path: str | os.PathLike) -> str:
    """The family of a motion-module file, reading as little as possible.

    ``.safetensors``: only the header (names and shapes). Other file types are read whole.
    """
    path = Path(path)
    if path.suffix.lower() == ".safetensors" and path.is_file():
        from safetensors import safe_open

        shapes = {}
        try:
            with safe_open(str(path), framework="pt", device="cpu") as f:
                for key in f.keys():
                    shapes[key] = torch.empty(f.get_slice(key).get_shape(), device="meta")
        except Exception as e:
            raise IncompatibleModelError(f"{path.name}: not a readable safetensors file ({e})") from e
        return detect_family(shapes)
    return detect_family(read_state_dict(path))
