"""X/Y/Z plot axes for AnimateDiff's numeric options and the motion module."""

from __future__ import annotations

from . import binding, models

AXES = (
    ("video_length", int),
    ("batch_size", int),
    ("stride", int),
    ("overlap", int),
    ("fps", float),
    ("latent_power", float),
    ("latent_scale", float),
    ("freeinit_iters", int),
    ("freeinit_ds", float),
    ("freeinit_dt", float),
    ("motion_lora_strength", float),
)


def set_field(p, field: str, value) -> None:
    """Change one AnimateDiff argument of ``p`` (UI positional form or API dict form)."""
    script = next((s for s in p.scripts.alwayson_scripts if s.title() == "AnimateDiff"), None)
    if script is None:
        return
    args = list(p.script_args)
    first = args[script.args_from] if script.args_from < len(args) else None
    if isinstance(first, dict):
        args[script.args_from] = {**first, field: value}
    else:
        index = [b.field for b in binding.widget_bindings()].index(field)
        args[script.args_from + index] = value
    p.script_args = tuple(args)


def _apply(field):
    def apply(p, x, xs):
        set_field(p, field, x)

    return apply


def register(xyz_module) -> None:
    """Add the axes to A1111's ``xyz_grid`` module (its ``axis_options`` list)."""
    options = xyz_module.axis_options
    if any(getattr(o, "label", "").startswith("[AnimateDiff]") for o in options):
        return  # scripts reload: already there
    for field, kind in AXES:
        bind = next(b for b in binding.BINDINGS if b.field == field)
        cls = (
            getattr(xyz_module, "AxisOptionImg2Img", xyz_module.AxisOption)
            if bind.img2img_only
            else xyz_module.AxisOption
        )
        options.append(cls(f"[AnimateDiff] {bind.label}", kind, _apply(field)))
    options.append(
        xyz_module.AxisOption(
            "[AnimateDiff] Motion module", str, _apply("model"), choices=lambda: list(models.list_models())
        )
    )


def find_xyz_module():
    from modules import scripts

    for data in scripts.scripts_data:
        if data.script_class.__module__ in ("xyz_grid.py", "scripts.xyz_grid") and hasattr(data, "module"):
            return data.module
    return None
