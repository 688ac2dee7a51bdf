"""sd-webui-controlnet, reached only through its public ``external_code`` API.

Finding the ControlNet script of a job and its ``external_code`` module (used by Video
stylisation and Multi-frame rendering), telling whether the extension is installed (for the UI's
notes), and :class:`UnitImages`: the enabled units without an image of their own are given a
control image before each ``process_images`` (``update_cn_script_in_processing`` with copies of the
units), and the job's script arguments are put back as they were afterwards.
"""

from __future__ import annotations

import copy
import logging
import sys
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger("vidsd.a1111.controlnet")


def controlnet_script(p):
    """The ``ControlNet`` AlwaysVisible script attached to ``p``, or ``None``."""
    runner = getattr(p, "scripts", None)
    for script in getattr(runner, "alwayson_scripts", ()):
        try:
            if script.title() == "ControlNet":
                return script
        except Exception:  # a broken extension's title(): not ControlNet
            continue
    return None


def external_code(script):
    """sd-webui-controlnet's ``external_code`` module, as its script module imported it."""
    module = sys.modules.get("internal_controlnet.external_code")
    if module is not None and hasattr(module, "get_all_units_in_processing"):
        return module
    for attr in vars(type(script)).values():  # the script file's globals (A1111 keeps it out of sys.modules)
        found = getattr(attr, "__globals__", {}).get("external_code")
        if found is not None and hasattr(found, "get_all_units_in_processing"):
            return found
    return None


def controlnet_installed() -> bool:
    """Whether a loaded extension is sd-webui-controlnet (its folder holds ``external_code``)."""
    from modules import scripts

    for data in getattr(scripts, "scripts_data", ()):
        base = Path(getattr(data, "basedir", "") or ".")
        if (base / "internal_controlnet" / "external_code.py").is_file() or (
            base / "scripts" / "external_code.py"
        ).is_file():
            return True
    return False


def has_own_image(unit) -> bool:
    """A unit with an image (or a batch folder) of its own: vidsd leaves it alone."""
    return getattr(unit, "image", None) is not None or bool(getattr(unit, "batch_images", None))


def _copy_unit(unit):
    """A shallow copy of a unit. ``ControlNetUnit`` is a pydantic (v1) model in current versions,
    whose ``copy.copy`` shares the field dict with the original; its own ``copy()`` does not."""
    own = getattr(unit, "copy", None)
    return own() if callable(own) else copy.copy(unit)


class UnitImages:
    """The enabled ControlNet units of a job that have no image of their own, given one image per
    generation (:meth:`set`, before each ``process_images``); :meth:`restore` puts the job's
    script arguments (and the scripts' argument slices) back as they were. Does nothing when
    ControlNet is not installed, its ``external_code`` is not found, or no unit needs an image."""

    def __init__(self, p, what: str = "vidsd"):
        self.p = p
        self.code = None
        self.units: list[Any] = []
        self.follow: list[int] = []  # indices into units of those given the images
        self.enabled = 0
        script = controlnet_script(p)
        if script is None:
            log.info("%s: sd-webui-controlnet is not installed; rendering without ControlNet", what)
            return
        code = external_code(script)
        if code is None:
            log.warning("%s: ControlNet found but not its external_code API; units left as they are", what)
            return
        units = list(code.get_all_units_in_processing(p))
        self.enabled = sum(bool(getattr(u, "enabled", False)) for u in units)
        follow = [i for i, u in enumerate(units) if getattr(u, "enabled", False) and not has_own_image(u)]
        if not follow:
            return
        self.code, self.units, self.follow = code, units, follow
        runner = p.scripts
        self._saved = (p.script_args, [(s, s.args_from, s.args_to) for s in runner.alwayson_scripts])
        log.info("%s: %d ControlNet unit(s) follow the source frames", what, len(follow))

    @property
    def active(self) -> bool:
        return self.code is not None

    def set(self, image: np.ndarray) -> None:
        """Give every followed unit ``image`` (``uint8 (H, W, 3)`` RGB) for the next generation."""
        if self.code is None:
            return
        units = list(self.units)
        for i in self.follow:
            unit = _copy_unit(units[i])  # the user's unit objects stay untouched
            unit.image = np.ascontiguousarray(image)
            units[i] = unit
        self.code.update_cn_script_in_processing(self.p, units)

    def restore(self) -> None:
        """The job's script arguments and the scripts' argument slices as they were before."""
        if self.code is None:
            return
        args, slices = self._saved
        self.p.script_args = args
        for script, start, end in slices:
            script.args_from, script.args_to = start, end
        self.code = None
