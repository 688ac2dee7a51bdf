"""Fake of sd-webui-controlnet's public API (``internal_controlnet/external_code.py``); see README."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any


@dataclass
class ControlNetUnit:
    enabled: bool = False
    module: str = "none"
    model: str = "None"
    weight: float = 1.0
    image: Any = None
    batch_images: Any = None
    animatediff_batch: bool = False

    @classmethod
    def from_dict(cls, values: dict) -> ControlNetUnit:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})

    @property
    def is_animate_diff_batch(self) -> bool:
        return self.animatediff_batch


def is_cn_script(script) -> bool:
    return script.title().lower() == "controlnet"


def find_cn_script(script_runner):
    for script in getattr(script_runner, "alwayson_scripts", ()):
        if is_cn_script(script):
            return script
    return None


def to_processing_unit(unit) -> ControlNetUnit:
    return ControlNetUnit.from_dict(unit) if isinstance(unit, dict) else unit


def get_all_units_in_processing(p) -> list[ControlNetUnit]:
    script = find_cn_script(p.scripts)
    if script is None:
        return []
    args = p.script_args[script.args_from : script.args_to]
    return [to_processing_unit(a) for a in args if isinstance(a, (dict, ControlNetUnit))]


def update_cn_script_in_processing(p, cn_units: list[ControlNetUnit], **_kwargs) -> None:
    script = find_cn_script(p.scripts)
    args = list(p.script_args_value)
    if script is None or len(args) < script.args_from:
        return
    diff = len(cn_units) - (script.args_to - script.args_from)
    args[script.args_from : script.args_to] = cn_units
    for other in p.scripts.alwayson_scripts:
        if other is script:
            other.args_to = other.args_from + len(cn_units)
        elif other.args_from > script.args_from:
            other.args_from += diff
            other.args_to += diff
    p.script_args = tuple(args)
