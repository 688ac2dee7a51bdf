"""DiffSynth's JSON config (alibaba/EasyNLP ``diffusion/DiffSynth/config/*.json``, read by its
``run_DiffSynth.py``) → vidsd's :class:`StylizeParams`, :class:`GenerationParams` and the runner's extras.

DiffSynth's fields and where they go:

==========================  ==========================================================================
``model_id``                ``extras.model`` (a local diffusers folder or checkpoint file)
``controlnet_model_id``     ``extras.controlnets`` (local folders/files; a net with scale 0 is dropped)
``controlnet_processor``    ``extras.processors``: ``tile``/``identity`` (the frame itself) or ``canny``;
                            DiffSynth's ``ControlnetImageProcesserTile`` is ``tile``. Annotators that
                            need model weights (HED, depth, openpose) and shuffle are refused.
``controlnet_scale``        ``extras.controlnet_scales`` (a number or one per net)
``input_video``             ``extras.input_path`` (a local video file or folder of images)
``frame_height/_width``     ``GenerationParams.height/width``
``frame_interval``          ``StylizeParams.every``
``frame_maximum_count``     ``StylizeParams.max_frames``
``prompt``, ``negative_prompt``   ``GenerationParams`` fields of the same name
``frames_reference``        ``StylizeParams.reference_images`` (the files read, base64)
``num_inference_steps``     ``GenerationParams.steps``
``seed_of_noise``           ``GenerationParams.seed`` (``null`` → random)
``guidance_scale``          ``GenerationParams.cfg_scale`` (DiffSynth: 7.5)
``combine_pattern``         ``StylizeParams.combine_pattern``
``img2img_strength``        ``GenerationParams.denoising_strength``
``ignore_smoother_steps``   ``StylizeParams.smoother_ignore_last``
``smoother_interval``       ``StylizeParams.smoother_interval``
``smoother`` + ``smoother_config``            the in-loop smoother (absent: none)
``post_smoother`` + ``post_smoother_config``  the post deflicker (absent: none)
``output_path``             ``extras.output_path``
``style_image``             refused: only a shuffle ControlNet uses it, and shuffle is not supported
==========================  ==========================================================================

Smoother configs: ``PySynthSmoother`` (``speed`` ``fastest`` → fast, ``slowest`` → balanced;
``window_size``, default 10) and ``FastBlendSmoother`` (``inference_mode`` fast/balanced/accurate,
``window_size``, default 15), both with ``postprocessing: {contrast, sharpness}`` and optionally
``patch_size``/``minimum_patch_size`` and ``guide_weight``; ``num_iter`` must be 5, ``initialize``
identity, ``tracking_window_size`` 0; ``gpu_id``, ``threads_per_block`` and ``batch_size`` only concern
speed and are ignored. The patch-match settings not given keep vidsd's defaults (FastBlend's: patch 5,
guide weight 10), not PySynth's (21, 100). In-loop postprocessing applies to the smoothed predictions
(as in PySynth), post postprocessing to the final frames. Every other key must be a field of
:class:`StylizeParams` or :class:`GenerationParams` (vidsd's own names); an unknown key is an error.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import DeflickerMode, GenerationParams, StylizeParams, validate
from ..errors import ConfigError

log = logging.getLogger("vidsd.stylize.diffsynth")

__all__ = ["CONTROLNET_PROCESSORS", "DIFFSYNTH_KEYS", "DiffSynthExtras", "check_local_paths", "diffsynth_config"]

#: DiffSynth's own config keys.
DIFFSYNTH_KEYS = (
    "model_id",
    "controlnet_model_id",
    "controlnet_processor",
    "controlnet_scale",
    "input_video",
    "frame_height",
    "frame_width",
    "frame_interval",
    "frame_maximum_count",
    "prompt",
    "negative_prompt",
    "frames_reference",
    "num_inference_steps",
    "seed_of_noise",
    "guidance_scale",
    "combine_pattern",
    "img2img_strength",
    "ignore_smoother_steps",
    "smoother_interval",
    "smoother",
    "smoother_config",
    "post_smoother",
    "post_smoother_config",
    "output_path",
    "style_image",
)
_GEN = {
    "frame_height": "height",
    "frame_width": "width",
    "prompt": "prompt",
    "negative_prompt": "negative_prompt",
    "num_inference_steps": "steps",
    "seed_of_noise": "seed",
    "guidance_scale": "cfg_scale",
    "img2img_strength": "denoising_strength",
}
_STYLE = {
    "frame_interval": "every",
    "frame_maximum_count": "max_frames",
    "ignore_smoother_steps": "smoother_ignore_last",
    "smoother_interval": "smoother_interval",
}
#: vidsd field names a DiffSynth config may not use (WebUI-only, or taken by a DiffSynth key).
_NOT_IN_CONFIG = ("input_video", "input_dir", "output_name", "reference_images")

#: Model-free ControlNet processors: name → canonical name (DiffSynth's class names included).
CONTROLNET_PROCESSORS = {
    "tile": "tile",
    "identity": "tile",
    "controlnetimageprocessertile": "tile",
    "canny": "canny",
}
_PROCESSORS_ALLOWED = "tile (or identity, ControlnetImageProcesserTile: the frame itself), canny"
_SMOOTHERS = ("PySynthSmoother", "FastBlendSmoother")
_SPEEDS = {"fastest": DeflickerMode.FAST, "slowest": DeflickerMode.BALANCED}
_IGNORED = ("gpu_id", "threads_per_block", "batch_size")


@dataclass
class DiffSynthExtras:
    """What the runner needs beyond the two parameter models. ``smoother_*`` ``None``: use the
    params' ``patch_size`` / ``guide_weight``; contrast/sharpness 1 leave the predictions as they are."""

    model: str | None = None
    controlnets: list[str] = field(default_factory=list)
    processors: list[str] = field(default_factory=list)
    controlnet_scales: list[float] = field(default_factory=list)
    input_path: str | None = None
    output_path: str = "output_video"
    smoother_patch_size: int | None = None
    smoother_guide_weight: float | None = None
    smoother_contrast: float = 1.0
    smoother_sharpness: float = 1.0


