"""Stands in for ``modules/infotext_utils.py``: ``PasteField``, the tables where the UI registers
paste targets and "send to" buttons, quoting of infotext values, and a reduced
``parse_generation_parameters`` (no defaults filled in for missing keys, no hires or
prompt-editing conversions)."""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any


class PasteField(tuple):
    """A pair ``(component, target)``; ``target`` is an infotext key (``label``) or a function
    of the parsed parameters giving the component's value (``function``)."""

    def __new__(cls, component, target, *, api=None):
        field = super().__new__(cls, (component, target))
        field.component, field.api = component, api
        field.label = target if isinstance(target, str) else None
        field.function = target if callable(target) else None
        return field


@dataclasses.dataclass
class ParamBinding:
    paste_button: Any
    tabname: str
    source_text_component: Any = None
    source_image_component: Any = None
    source_tabname: str = None
    override_settings_component: Any = None
    paste_field_names: list = dataclasses.field(default_factory=list)


paste_fields: dict[str, dict] = {}  # tab name -> {"init_img", "fields", "override_settings_component"}
registered_param_bindings: list[ParamBinding] = []


def add_paste_fields(tabname, init_img, fields, override_settings_component=None):
    fields = [f if isinstance(f, PasteField) else PasteField(*f) for f in fields or []]
    paste_fields[tabname] = {
        "init_img": init_img,
        "fields": fields,
        "override_settings_component": override_settings_component,
    }


def register_paste_params_button(binding: ParamBinding):
    registered_param_bindings.append(binding)


def quote(text):
    """``text`` as it goes into an infotext line: JSON-quoted when it holds a comma, colon or newline."""
    as_str = str(text)
    return json.dumps(as_str, ensure_ascii=False) if any(c in as_str for c in ",:\n") else text


def unquote(text):
    if len(text) >= 2 and text[0] == text[-1] == '"':
        try:
            return json.loads(text)
        except ValueError:
            pass
    return text


_pair = re.compile(r'\s*([^:,"]+?):\s*("(?:[^"\\]|\\.)*"|[^,]*?)\s*(?:,|$)')
_size = re.compile(r"(\d+)x(\d+)")


def parse_generation_parameters(x: str, skip_fields: list[str] | None = None):
    """Infotext to a dict: ``Prompt``, ``Negative prompt`` and every ``Key: value`` of the last
    line (when it has three or more); ``WxH`` values are split into ``Key-1`` and ``Key-2``."""
    lines = x.strip().split("\n")
    pairs = [(k.strip(), v) for k, v in _pair.findall(lines[-1]) if k.strip()]
    if len(pairs) >= 3:
        lines.pop()
    else:
        pairs = []
    prompt, negative = [], []
    into = prompt
    for line in (line.strip() for line in lines):
        if line.startswith("Negative prompt:"):
            into, line = negative, line.removeprefix("Negative prompt:").strip()
        into.append(line)
    result = {"Prompt": "\n".join(prompt), "Negative prompt": "\n".join(negative)}
    for key, value in pairs:
        value = unquote(value)
        size = _size.fullmatch(value)
        if size:
            result[f"{key}-1"], result[f"{key}-2"] = size.groups()
        else:
            result[key] = value
    for key in skip_fields or []:
        result.pop(key, None)
    return result
