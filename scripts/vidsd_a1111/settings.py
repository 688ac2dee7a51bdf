"""The ``AnimateDiff (vidsd)`` settings section."""

from __future__ import annotations

from lib_vidsd.config import SaveFormat
from lib_vidsd.video.presets import X26X_PRESETS

SECTION = ("vidsd_animatediff", "AnimateDiff (vidsd)")
VIDEO_CHOICES = [f.value for f in SaveFormat if f is not SaveFormat.FRAME]


def register() -> None:
    import gradio as gr
    from modules import shared

    def add(key, info):
        shared.opts.add_option(key, info)

    opt = shared.OptionInfo
    # a folder path: like A1111's own output folders, not changeable through the API under
    # --hide-ui-dir-config
    restricted = getattr(shared, "restricted_opts", None)
    if isinstance(restricted, set):
        restricted.update({"vidsd_animatediff_model_path", "vidsd_vfi_model_path", "vidsd_input_roots"})
    add("vidsd_animatediff_model_path", opt("", "Motion-module folder (empty: models/AnimateDiff)", section=SECTION))
    add(
        "vidsd_vfi_model_path",
        opt("", "Frame-interpolation weights folder, FILM/RIFE (empty: models/VFI)", section=SECTION),
    )
    add(
        "vidsd_input_roots",
        opt(
            "",
            "Multi-frame rendering: folders whose subfolders may be named as input or mask folders (one per line)",
            gr.Textbox,
            {"lines": 3},
            section=SECTION,
        ),
    )
    add(
        "vidsd_animatediff_default_formats",
        opt(["GIF", "PNG"], "Default save formats", gr.CheckboxGroup, {"choices": VIDEO_CHOICES}, section=SECTION),
    )
    add(
        "vidsd_animatediff_save_frames",
        opt(True, "Also save every frame to the normal outputs folder", section=SECTION),
    )
    add("vidsd_gif_palette", opt(True, "GIF: compute an optimal palette (palettegen)", section=SECTION))
    add("vidsd_gif_optimize", opt(False, "GIF: store only changed rectangles (smaller files)", section=SECTION))
    add(
        "vidsd_webp_quality",
        opt(80, "WEBP quality", gr.Slider, {"minimum": 0, "maximum": 100, "step": 1}, section=SECTION),
    )
    add("vidsd_webp_lossless", opt(False, "WEBP lossless", section=SECTION))
    add(
        "vidsd_mp4_crf",
        opt(23, "MP4 CRF (lower is better)", gr.Slider, {"minimum": 0, "maximum": 51, "step": 1}, section=SECTION),
    )
    add("vidsd_mp4_preset", opt("medium", "MP4 preset", gr.Dropdown, {"choices": list(X26X_PRESETS)}, section=SECTION))
