"""One table per accordion binds each field to its widget, its infotext entry and its API key.

Bounds, defaults, choices and hover texts come from the ``lib_vidsd.config`` model; a table adds
only what is A1111's: the widget kind, the label, slider ranges, img2img-only fields. The widget
order is the positional argument order (``p.script_args`` and the API list form).
"""

from __future__ import annotations

import base64
import io
import re
from dataclasses import dataclass
from typing import Any, Type

from lib_vidsd.config import (
    AnimateDiffParams,
    Choice,
    FieldInfo,
    KeyframeParams,
    MultiFrameParams,
    Params,
    StepsAnimationParams,
    StylizeParams,
    describe,
    validate,
)
from lib_vidsd.errors import ConfigError


@dataclass(frozen=True)
class Bind:
    field: str
    label: str
    widget: str  # checkbox, dropdown, checkboxgroup, slider, number, radio, image, textbox; "" = API only
    ui_max: float | None = None  # slider range when the config bound is larger than a slider should be
    step: float | None = None
    img2img_only: bool = False
    infotext: bool = True
    txt2img_only: bool = False


ANIMATEDIFF_BINDS: tuple[Bind, ...] = (
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
    Bind("interp_model", "FILM/RIFE weights", "dropdown"),
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
    Bind("deflicker", "Deflicker", "radio"),
    Bind("deflicker_window", "Deflicker window (frames on each side)", "number"),
    # API only (no widget): accepted for sd-webui-animatediff clients
    Bind("request_id", "Request id", ""),
    Bind("video_source", "Video source", "", infotext=False),
    Bind("video_path", "Video path", "", infotext=False),
    Bind("mask_path", "Mask path", "", infotext=False),
    Bind("is_i2i_batch", "img2img batch", "", infotext=False),
)


class Binding:
    """The A1111 face of one parameter model: widgets, positional/dict arguments, infotext, schema.

    ``key`` is the infotext entry (``AnimateDiff: model: …, fps: 8``) and the script title;
    ``enable`` the field of the accordion's header checkbox (``None`` for a selectable script);
    ``images`` the fields that take an image (PIL, numpy, gradio dict or base64 text).
    """

    def __init__(
        self,
        params: Type[Params],
        key: str,
        binds: tuple[Bind, ...],
        enable: str | None,
        images: tuple[str, ...] = (),
    ):
        self.params, self.key, self.binds, self.enable, self.images = params, key, binds, enable, images
        self.fields: dict[str, FieldInfo] = {f.name: f for f in describe(params)}
        missing = set(self.fields) - {b.field for b in binds}
        if missing:
            raise ValueError(f"{key}: fields without a binding: {sorted(missing)}")

    def widget_bindings(self) -> list[Bind]:
        """The fields that have a widget, in positional-argument order."""
        return [b for b in self.binds if b.widget]

    def bind(self, field: str) -> Bind:
        return next(b for b in self.binds if b.field == field)

    def defaults(self) -> dict[str, Any]:
        """Every field's default, as the API and the widgets use it."""
        return {b.field: self.fields[b.field].default for b in self.binds}

    def parse_args(self, args: tuple | list) -> Any:
        """The script's arguments → validated parameters.

        Accepts the API's dict form (``args: [{"enabled": true, ...}]``; A1111 fills the rest of
        the script's argument slice with the widgets' defaults, which are then ignored), a params
        object, or positional values in :meth:`widget_bindings` order (the UI, and the API list
        form; missing trailing values take their defaults). Raises ``ConfigError`` naming the field.
        """
        if args and isinstance(args[0], self.params):
            return args[0]
        if args and isinstance(args[0], dict):
            values = dict(args[0])
        else:
            binds = self.widget_bindings()
            if len(args) > len(binds):
                raise ConfigError("args", f"{len(args)} values", f"at most {len(binds)} (or one dict)")
            values = {b.field: v for b, v in zip(binds, args, strict=False)}  # missing trailing values: defaults
        values = {k: (v.value if isinstance(v, Choice) else v) for k, v in values.items()}
        for field in self.images:
            if values.get(field) is not None:
                values[field] = _image(values[field], field)
        return validate(self.params, values)

    def infotext(self, params: Any, *, is_img2img: bool) -> str:
        """The value of the infotext entry: ``field: value`` pairs, comma separated."""
        parts = []
        for b in self.binds:
            if not b.infotext or (b.img2img_only and not is_img2img):
                continue
            value = getattr(params, b.field)
            if b.field == "request_id" and not value:
                continue
            parts.append(f"{b.field}: {_text(value)}")
        return ", ".join(parts)

    def parse_infotext(self, text: str) -> dict[str, str]:
        """Inverse of :meth:`infotext`: field → value text (unknown fields are skipped)."""
        out = {}
        for item in text.split(", "):
            field, sep, value = item.partition(": ")
            if sep and field in self.fields:
                out[field] = value
        return out

    def paste_label(self, field: str) -> str:
        """The key a pasted infotext's value is spread into (see :meth:`infotext_pasted`)."""
        return f"{self.key} {field}"

    def infotext_pasted(self, _infotext: str, params: dict) -> None:
        """``script_callbacks.on_infotext_pasted``: spread the one entry into a key per field."""
        value = params.get(self.key)
        if not isinstance(value, str):
            return
        for field, text in self.parse_infotext(value).items():
            is_list = isinstance(self.fields[field].default, list)
            params[self.paste_label(field)] = text.split("+") if is_list else text
        if self.enable is not None:
            params[self.paste_label(self.enable)] = True

    def schema(self) -> dict:
        """JSON schema of the API arguments."""
        return self.params.schema()


