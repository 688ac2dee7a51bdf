"""The accordions (AnimateDiff, Steps animation): widgets built from a binding table (labels,
bounds, defaults from ``lib_vidsd.config``). ``ui()`` may be called several times (the API does):
no side effects."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from . import binding, models

#: elem_id prefix of each accordion's widgets
PREFIX = {
    binding.ANIMATEDIFF.key: "vidsd_ad",
    binding.STEPS.key: "vidsd_sa",
    binding.MULTIFRAME.key: "vidsd_mf",
    binding.KEYFRAMES.key: "vidsd_kf",
    binding.STYLIZE.key: "vidsd_vs",
}


def widget_spec(b: binding.Bind, is_img2img: bool, bnd: binding.Binding = binding.ANIMATEDIFF) -> dict:
    """The keyword arguments of one widget (pure data: tests compare it with the config)."""
    info = bnd.fields[b.field]
    tab = "img2img" if is_img2img else "txt2img"
    spec = {"label": b.label, "value": info.default, "elem_id": f"{PREFIX[bnd.key]}_{tab}_{b.field}"}
    if b.widget in ("slider", "number"):
        if info.minimum is not None:
            spec["minimum"] = info.minimum
        top = b.ui_max if b.ui_max is not None else info.maximum
        if top is not None:
            spec["maximum"] = top
        if b.step is not None:
            spec["step"] = b.step
        elif isinstance(info.default, int) and not isinstance(info.default, bool):
            spec["step"] = 1
    if info.choices and b.widget in ("radio", "dropdown", "checkboxgroup"):
        spec["choices"] = list(info.choices)
    if b.field == "interp_model":
        spec["choices"] = ["", *models.list_vfi_models()]
    if bnd is not binding.ANIMATEDIFF:
        return spec
    if b.field == "format":
        spec["choices"] = [c for c in info.choices if c != "Frame"]
        spec["value"] = _default_formats(info.default)
    if b.field == "interp_model":
        spec["choices"] = ["", *models.list_vfi_models()]
    if b.field == "motion_lora":
        spec["choices"] = ["", *models.list_loras()]
    if b.field == "model":
        spec["choices"] = list(models.list_models())
        if info.default not in spec["choices"] and spec["choices"]:
            spec["value"] = spec["choices"][0]
    return spec


# how the widgets are grouped on screen; the argument order stays the binding table's
LAYOUT: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("row", ("model",)),
    ("row", ("format",)),
    ("row", ("video_length", "fps", "loop_number")),
    ("row", ("batch_size",)),
    ("row", ("stride", "overlap", "closed_loop")),
    ("row", ("fuse", "interp", "interp_x", "interp_model")),
    ("row", ("motion_lora", "motion_lora_strength")),
    ("row", ("deflicker", "deflicker_window")),
    ("accordion:FreeInit", ("freeinit_enable", "freeinit_filter", "freeinit_ds", "freeinit_dt", "freeinit_iters")),
    (
        "accordion:First and last frame (img2img)",
        ("latent_power", "latent_scale", "last_frame", "latent_power_last", "latent_scale_last"),
    ),
)


STEPS_LAYOUT: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("row", ("duration", "hold")),
    ("row", ("interpolation", "fps", "interp_model")),
    ("row", ("codec", "decode", "resolution")),
    ("row", ("skip_steps", "capture")),
    ("row", ("run_incomplete", "delete_frames", "create_movie")),
    ("row", ("hires_pass",)),
    ("row", ("frames_folder", "movie_folder")),
    ("row", ("title", "artist")),
    ("row", ("animatediff_view",)),
)


def titles(tab: str, bnd: binding.Binding = binding.ANIMATEDIFF) -> dict[str, str]:
    """Hover text per elem_id: each field's one-sentence doc from the config."""
    prefix = PREFIX[bnd.key]
    out = {f"{prefix}_{tab}_{b.field}": bnd.fields[b.field].doc for b in bnd.widget_bindings()}
    if bnd.enable is None:
        return out
    # the accordion's header checkbox: A1111 hides the real one and shows "-visible-checkbox"
    for suffix in ("-checkbox", "-visible-checkbox"):
        out[f"{prefix}_{tab}{suffix}"] = bnd.fields[bnd.enable].doc
    return out


