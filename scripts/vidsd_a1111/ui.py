"""The AnimateDiff accordion: widgets built from the binding table (labels, bounds, defaults from
``lib_vidsd.config``). ``ui()`` may be called several times (the API does): no side effects."""

from __future__ import annotations

from . import binding, models


def widget_spec(b: binding.Bind, is_img2img: bool) -> dict:
    """The keyword arguments of one widget (pure data: tests compare it with the config)."""
    info = binding.FIELDS[b.field]
    spec = {"label": b.label, "value": info.default, "elem_id": f"vidsd_ad_{b.field}", "info": None}
    spec["tooltip"] = info.doc
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
    if b.field == "model":
        spec["choices"] = list(models.list_models())
        if info.default not in spec["choices"] and spec["choices"]:
            spec["value"] = spec["choices"][0]
    return spec


def build(script, is_img2img: bool) -> list:
    """Create the accordion; returns the components in positional-argument order."""
    import gradio as gr
    from modules.ui_components import InputAccordion, ToolButton

    components = []
    binds = binding.widget_bindings()
    with InputAccordion(
        False, label="AnimateDiff", elem_id=f"vidsd_ad_{'img2img' if is_img2img else 'txt2img'}"
    ) as enable:
        enable.tooltip = binding.FIELDS["enable"].doc
        by_field = {"enable": enable}
        for b in binds[1:]:
            spec = widget_spec(b, is_img2img)
            visible = is_img2img or not b.img2img_only
            by_field[b.field] = _widget(gr, b, spec, visible)
            if b.field == "model":
                refresh = ToolButton(value="\U0001f504", elem_id=f"vidsd_ad_refresh_{is_img2img}")
                dropdown = by_field["model"]
                refresh.click(fn=lambda: gr.update(choices=list(models.list_models())), inputs=[], outputs=[dropdown])
        components = [by_field[b.field] for b in binds]
    script.infotext_fields = [
        (by_field[b.field], binding.paste_label(b.field)) for b in binds if b.infotext or b.field == "enable"
    ]
    script.paste_field_names = [binding.paste_label(b.field) for b in binds]
    return components


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