def _image(value: Any, field: str):
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
            raise ConfigError(field, value[:32] + "…", "a base64-encoded image") from e
    try:
        import numpy as np

        return Image.fromarray(np.asarray(value))
    except Exception as e:
        raise ConfigError(field, type(value).__name__, "an image") from e


def _text(value: Any) -> str:
    if isinstance(value, list):
        return "+".join(str(getattr(v, "value", v)) for v in value)
    return str(getattr(value, "value", value))


STEPS_BINDS: tuple[Bind, ...] = (
    Bind("enabled", "Enable steps animation", "checkbox", infotext=False),
    Bind("duration", "Duration (s)", "slider", ui_max=30, step=0.5),
    Bind("interpolation", "Interpolation", "dropdown"),
    Bind("fps", "Frame rate (with interpolation)", "slider", ui_max=60, step=1),
    Bind("interp_model", "FILM/RIFE weights", "dropdown"),
    Bind("codec", "Codec", "dropdown"),
    Bind("skip_steps", "Skip initial steps", "slider", ui_max=100, step=1),
    Bind("hold", "Hold final image (s)", "slider", ui_max=10, step=0.5),
    Bind("decode", "Decode", "dropdown"),
    Bind("resolution", "Resolution", "radio"),
    Bind("capture", "Capture", "radio"),
    Bind("hires_pass", "Record the hires fix pass", "checkbox", txt2img_only=True),
    Bind("run_incomplete", "Run on incomplete", "checkbox"),
    Bind("delete_frames", "Delete intermediate frames", "checkbox"),
    Bind("create_movie", "Create movie", "checkbox"),
    Bind("frames_folder", "Frames folder", "textbox"),
    Bind("movie_folder", "Movie folder", "textbox"),
    Bind("title", "Title", "textbox", infotext=False),
    Bind("artist", "Artist", "textbox", infotext=False),
    Bind("animatediff_view", "With AnimateDiff", "radio"),
)