@dataclass
class _Smoother:
    mode: DeflickerMode = DeflickerMode.NONE
    window: int | None = None
    patch_size: int | None = None
    guide_weight: float | None = None
    contrast: float = 1.0
    sharpness: float = 1.0


def _number(key: str, value: Any, kind: type = float) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(key, value, "a number")
    if kind is int and value != int(value):
        raise ConfigError(key, value, "an integer")
    return kind(value)


def _smoother(name_key: str, name: Any, config: Any) -> _Smoother:
    """One smoother entry (``smoother`` + ``smoother_config`` or the ``post_`` pair)."""
    cfg_key = f"{name_key}_config"
    if name in (None, "", "none", "None"):
        return _Smoother()
    if name in DeflickerMode.values():  # vidsd's own mode names, with FastBlend's config keys
        config = {"inference_mode": name, **dict(config or {})}
        name = "FastBlendSmoother"
    if name not in _SMOOTHERS:
        raise ConfigError(
            name_key, name, ", ".join(_SMOOTHERS), "other smoothers need Ebsynth binaries or RAFT weights"
        )
    config = dict(config or {})
    if not isinstance(config, dict):
        raise ConfigError(cfg_key, config, "an object")
    out = _Smoother()
    if name == "PySynthSmoother":
        speed = config.pop("speed", "slowest")
        if speed not in _SPEEDS:
            raise ConfigError(f"{cfg_key}.speed", speed, ", ".join(_SPEEDS))
        out.mode = _SPEEDS[speed]
        out.window = _number(f"{cfg_key}.window_size", config.pop("window_size", 10), int)
    else:
        mode = str(config.pop("inference_mode", "fast")).lower()
        if mode not in ("fast", "balanced", "accurate"):
            raise ConfigError(f"{cfg_key}.inference_mode", mode, "fast, balanced, accurate")
        out.mode = DeflickerMode(mode)
        out.window = _number(f"{cfg_key}.window_size", config.pop("window_size", 15), int)
    for key in ("patch_size", "minimum_patch_size"):
        if key in config:
            out.patch_size = _number(f"{cfg_key}.{key}", config.pop(key), int)
    if "guide_weight" in config:
        out.guide_weight = _number(f"{cfg_key}.guide_weight", config.pop("guide_weight"))
    post = config.pop("postprocessing", None) or {}
    if not isinstance(post, dict) or set(post) - {"contrast", "sharpness"}:
        raise ConfigError(f"{cfg_key}.postprocessing", post, "an object with contrast and/or sharpness")
    out.contrast = _number(f"{cfg_key}.postprocessing.contrast", post.get("contrast", 1.0))
    out.sharpness = _number(f"{cfg_key}.postprocessing.sharpness", post.get("sharpness", 1.0))
    for key, only in (("num_iter", 5), ("initialize", "identity"), ("tracking_window_size", 0)):
        value = config.pop(key, only)
        if value != only:
            raise ConfigError(f"{cfg_key}.{key}", value, f"{only} (the only value supported here)")
    for key in _IGNORED:
        if config.pop(key, None) is not None:
            log.info("%s.%s only concerns speed: ignored", cfg_key, key)
    if config:
        known = "speed, window_size" if name == "PySynthSmoother" else "inference_mode, window_size"
        known += ", postprocessing, patch_size, minimum_patch_size, guide_weight, num_iter, " + ", ".join(_IGNORED)
        raise ConfigError(f"{cfg_key}.{next(iter(config))}", "given", f"known keys: {known}", "unknown key")
    return out