def build(script, is_img2img: bool, bnd: binding.Binding = binding.ANIMATEDIFF) -> list:
    """Create the accordion; returns the components in positional-argument order."""
    import json

    import gradio as gr
    from modules.ui_components import FormRow, InputAccordion, ToolButton

    tab = "img2img" if is_img2img else "txt2img"
    prefix = PREFIX[bnd.key]
    layout = LAYOUT if bnd is binding.ANIMATEDIFF else STEPS_LAYOUT
    binds = {b.field: b for b in bnd.widget_bindings()}
    by_field = {}
    with InputAccordion(False, label=bnd.key, elem_id=f"{prefix}_{tab}") as enable:
        by_field[bnd.enable] = enable
        for kind, fields in layout:
            img2img_group = all(binds[f].img2img_only for f in fields)
            txt2img_group = all(binds[f].txt2img_only for f in fields)
            if (img2img_group and not is_img2img) or (txt2img_group and is_img2img):
                for f in fields:  # kept (hidden) so the argument slice has the same length in both tabs
                    by_field[f] = _widget(gr, binds[f], widget_spec(binds[f], is_img2img, bnd), visible=False)
                continue
            if kind.startswith("accordion:"):
                container = gr.Accordion(kind.split(":", 1)[1], open=False)
            else:
                container = FormRow()
            with container:
                for f in fields:
                    by_field[f] = _widget(gr, binds[f], widget_spec(binds[f], is_img2img, bnd), visible=True)
                if bnd is binding.ANIMATEDIFF and fields == ("model",):
                    refresh = ToolButton(value="\U0001f504", elem_id=f"vidsd_ad_refresh_{tab}")
                    dropdown = by_field["model"]
                    refresh.click(
                        fn=lambda: gr.update(choices=list(models.list_models())), inputs=[], outputs=[dropdown]
                    )
        data = _attr(json.dumps(titles(tab, bnd)))
        gr.HTML(f"<div id='vidsd_titles_{prefix}_{tab}' hidden data-titles='{data}'></div>")
    components = [by_field[b.field] for b in bnd.widget_bindings()]
    script.infotext_fields = [
        (by_field[b.field], bnd.paste_label(b.field))
        for b in bnd.widget_bindings()
        if b.infotext or b.field == bnd.enable
    ]
    script.paste_field_names = [bnd.paste_label(b.field) for b in bnd.widget_bindings()]
    return components


MULTIFRAME_LAYOUT: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("row", ("mode", "first_denoise")),
    ("row", ("third_frame", "loopback_source", "seed_mode")),
    ("row", ("color_correction", "color_strength")),
    ("row", ("deflicker", "deflicker_window")),
    ("row", ("frame_prompts",)),
    ("accordion:Input frames", ("input_dir", "start", "end", "every", "max_frames", "fit", "fps")),
    ("accordion:Masks and transparency", ("mask_dir", "mask_match", "keep_alpha")),
    ("accordion:Output", ("output_name", "resume", "format", "loop", "interp", "interp_x", "interp_model")),
)
CONTROLNET_NOTE = (
    "Filmstrip mode works alone; with sd-webui-controlnet, units without an image of their own follow the strip "
    "of the source frames (the source frame when a frame is rendered alone), which keeps frames closer to their input."
)
CONTROLNET_RECOMMENDED = (
    "ControlNet is recommended for filmstrip mode: install sd-webui-controlnet, and units without an image of "
    "their own follow the strip of the source frames, which keeps frames closer to their input. Without it every "
    "mode still works."
)


def multiframe_note() -> str:
    """Multi-frame rendering's note: what ControlNet does, or that it is recommended when not installed."""
    from .controlnet import controlnet_installed

    return CONTROLNET_NOTE if controlnet_installed() else CONTROLNET_RECOMMENDED


@dataclass(frozen=True)
class Upload:
    """A file upload of a selectable script: its value comes before the binding's fields, in
    order; ``group`` is the layout entry it opens (``None``: above everything)."""

    name: str
    label: str
    hover: str
    group: str | None = None
    multiple: bool = False  # several files (a list of paths)


@dataclass(frozen=True)
class PlainSpec:
    """How a selectable script's widgets are laid out. ``layout`` entries are ``(kind, fields)``
    with kind ``row`` or ``accordion:<title>``; inside an accordion a tuple of fields is one row.
    ``extras(gr, group, widgets, uploads, tab)`` adds more inside a group (buttons).
    ``typed_paste``: the binding's ``infotext_pasted`` leaves typed values; the widgets take them
    as ``gr.update`` (so an empty number can be pasted too)."""

    layout: tuple
    uploads: tuple[Upload, ...]
    note: str | Callable[[], str] = ""  # a callable: asked when the UI is built
    extras: Callable | None = None
    typed_paste: bool = False