MULTIFRAME_BINDS: tuple[Bind, ...] = (
    Bind("mode", "Mode", "radio"),
    Bind("first_denoise", "First frame denoising strength", "slider", step=0.01),
    Bind("third_frame", "Third frame image", "dropdown"),
    Bind("loopback_source", "Loopback source", "dropdown"),
    Bind("color_correction", "Colour correction (to the first output)", "checkbox"),
    Bind("color_strength", "Colour correction strength", "slider", step=0.05),
    Bind("seed_mode", "Seed per frame", "radio"),
    Bind("frame_prompts", "Per-frame prompts (a line per frame, or 'N: prompt' keyframes)", "textarea"),
    Bind("input_dir", "Input folder (a name inside an allowed folder)", "textbox"),
    Bind("start", "First frame", "number"),
    Bind("end", "Stop before frame (empty: to the end)", "number"),
    Bind("every", "Every N-th frame", "number"),
    Bind("max_frames", "Max frames (empty: all)", "number"),
    Bind("fit", "Fit to the generation size", "radio"),
    Bind("fps", "FPS (empty: the source's)", "number"),
    Bind("mask_dir", "Mask folder (a name inside an allowed folder)", "textbox"),
    Bind("mask_match", "Match masks by", "radio"),
    Bind("keep_alpha", "Keep the input's transparency", "checkbox"),
    Bind("output_name", "Output folder name", "textbox"),
    Bind("resume", "Resume into that folder", "checkbox"),
    Bind("format", "Video formats", "checkboxgroup"),
    Bind("loop", "Loop (GIF/WEBP/APNG; 0 = forever)", "number"),
    Bind("interp", "Frame interpolation", "dropdown"),
    Bind("interp_x", "Interpolation factor", "number"),
    Bind("interp_model", "FILM/RIFE weights", "dropdown"),
    Bind("deflicker", "Deflicker (guided by the source frames)", "radio"),
    Bind("deflicker_window", "Deflicker window (frames on each side)", "number"),
    # API only: the input as base64 (the UI uploads a file instead)
    Bind("input_video", "Input video (base64)", "", infotext=False),
    Bind("input_frames", "Input frames (base64)", "", infotext=False),
)

KEYFRAMES_BINDS: tuple[Bind, ...] = (
    # prompts and frames
    Bind("prompts", "Prompt keyframes ('frame: prompt' lines; the prompt box is added to each)", "textarea"),
    Bind("max_frames", "Frames (0: last key + 1, or the video's / audio's length)", "number"),
    Bind("fps", "FPS (0: 10, or the input video's)", "number"),
    # interpolation and seeds
    Bind("interpolation", "Interpolation between keys", "radio"),
    Bind("interpolation_args", "Interpolation arguments (sine: frequencies; curve: a schedule)", "textbox"),
    Bind("seed_schedule", "Seed schedule of the keys (empty: drawn from the seed)", "textbox"),
    Bind("fixed_latent", "Same starting noise for every key (only the prompt travels)", "checkbox"),
    # mode and motion
    Bind("mode", "Mode", "radio"),
    Bind("strength", "Denoising strength schedule", "textbox"),
    Bind("cfg_scale", "CFG scale schedule (empty: the CFG scale)", "textbox"),
    Bind("zoom", "Zoom", "textbox"),
    Bind("angle", "Angle", "textbox"),
    Bind("translation_x", "Translation X", "textbox"),
    Bind("translation_y", "Translation Y", "textbox"),
    Bind("pivot_x", "Pivot X", "textbox"),
    Bind("pivot_y", "Pivot Y", "textbox"),
    Bind("border", "Border", "dropdown"),
    # coherence and colour
    Bind("coherence_scale", "Latent coherence (0: off)", "number"),
    Bind("coherence_alpha", "Coherence reference follow rate", "slider", step=0.01),
    Bind("coherence_every", "Coherence every N steps", "number"),
    Bind("coherence_noise", "Coherence noise", "slider", ui_max=1, step=0.01),
    Bind("color_match", "Colour match to the first frame", "slider", step=0.05),
    Bind("color_space", "Colour match space", "dropdown"),
    # audio
    Bind("audio_component", "Audio component", "radio"),
    Bind("audio_reduce", "Loudness of a spectrogram column", "radio"),
    Bind("audio_keys", "Prompt keys on the audio's onsets", "checkbox"),
    Bind("audio_weights", "Interpolate with the audio's loudness", "checkbox"),
    Bind("mux_audio", "Put the audio into MP4/WEBM", "checkbox"),
    # video input
    Bind("video_every", "Every N-th input video frame", "number"),
    # output
    Bind("output_name", "Output folder name", "textbox"),
    Bind("resume", "Resume into that folder", "checkbox", infotext=False),
    Bind("format", "Video formats", "checkboxgroup"),
    Bind("loop", "Loop (GIF/WEBP/APNG; 0 = forever)", "number"),
    Bind("interp", "Frame interpolation", "dropdown"),
    Bind("interp_x", "Interpolation factor", "number"),
    Bind("interp_model", "FILM/RIFE weights", "dropdown"),
    # API only: the uploads as base64 (the UI has file uploads instead)
    Bind("audio", "Audio (base64)", "", infotext=False),
    Bind("video", "Input video (base64)", "", infotext=False),
)

