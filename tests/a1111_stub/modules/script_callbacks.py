"""Stands in for ``modules/script_callbacks.py``, for the callbacks vidsd uses.

An extension registers with ``on_<event>(callback, *, name=None)``; the WebUI fires the event with
``<event>_callback(...)`` and tests do the same (``model_loaded_callback(model)``,
``script_unloaded_callback()``, ``ui_settings_callback()``, ``app_started_callback(None, app)``).
A callback that raises is reported through ``errors.report`` and the others still run. Callbacks
run in the order they were registered, except ``script_unloaded``, which runs newest first; the
WebUI's user-configurable ordering is not modelled.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from typing import Any

from modules import errors, extensions


@dataclasses.dataclass
class ImageSaveParams:
    """``before_image_saved`` may replace ``image``, ``filename`` and the ``pnginfo`` entries."""

    image: Any
    p: Any
    filename: str
    pnginfo: dict


@dataclasses.dataclass
class CFGDenoiserParams:
    """Before the model call of one sampling step. ``x``, ``image_cond`` and ``sigma`` hold the
    cond rows followed by the uncond rows; any field may be replaced."""

    x: Any
    image_cond: Any
    sigma: Any
    sampling_step: int
    total_sampling_steps: int
    text_cond: Any
    text_uncond: Any
    denoiser: Any = None


@dataclasses.dataclass
class CFGDenoisedParams:
    """After the model call of one sampling step, before guidance combines the rows of ``x``."""

    x: Any
    sampling_step: int
    total_sampling_steps: int
    inner_model: Any


class AfterCFGCallbackParams:
    """After guidance combined the rows: ``x`` is the denoised latent of one sampling step (one row
    per image); a callback may replace it."""

    def __init__(self, x, sampling_step, total_sampling_steps):
        self.x = x
        self.sampling_step = sampling_step
        self.total_sampling_steps = total_sampling_steps


@dataclasses.dataclass
class ScriptCallback:
    script: str
    callback: Any
    name: str = "unnamed"


_CATEGORIES = (
    "app_started",
    "model_loaded",
    "ui_tabs",
    "ui_settings",
    "before_image_saved",
    "image_saved",
    "cfg_denoiser",
    "cfg_denoised",
    "cfg_after_cfg",
    "before_component",
    "after_component",
    "infotext_pasted",
    "script_unloaded",
)
callback_map = {f"callbacks_{category}": [] for category in _CATEGORIES}


def clear_callbacks():
    for registered in callback_map.values():
        registered.clear()


def _registering_file():
    frame = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename == __file__:
        frame = frame.f_back
    return frame.f_code.co_filename if frame is not None else "unknown file"


def add_callback(callbacks, fun, *, name=None, category="unknown", filename=None):
    """Append ``fun`` to ``callbacks`` under the name ``<extension or 'base'>/<file>/<category>``,
    plus ``/<name>`` when given, and ``-1``, ``-2``... when that name is already taken."""
    filename = filename or _registering_file()
    owner = extensions.find_extension(filename)
    parts = [owner.canonical_name if owner else "base", os.path.basename(filename), category]
    wanted = "/".join(parts + ([name] if name is not None else []))
    taken = {c.name for c in callbacks}
    unique, count = wanted, 0
    while unique in taken:
        count += 1
        unique = f"{wanted}-{count}"
    callbacks.append(ScriptCallback(filename, fun, unique))


def _fire(category, *args, newest_first=False, **kwargs):
    results = []
    registered = list(callback_map[f"callbacks_{category}"])
    for entry in reversed(registered) if newest_first else registered:
        try:
            results.append(entry.callback(*args, **kwargs))
        except Exception:
            errors.report(f"callback {entry.name} ({category}) failed", exc_info=True)
    return results


def app_started_callback(demo, app):
    _fire("app_started", demo, app)


def model_loaded_callback(sd_model):
    _fire("model_loaded", sd_model)


def ui_tabs_callback():
    """Every tab the callbacks return, as one list of ``(component, title, elem_id)``."""
    return [tab for tabs in _fire("ui_tabs") for tab in tabs or []]


def ui_settings_callback():
    _fire("ui_settings")


def before_image_saved_callback(params: ImageSaveParams):
    _fire("before_image_saved", params)


def image_saved_callback(params: ImageSaveParams):
    _fire("image_saved", params)


def cfg_denoiser_callback(params: CFGDenoiserParams):
    _fire("cfg_denoiser", params)


def cfg_denoised_callback(params: CFGDenoisedParams):
    _fire("cfg_denoised", params)


def cfg_after_cfg_callback(params: AfterCFGCallbackParams):
    _fire("cfg_after_cfg", params)


def before_component_callback(component, **kwargs):
    _fire("before_component", component, **kwargs)


def after_component_callback(component, **kwargs):
    _fire("after_component", component, **kwargs)


def infotext_pasted_callback(infotext: str, params: dict[str, Any]):
    _fire("infotext_pasted", infotext, params)


def script_unloaded_callback():
    _fire("script_unloaded", newest_first=True)


def _registrar(category, doc):
    def register(callback, *, name=None):
        add_callback(callback_map[f"callbacks_{category}"], callback, name=name, category=category)

    register.__name__ = register.__qualname__ = f"on_{category}"
    register.__doc__ = doc
    return register


on_app_started = _registrar("app_started", "callback(demo, app): the WebUI is up (demo is None without a UI).")
on_model_loaded = _registrar("model_loaded", "callback(sd_model): a checkpoint has been loaded.")
on_ui_tabs = _registrar("ui_tabs", "callback() -> [(blocks, title, elem_id)]: extra top-level tabs.")
on_ui_settings = _registrar("ui_settings", "callback(): add settings with shared.opts.add_option.")
on_before_image_saved = _registrar("before_image_saved", "callback(ImageSaveParams): an image is about to be written.")
on_image_saved = _registrar("image_saved", "callback(ImageSaveParams): an image has been written.")
on_cfg_denoiser = _registrar("cfg_denoiser", "callback(CFGDenoiserParams): before each model call in sampling.")
on_cfg_denoised = _registrar("cfg_denoised", "callback(CFGDenoisedParams): after each model call in sampling.")
on_cfg_after_cfg = _registrar(
    "cfg_after_cfg", "callback(AfterCFGCallbackParams): after guidance, before the sampler's step."
)
on_before_component = _registrar("before_component", "callback(component, **kwargs): a gradio component comes next.")
on_after_component = _registrar("after_component", "callback(component, **kwargs): a gradio component was made.")
on_infotext_pasted = _registrar("infotext_pasted", "callback(infotext, params): params parsed from pasted infotext.")
on_script_unloaded = _registrar("script_unloaded", "callback(): scripts are about to be reloaded; newest runs first.")