KEYFRAMES_LAYOUT: tuple = (
    ("row", ("prompts",)),
    ("row", ("mode", "max_frames", "fps")),
    ("accordion:Interpolation and seeds", (("interpolation", "interpolation_args"), ("seed_schedule", "fixed_latent"))),
    (
        "accordion:Strength, CFG and 2D motion (Deforum schedules: '0: (1.0), 30: (1.2)')",
        (
            ("strength", "cfg_scale"),
            ("zoom", "angle"),
            ("translation_x", "translation_y"),
            ("pivot_x", "pivot_y"),
            "border",
        ),
    ),  # fmt: skip
    (
        "accordion:Coherence and colour",
        (
            ("coherence_scale", "coherence_every"),
            ("coherence_alpha", "coherence_noise"),
            ("color_match", "color_space"),
        ),
    ),
    ("accordion:Audio", (("audio_component", "audio_reduce"), ("audio_keys", "audio_weights", "mux_audio"))),
    ("accordion:Input video (mode video)", ("video_every",)),
    ("accordion:Output", (("output_name", "resume"), "format", ("loop", "interp", "interp_x", "interp_model"))),
)


def _keyframe_extras(gr, group: str, widgets: dict, uploads: dict, tab: str) -> None:
    """The Audio group's "Analyse audio" button: the onsets as key frames, before rendering."""
    if group != "accordion:Audio":
        return

    def analyse(upload, fps, component):
        from .keyframes_job import analyse_audio

        return analyse_audio(upload, fps, component)

    button = gr.Button("Analyse audio", elem_id=f"vidsd_kf_{tab}_analyse")
    out = gr.Textbox(
        label="Key frames (frame: timestamp)", lines=6, interactive=False, elem_id=f"vidsd_kf_{tab}_onsets"
    )
    button.click(fn=analyse, inputs=[uploads["audio"], widgets["fps"], widgets["audio_component"]], outputs=[out])


STYLIZE_LAYOUT: tuple = (
    ("row", ("combine_pattern", "chunk_size")),
    ("row", ("fixed_noise", "control_frames")),
    ("accordion:Reference images (reference_k in the combine pattern)", ()),
    ("accordion:Input frames", ("input_dir", ("start", "every", "max_frames"), ("fit", "fps"))),
    (
        "accordion:Deflicker (patch-match smoother)",
        (
            ("smoother", "smoother_interval", "smoother_ignore_last", "smoother_window"),
            ("post_deflicker", "post_window"),
            ("patch_size", "guide_weight"),
            ("contrast", "sharpness"),
        ),
    ),
    ("accordion:Output", (("output_name", "keep_audio"), "format", ("loop", "interp", "interp_x", "interp_model"))),
)
STYLIZE_NOTE = (
    "Prompt, negative prompt, size, steps, CFG scale, seed and denoising strength are img2img's own (1.0 renders "
    "from noise, for use with ControlNet). With sd-webui-controlnet, set up units in its panel: those without an "
    "image get each frame's source image."
)

PLAIN: dict[str, PlainSpec] = {
    binding.MULTIFRAME.key: PlainSpec(
        MULTIFRAME_LAYOUT,
        (
            Upload(
                "upload",
                "Input video (or use an input folder below)",
                "A video to stylise (or name an input folder below).",
            ),
        ),
        note=multiframe_note,
    ),
    binding.KEYFRAMES.key: PlainSpec(
        KEYFRAMES_LAYOUT,
        (
            Upload(
                "audio",
                "Audio file",
                "Audio for onset keys, loudness weights and the video's sound.",
                "accordion:Audio",
            ),
            Upload(
                "video",
                "Input video (mode video)",
                "The video whose frames start each frame in mode video.",
                "accordion:Input video (mode video)",
            ),
        ),  # fmt: skip
        extras=_keyframe_extras,
        typed_paste=True,
    ),
    binding.STYLIZE.key: PlainSpec(
        STYLIZE_LAYOUT,
        (
            Upload(
                "upload",
                "Input video (or use an input folder below)",
                "The video to stylise (or name an input folder).",
            ),
            Upload(
                "references",
                "Reference images",
                "Images every frame also attends to where the combine pattern says reference_0, reference_1, …",
                "accordion:Reference images (reference_k in the combine pattern)",
                multiple=True,
            ),
        ),
        note=STYLIZE_NOTE,
        typed_paste=True,
    ),
}
EXTRA_TITLES = {
    "vidsd_kf_{tab}_analyse": "Show the audio's onsets as key frames (frame: seconds) at the FPS above (10 when 0).",
    "vidsd_kf_{tab}_onsets": "The audio's key frames: with 'Prompt keys on the audio's onsets' the prompt keys move there.",
}