def _as_list(key: str, value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, (str, int, float)):
        return [value]
    if isinstance(value, (list, tuple)):
        return list(value)
    raise ConfigError(key, value, "a list")


def _controlnets(data: Mapping[str, Any], extras: DiffSynthExtras) -> None:
    models = _as_list("controlnet_model_id", data.get("controlnet_model_id"))
    processors = _as_list("controlnet_processor", data.get("controlnet_processor"))
    scales_given = data.get("controlnet_scale", 1.0)
    scales = (
        [scales_given] * len(models)
        if isinstance(scales_given, (int, float))
        else _as_list("controlnet_scale", scales_given)
    )
    if not len(models) == len(processors) == len(scales):
        raise ConfigError(
            "controlnet_processor",
            f"{len(models)} models, {len(processors)} processors, {len(scales)} scales",
            "one processor and one scale per controlnet_model_id",
        )
    for i, (model, processor, scale) in enumerate(zip(models, processors, scales, strict=True)):
        scale = _number(f"controlnet_scale[{i}]", scale)
        if scale == 0:
            log.info("controlnet %s has scale 0: not loaded", model)
            continue  # contributes nothing (DiffSynth's zero-scale nets are placeholders)
        canonical = CONTROLNET_PROCESSORS.get(str(processor).lower())
        if canonical is None:
            raise ConfigError(
                "controlnet_processor",
                processor,
                _PROCESSORS_ALLOWED,
                "annotators that need model weights (HED, depth, openpose) and shuffle cannot be used: "
                "nothing is downloaded; prepare control videos elsewhere or use tile/canny",
            )
        extras.controlnets.append(str(model))
        extras.processors.append(canonical)
        extras.controlnet_scales.append(scale)


def _reference_images(paths: list[Any], base_dir: Path) -> list[str]:
    out = []
    for i, item in enumerate(paths):
        path = Path(str(item))
        path = path if path.is_absolute() else base_dir / path
        if not path.is_file():
            raise ConfigError(f"frames_reference[{i}]", str(item), "an image file")
        out.append(base64.b64encode(path.read_bytes()).decode("ascii"))
    return out


