"""The accordions (AnimateDiff, Steps animation): widgets built from a binding table (labels,
bounds, defaults from ``lib_vidsd.config``). ``ui()`` may be called several times (the API does):
no side effects."""

from __future__ import annotations

from . import binding, models

#: elem_id prefix of each accordion's widgets
PREFIX = {binding.ANIMATEDIFF.key: "vidsd_ad", binding.STEPS.key: "vidsd_sa", binding.MULTIFRAME.key: "vidsd_mf"}


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
    ("row", ("frame_prompts",)),
    ("accordion:Input frames", ("input_dir", "start", "end", "every", "max_frames", "fit", "fps")),
    ("accordion:Masks and transparency", ("mask_dir", "mask_match", "keep_alpha")),
    ("accordion:Output", ("output_name", "resume", "format", "loop", "interp", "interp_x", "interp_model")),
)
CONTROLNET_NOTE = (
    "Filmstrip mode works alone; with sd-webui-controlnet installed, units without an image of their own follow "
    "the whole strip, which keeps frames closer to their input."
)


def build_plain(script, is_img2img: bool, bnd: binding.Binding = binding.MULTIFRAME) -> list:
    """The widgets of a selectable script (no accordion, no enable box): an upload first, then the
    binding's fields; returns the components in positional-argument order."""
    import json

    import gradio as gr
    from modules.ui_components import FormRow

    tab = "img2img" if is_img2img else "txt2img"
    prefix = PREFIX[bnd.key]
    binds = {b.field: b for b in bnd.widget_bindings()}
    by_field = {}
    upload = gr.File(label="Input video (or use an input folder below)", elem_id=f"{prefix}_{tab}_upload")
    gr.HTML(f"<p class='vidsd-note'>{_attr(CONTROLNET_NOTE)}</p>")
    for kind, fields in MULTIFRAME_LAYOUT:
        container = gr.Accordion(kind.split(":", 1)[1], open=False) if kind.startswith("accordion:") else FormRow()
        with container:
            for f in fields:
                by_field[f] = _widget(gr, binds[f], widget_spec(binds[f], is_img2img, bnd), visible=True)
    hover = {**titles(tab, bnd), f"{prefix}_{tab}_upload": "A video to stylise (or name an input folder below)."}
    gr.HTML(f"<div id='vidsd_titles_{prefix}_{tab}' hidden data-titles='{_attr(json.dumps(hover))}'></div>")
    components = [by_field[b.field] for b in bnd.widget_bindings()]
    script.infotext_fields = [
        (by_field[b.field], bnd.paste_label(b.field)) for b in bnd.widget_bindings() if b.infotext
    ]
    return [upload, *components]


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