def build_plain(script, is_img2img: bool, bnd: binding.Binding = binding.MULTIFRAME) -> list:
    """The widgets of a selectable script (no accordion, no enable box): the uploads first, then the
    binding's fields; returns the components in positional-argument order."""
    import json

    import gradio as gr
    from modules.ui_components import FormRow

    spec = PLAIN[bnd.key]
    tab = "img2img" if is_img2img else "txt2img"
    prefix = PREFIX[bnd.key]
    binds = {b.field: b for b in bnd.widget_bindings()}
    by_field: dict = {}
    uploads: dict = {}

    def add_uploads(group):
        for up in spec.uploads:
            if up.group == group:
                count = "multiple" if up.multiple else "single"
                uploads[up.name] = gr.File(label=up.label, elem_id=f"{prefix}_{tab}_{up.name}", file_count=count)

    def add(field):
        by_field[field] = _widget(gr, binds[field], widget_spec(binds[field], is_img2img, bnd), visible=True)

    add_uploads(None)
    note = spec.note() if callable(spec.note) else spec.note
    if note:
        gr.HTML(f"<p class='vidsd-note'>{_attr(note)}</p>")
    for kind, fields in spec.layout:
        container = gr.Accordion(kind.split(":", 1)[1], open=False) if kind.startswith("accordion:") else FormRow()
        with container:
            add_uploads(kind)
            for entry in fields:
                if isinstance(entry, tuple):
                    with FormRow():
                        for f in entry:
                            add(f)
                else:
                    add(entry)
            if spec.extras is not None:
                spec.extras(gr, kind, by_field, uploads, tab)
    hover = {**titles(tab, bnd), **{f"{prefix}_{tab}_{up.name}": up.hover for up in spec.uploads}}
    hover.update({k.format(tab=tab): v for k, v in EXTRA_TITLES.items() if k.startswith(prefix)})
    gr.HTML(f"<div id='vidsd_titles_{prefix}_{tab}' hidden data-titles='{_attr(json.dumps(hover))}'></div>")
    components = [by_field[b.field] for b in bnd.widget_bindings()]
    pasted = [b for b in bnd.widget_bindings() if b.infotext or spec.typed_paste]
    if spec.typed_paste:
        script.infotext_fields = [
            (by_field[b.field], _typed_paste(gr, bnd.paste_label(b.field), b.widget == "number")) for b in pasted
        ]
    else:
        script.infotext_fields = [(by_field[b.field], bnd.paste_label(b.field)) for b in pasted]
    return [*(uploads[up.name] for up in spec.uploads), *components]


def _typed_paste(gr, label: str, number: bool):
    def value(params: dict):
        if label not in params:
            return gr.update()
        typed = params[label]
        return gr.update(value=0 if typed is None and number else typed)  # an empty number shows 0

    return value


def _attr(text: str) -> str:
    return text.replace("&", "&amp;").replace("'", "&#39;").replace("<", "&lt;")


def _widget(gr, b: binding.Bind, spec: dict, visible: bool):
    common = {"label": spec["label"], "value": spec["value"], "elem_id": spec["elem_id"], "visible": visible}
    if b.widget == "checkbox":
        w = gr.Checkbox(**common)
    elif b.widget == "dropdown":
        w = gr.Dropdown(choices=spec.get("choices", []), **common)
    elif b.widget == "checkboxgroup":
        w = gr.CheckboxGroup(choices=spec["choices"], **common)
    elif b.widget == "radio":
        w = gr.Radio(choices=spec["choices"], **common)
    elif b.widget == "slider":
        w = gr.Slider(
            minimum=spec.get("minimum", 0), maximum=spec.get("maximum", 100), step=spec.get("step", 1), **common
        )
    elif b.widget == "number":
        w = gr.Number(precision=0 if spec.get("step") == 1 else None, **common)
    elif b.widget == "textbox":
        w = gr.Textbox(lines=1, **common)
    elif b.widget == "textarea":
        w = gr.Textbox(lines=3, **common)
    elif b.widget == "image":
        w = gr.Image(type="pil", source="upload", **{k: v for k, v in common.items() if k != "value"})
    else:
        raise ValueError(b.widget)
    return w


def _default_formats(fallback: list) -> list:
    """The formats chosen in Settings (the API uses the same when a request names none)."""
    try:
        from modules import shared

        return list(shared.opts.data.get("vidsd_animatediff_default_formats") or fallback)
    except ImportError:
        return list(fallback)