def diffsynth_config(
    config: Mapping[str, Any], *, base_dir: str | Path = "."
) -> tuple[StylizeParams, GenerationParams, DiffSynthExtras]:
    """DiffSynth's config dict → ``(StylizeParams, GenerationParams, DiffSynthExtras)`` (see the module
    docstring). ``base_dir``: where relative ``frames_reference`` paths start. Model and input paths
    are not checked here (:func:`check_local_paths`). Errors are :class:`ConfigError` naming the key."""
    if not isinstance(config, Mapping):
        raise ConfigError("config", type(config).__name__, "a JSON object")
    style_fields, gen_fields = set(StylizeParams.__fields__), set(GenerationParams.__fields__)
    known = set(DIFFSYNTH_KEYS) | (style_fields - set(_NOT_IN_CONFIG)) | gen_fields
    for key in config:
        if key not in known:
            names = ", ".join([*DIFFSYNTH_KEYS, *sorted(known - set(DIFFSYNTH_KEYS))])
            raise ConfigError(key, config[key], f"known keys: {names}", "unknown key")
    if config.get("style_image") not in (None, ""):
        raise ConfigError(
            "style_image",
            config["style_image"],
            "absent",
            "only a shuffle ControlNet uses it; shuffle is not supported",
        )
    own = {k: v for k, v in config.items() if k not in DIFFSYNTH_KEYS}  # vidsd's names
    gen: dict[str, Any] = {k: v for k, v in own.items() if k in gen_fields}
    style: dict[str, Any] = {k: v for k, v in own.items() if k in style_fields}
    for source, target, values in [
        *((s, t, gen) for s, t in _GEN.items()),
        *((s, t, style) for s, t in _STYLE.items()),
    ]:
        if source not in config:
            continue
        if target in config and target != source:
            raise ConfigError(target, config[target], f"absent when {source} is given (the same setting)")
        values[target] = config[source]
    if gen.get("seed") is None:
        gen["seed"] = -1
    gen.setdefault("scheduler", "ddim")  # DiffSynth samples with DDIM
    gen.setdefault("denoising_strength", 1.0)  # DiffSynth's img2img_strength default
    if "combine_pattern" in config:
        pattern = config["combine_pattern"]
        style["combine_pattern"] = ", ".join(str(p) for p in pattern) if isinstance(pattern, (list, tuple)) else pattern
    refs = _as_list("frames_reference", config.get("frames_reference"))
    if refs:
        style["reference_images"] = _reference_images(refs, Path(base_dir))
    extras = DiffSynthExtras()
    _controlnets(config, extras)
    loop = _smoother("smoother", config.get("smoother"), config.get("smoother_config"))
    post = _smoother("post_smoother", config.get("post_smoother"), config.get("post_smoother_config"))
    style.setdefault("smoother", loop.mode.value)
    if loop.window is not None:
        style.setdefault("smoother_window", loop.window)
    style.setdefault("post_deflicker", post.mode.value)
    if post.window is not None:
        style.setdefault("post_window", post.window)
    for key, value in (("patch_size", post.patch_size), ("guide_weight", post.guide_weight)):
        if value is not None:
            style.setdefault(key, value)
    if post.mode is not DeflickerMode.NONE:
        style.setdefault("contrast", post.contrast)
        style.setdefault("sharpness", post.sharpness)
    extras.smoother_patch_size, extras.smoother_guide_weight = loop.patch_size, loop.guide_weight
    extras.smoother_contrast, extras.smoother_sharpness = loop.contrast, loop.sharpness
    extras.model = None if config.get("model_id") in (None, "") else str(config["model_id"])
    extras.input_path = None if config.get("input_video") in (None, "") else str(config["input_video"])
    extras.output_path = str(config.get("output_path") or "output_video")
    return validate(StylizeParams, style), validate(GenerationParams, gen), extras


def check_local_paths(extras: DiffSynthExtras) -> None:
    """Refuse model ids that are not existing local paths (nothing is downloaded) and a missing input.
    No ``model_id`` at all means the tiny built-in model (like the other commands without ``--model``)."""
    named = [("model_id", extras.model)] if extras.model is not None else []
    for key, value in named + [(f"controlnet_model_id[{i}]", m) for i, m in enumerate(extras.controlnets)]:
        if value is None:
            raise ConfigError(key, value, "a local diffusers model folder or .safetensors/.ckpt file")
        if not Path(value).exists():
            raise ConfigError(
                key, value, "an existing local folder or file", "local model paths only: model ids are not downloaded"
            )
    if extras.input_path is None or not Path(extras.input_path).exists():
        raise ConfigError("input_video", extras.input_path, "an existing local video file or folder of images")