#: what the WebUI's empty ``gr.Number`` sends back, read as "no value"
KEYFRAMES_ZERO_IS_EMPTY = ("fps",)
_NEEDS_QUOTES = re.compile(r"[,:'\"\\\n\r\t]|^\s|\s$")
_ENTRY_PAIR = re.compile(r"\s*([^:,']+?):\s*('(?:[^'\\]|\\.)*'|[^,]*?)\s*(?:,|$)")
_ESCAPES = {"\\": "\\\\", "'": "\\'", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_UNESCAPES = {"n": "\n", "r": "\r", "t": "\t"}


class KeyframeBinding(Binding):
    """The Keyframe animation table. Its infotext entry lists the settings that differ from the
    defaults (``mode`` always); a value with a comma, colon, quote or line break goes in single
    quotes with backslash escapes (single quotes, so A1111's own JSON quoting of the entry adds
    few backslashes), so schedules and prompt keys survive the trip. Pasting it restores every
    widget (those not listed to their defaults), the run's prompt box and seed, and selects the
    script."""

    #: per-frame and per-run keys of the entry that are not parameters
    RUN_KEYS = ("frame", "weight", "from", "to", "seeds", "base_prompt", "base_seed")

    def infotext(self, params: Any, *, is_img2img: bool = False, extra: dict[str, Any] | None = None) -> str:
        parts = []
        for b in self.binds:
            if not b.infotext:
                continue
            value = _plain(getattr(params, b.field))
            if b.field != "mode" and value == self.fields[b.field].default:
                continue
            parts.append(f"{b.field}: {_entry_value(value)}")
        parts += [f"{key}: {_entry_value(value)}" for key, value in (extra or {}).items() if value is not None]
        return ", ".join(parts)

    def parse_infotext(self, text: str) -> dict[str, str]:
        out = {}
        for key, raw in _ENTRY_PAIR.findall(text):
            key = key.strip()
            if key in self.fields or key in self.RUN_KEYS:
                out[key] = _unquote(raw)
        return out

    def paste_values(self, text: str) -> tuple[dict[str, Any], dict[str, str]]:
        """``(widget values, run keys)`` of an entry: every widget field, typed as its widget wants
        it (the defaults where the entry says nothing); fields whose text no longer validates keep
        their defaults."""
        given = self.parse_infotext(text)
        values = {}
        for b in self.widget_bindings():
            default = self.fields[b.field].default
            values[b.field] = default
            if b.field not in given or not b.infotext:
                continue
            raw = given[b.field]
            try:
                text = [x for x in raw.split("+") if x] if isinstance(default, list) else raw
                typed = self.parse_args([{b.field: text}])
            except ConfigError:
                continue
            values[b.field] = _plain(getattr(typed, b.field))
        return values, {k: v for k, v in given.items() if k in self.RUN_KEYS}

    def infotext_pasted(self, _infotext: str, params: dict) -> None:
        value = params.get(self.key)
        if not isinstance(value, str):
            return
        values, run = self.paste_values(value)
        for field, typed in values.items():
            params[self.paste_label(field)] = typed
        params.setdefault("Script", self.key)
        if "base_prompt" in run:  # the frame's own prompt and seed are in the infotext; the run's go back
            params["Prompt"] = run["base_prompt"]
        if "base_seed" in run:
            params["Seed"] = run["base_seed"]


def _plain(value: Any) -> Any:
    if isinstance(value, list):
        return [getattr(v, "value", v) for v in value]
    return getattr(value, "value", value)


def _entry_value(value: Any) -> str:
    text = "" if value is None else _text(value) if not isinstance(value, bool) else str(value)
    if not _NEEDS_QUOTES.search(text):
        return text
    return "'" + "".join(_ESCAPES.get(ch, ch) for ch in text) + "'"


def _unquote(raw: str) -> str:
    if len(raw) >= 2 and raw[0] == raw[-1] == "'":
        return re.sub(r"\\(.)", lambda m: _UNESCAPES.get(m.group(1), m.group(1)), raw[1:-1], flags=re.S)
    return raw


STYLIZE_BINDS: tuple[Bind, ...] = (
    Bind("combine_pattern", "Combine pattern (frame offsets, -10000 = first frame, reference_k)", "textbox"),
    Bind("chunk_size", "Frames per UNet call", "slider", ui_max=16, step=1),
    Bind("fixed_noise", "Same starting noise for every frame", "checkbox"),
    Bind("control_frames", "ControlNet units without an image follow the source frames", "checkbox"),
    Bind("input_dir", "Input folder (a name inside an allowed folder)", "textbox"),
    Bind("start", "First frame", "number"),
    Bind("every", "Every N-th frame", "number"),
    Bind("max_frames", "Max frames (empty: all)", "number"),
    Bind("fit", "Fit to the generation size", "radio"),
    Bind("fps", "FPS (empty: the source's)", "number"),
    Bind("smoother", "Smoother inside the denoising loop", "radio"),
    Bind("smoother_interval", "Smooth every N steps", "number"),
    Bind("smoother_ignore_last", "Not in the last M steps", "number"),
    Bind("smoother_window", "Smoother window (frames on each side)", "number"),
    Bind("post_deflicker", "Deflicker after sampling", "radio"),
    Bind("post_window", "Deflicker window (frames on each side)", "number"),
    Bind("patch_size", "Patch size (odd)", "slider", ui_max=31, step=2),
    Bind("guide_weight", "Guide weight (source video)", "slider", ui_max=30, step=0.5),
    Bind("contrast", "Contrast", "slider", ui_max=2, step=0.05),
    Bind("sharpness", "Sharpness", "slider", ui_max=3, step=0.05),
    Bind("output_name", "Output folder name", "textbox"),
    Bind("keep_audio", "Keep the input video's audio", "checkbox"),
    Bind("format", "Video formats", "checkboxgroup"),
    Bind("loop", "Loop (GIF/WEBP/APNG; 0 = forever)", "number"),
    Bind("interp", "Frame interpolation", "dropdown"),
    Bind("interp_x", "Interpolation factor", "number"),
    Bind("interp_model", "FILM/RIFE weights", "dropdown"),
    # API only: the inputs as base64 (the UI uploads files instead)
    Bind("input_video", "Input video (base64)", "", infotext=False),
    Bind("input_frames", "Input frames (base64)", "", infotext=False),
    Bind("reference_images", "Reference images (base64)", "", infotext=False),
)


class StylizeBinding(KeyframeBinding):
    """The Video stylisation table. Its infotext entry lists every setting (the uploads aside), a
    value with a comma or colon (the combine pattern) quoted as in :class:`KeyframeBinding`; pasting
    it restores the widgets and selects the script."""

    RUN_KEYS = ()

    def infotext(self, params: Any, *, is_img2img: bool = True, extra: dict[str, Any] | None = None) -> str:
        parts = [f"{b.field}: {_entry_value(_plain(getattr(params, b.field)))}" for b in self.binds if b.infotext]
        parts += [f"{key}: {_entry_value(value)}" for key, value in (extra or {}).items() if value is not None]
        return ", ".join(parts)


ANIMATEDIFF = Binding(AnimateDiffParams, "AnimateDiff", ANIMATEDIFF_BINDS, "enable", images=("last_frame",))
STEPS = Binding(StepsAnimationParams, "Steps animation", STEPS_BINDS, "enabled")
MULTIFRAME = Binding(MultiFrameParams, "Multi-frame rendering", MULTIFRAME_BINDS, None)
KEYFRAMES = KeyframeBinding(KeyframeParams, "Keyframe animation", KEYFRAMES_BINDS, None)
STYLIZE = StylizeBinding(StylizeParams, "Video stylisation", STYLIZE_BINDS, None)

# AnimateDiff's table under the module-level names the rest of the glue uses
INFOTEXT_KEY = ANIMATEDIFF.key
BINDINGS = ANIMATEDIFF.binds
FIELDS = ANIMATEDIFF.fields
widget_bindings = ANIMATEDIFF.widget_bindings
defaults = ANIMATEDIFF.defaults
parse_args = ANIMATEDIFF.parse_args
infotext = ANIMATEDIFF.infotext
parse_infotext = ANIMATEDIFF.parse_infotext
paste_label = ANIMATEDIFF.paste_label
infotext_pasted = ANIMATEDIFF.infotext_pasted
schema = ANIMATEDIFF.schema
