"""The AnimateDiff accordion: widgets built from the binding table (labels, bounds, defaults from
``lib_vidsd.config``). ``ui()`` may be called several times (the API does): no side effects."""

from __future__ import annotations

from . import binding, models


def widget_spec(b: binding.Bind, is_img2img: bool) -> dict:
    """The keyword arguments of one widget (pure data: tests compare it with the config)."""
    info = binding.FIELDS[b.field]
    tab = "img2img" if is_img2img else "txt2img"
    spec = {"label": b.label, "value": info.default, "elem_id": f"vidsd_ad_{tab}_{b.field}"}
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
    if b.field == "format":
        spec["choices"] = [c for c in info.choices if c != "Frame"]
        spec["value"] = _default_formats(info.default)
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
    ("row", ("fuse", "interp", "interp_x")),
    ("row", ("motion_lora", "motion_lora_strength")),
    ("accordion:FreeInit", ("freeinit_enable", "freeinit_filter", "freeinit_ds", "freeinit_dt", "freeinit_iters")),
    (
        "accordion:First and last frame (img2img)",
        ("latent_power", "latent_scale", "last_frame", "latent_power_last", "latent_scale_last"),
    ),
)


def titles(tab: str) -> dict[str, str]:
    """Hover text per elem_id: each field's one-sentence doc from the config."""
    return {f"vidsd_ad_{tab}_{b.field}": binding.FIELDS[b.field].doc for b in binding.widget_bindings()}


def build(script, is_img2img: bool) -> list:
    """Create the accordion; returns the components in positional-argument order."""
    import json

    import gradio as gr
    from modules.ui_components import FormRow, InputAccordion, ToolButton

    tab = "img2img" if is_img2img else "txt2img"
    binds = {b.field: b for b in binding.widget_bindings()}
    by_field = {}
    with InputAccordion(False, label="AnimateDiff", elem_id=f"vidsd_ad_{tab}") as enable:
        by_field["enable"] = enable
        for kind, fields in LAYOUT:
            img2img_group = all(binds[f].img2img_only for f in fields)
            if img2img_group and not is_img2img:
                for f in fields:  # kept (hidden) so the argument slice has the same length in both tabs
                    by_field[f] = _widget(gr, binds[f], widget_spec(binds[f], is_img2img), visible=False)
                continue
            if kind.startswith("accordion:"):
                container = gr.Accordion(kind.split(":", 1)[1], open=False)
            else:
                container = FormRow()
            with container:
                for f in fields:
                    by_field[f] = _widget(gr, binds[f], widget_spec(binds[f], is_img2img), visible=True)
                if fields == ("model",):
                    refresh = ToolButton(value="\U0001f504", elem_id=f"vidsd_ad_refresh_{tab}")
                    dropdown = by_field["model"]
                    refresh.click(
                        fn=lambda: gr.update(choices=list(models.list_models())), inputs=[], outputs=[dropdown]
                    )
        gr.HTML(f"<div id='vidsd_titles_{tab}' hidden data-titles='{_attr(json.dumps(titles(tab)))}'></div>")
    components = [by_field[b.field] for b in binding.widget_bindings()]
    script.infotext_fields = [
        (by_field[b.field], binding.paste_label(b.field))
        for b in binding.widget_bindings()
        if b.infotext or b.field == "enable"
    ]
    script.paste_field_names = [binding.paste_label(b.field) for b in binding.widget_bindings()]
    return components


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
