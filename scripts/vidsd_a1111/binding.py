"""One table binds each AnimateDiff field to its widget, its infotext entry and its API key.

Bounds, defaults, choices and hover texts come from ``lib_vidsd.config.AnimateDiffParams``; the
table adds only what is A1111's: the widget kind, the label, slider ranges, img2img-only fields.
The widget order is the positional argument order (``p.script_args`` and the API list form).
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from typing import Any

from lib_vidsd.config import AnimateDiffParams, Choice, FieldInfo, describe, validate
from lib_vidsd.errors import ConfigError

INFOTEXT_KEY = "AnimateDiff"


@dataclass(frozen=True)
class Bind:
    field: str
    label: str
    widget: str  # checkbox, dropdown, checkboxgroup, slider, number, radio, image; "" = API only
    ui_max: float | None = None  # slider range when the config bound is larger than a slider should be
    step: float | None = None
    img2img_only: bool = False
    infotext: bool = True


BINDINGS: tuple[Bind, ...] = (
    Bind("enable", "Enable AnimateDiff", "checkbox", infotext=False),
    Bind("model", "Motion module", "dropdown"),
    Bind("format", "Save format", "checkboxgroup"),
    Bind("video_length", "Number of frames", "number"),
    Bind("fps", "FPS", "number"),
    Bind("loop_number", "Display loop number", "number"),
    Bind("closed_loop", "Closed loop", "radio"),
    Bind("batch_size", "Context batch size", "slider", step=1),
    Bind("stride", "Stride", "number"),
    Bind("overlap", "Overlap", "number"),
    Bind("fuse", "Fuse method", "radio"),
    Bind("motion_lora", "Motion LoRA", "dropdown"),
    Bind("motion_lora_strength", "Motion LoRA strength", "slider", step=0.05),
    Bind("interp", "Frame interpolation", "radio"),
    Bind("interp_x", "Interp X", "number"),
    Bind("freeinit_enable", "FreeInit", "checkbox"),
    Bind("freeinit_filter", "FreeInit filter", "dropdown"),
    Bind("freeinit_ds", "FreeInit spatial stop frequency", "slider", step=0.0625),
    Bind("freeinit_dt", "FreeInit temporal stop frequency", "slider", step=0.0625),
    Bind("freeinit_iters", "FreeInit iterations", "slider", step=1),
    Bind("latent_power", "Latent power", "slider", step=0.1, img2img_only=True),
    Bind("latent_scale", "Latent scale", "slider", step=1, img2img_only=True),
    Bind("last_frame", "Optional last frame", "image", img2img_only=True, infotext=False),
    Bind("latent_power_last", "Latent power (last frame)", "slider", step=0.1, img2img_only=True),
    Bind("latent_scale_last", "Latent scale (last frame)", "slider", step=1, img2img_only=True),
    # API only (no widget): accepted for sd-webui-animatediff clients
    Bind("request_id", "Request id", ""),
    Bind("video_source", "Video source", "", infotext=False),
    Bind("video_path", "Video path", "", infotext=False),
    Bind("mask_path", "Mask path", "", infotext=False),
    Bind("is_i2i_batch", "img2img batch", "", infotext=False),
)

FIELDS: dict[str, FieldInfo] = {f.name: f for f in describe(AnimateDiffParams)}


def widget_bindings() -> list[Bind]:
    """The fields that have a widget, in positional-argument order."""
    return [b for b in BINDINGS if b.widget]


def defaults() -> dict[str, Any]:
    """Every field's default, as the API and the widgets use it."""
    return {b.field: FIELDS[b.field].default for b in BINDINGS}


def parse_args(args: tuple | list) -> AnimateDiffParams:
    """The script's arguments → validated parameters.

    Accepts the API's dict form (``args: [{"enable": true, ...}]``; A1111 fills the rest of the
    script's argument slice with the widgets' defaults, which are then ignored), an
    ``AnimateDiffParams``, or positional values in :func:`widget_bindings` order (the UI, and the
    API list form; missing trailing values take their defaults). Raises ``ConfigError`` naming
    the field.
    """
    if args and isinstance(args[0], AnimateDiffParams):
        return args[0]
    if args and isinstance(args[0], dict):
        values = dict(args[0])
    else:
        binds = widget_bindings()
        if len(args) > len(binds):
            raise ConfigError("args", f"{len(args)} values", f"at most {len(binds)} (or one dict)")
        values = {b.field: v for b, v in zip(binds, args, strict=False)}  # missing trailing values: defaults
    values = {k: (v.value if isinstance(v, Choice) else v) for k, v in values.items()}
    if values.get("last_frame") is not None:
        values["last_frame"] = _image(values["last_frame"])
    return validate(AnimateDiffParams, values)


def _image(value: Any):
    """A PIL image from a PIL image, a numpy array, a dict from gradio, or base64 text (API)."""
    from PIL import Image

    if isinstance(value, Image.Image):
        return value
    if isinstance(value, dict) and "image" in value:  # gradio's image-with-mask dict
        value = value["image"]
    if isinstance(value, str):
        text = value.split(",", 1)[1] if value.startswith("data:") else value
        try:
            return Image.open(io.BytesIO(base64.b64decode(text, validate=True)))
        except Exception as e:
            raise ConfigError("last_frame", value[:32] + "…", "a base64-encoded image") from e
    try:
        import numpy as np

        return Image.fromarray(np.asarray(value))
    except Exception as e:
        raise ConfigError("last_frame", type(value).__name__, "an image") from e


def _text(value: Any) -> str:
    if isinstance(value, list):
        return "+".join(str(getattr(v, "value", v)) for v in value)
    return str(getattr(value, "value", value))


def infotext(params: AnimateDiffParams, *, is_img2img: bool) -> str:
    """The value of the ``AnimateDiff`` infotext entry: ``field: value`` pairs, comma separated."""
    parts = []
    for b in BINDINGS:
        if not b.infotext or (b.img2img_only and not is_img2img):
            continue
        value = getattr(params, b.field)
        if b.field == "request_id" and not value:
            continue
        parts.append(f"{b.field}: {_text(value)}")
    return ", ".join(parts)


def parse_infotext(text: str) -> dict[str, str]:
    """Inverse of :func:`infotext`: field → value text (unknown fields are skipped)."""
    out = {}
    for item in text.split(", "):
        field, sep, value = item.partition(": ")
        if sep and field in FIELDS:
            out[field] = value
    return out


def paste_label(field: str) -> str:
    """The key a pasted infotext's AnimateDiff value is spread into (see ``infotext_pasted``)."""
    return f"{INFOTEXT_KEY} {field}"


def infotext_pasted(_infotext: str, params: dict) -> None:
    """``script_callbacks.on_infotext_pasted``: spread the one entry into a key per field."""
    value = params.get(INFOTEXT_KEY)
    if not isinstance(value, str):
        return
    fields = parse_infotext(value)
    for field, text in fields.items():
        params[paste_label(field)] = text.split("+") if field == "format" else text
    params[paste_label("enable")] = True


def schema() -> dict:
    """JSON schema of the API arguments (``GET /vidsd/v1/schema``)."""
    return AnimateDiffParams.schema()
