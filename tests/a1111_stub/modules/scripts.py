"""Stands in for ``modules/scripts.py``: the ``Script`` base class, loading extension scripts, and
the ``ScriptRunner`` through which ``processing`` reaches them.

Kept from the WebUI: every hook's name and signature; ``AlwaysVisible``; hooks go to the
AlwaysVisible scripts whose class overrides them, each with its own slice
``p.script_args[args_from:args_to]``; ``run`` goes only to the script picked in the dropdown
(``script_args[0]``, 1-based, 0 for none); a hook that raises is reported and skipped.
Left out: building the gradio UI (``tests.rig.a1111.make_runner`` lays out the argument slices
instead) and the per-component callbacks, script ordering and dependencies, postprocessing
scripts, the API description.
"""

import dataclasses
import importlib.util
import inspect
import re
import sys
from collections import namedtuple
from typing import Any

from modules import errors, extensions, paths, script_callbacks

AlwaysVisible = object()


@dataclasses.dataclass
class PostSampleArgs:
    samples: Any


@dataclasses.dataclass
class PostprocessImageArgs:
    image: Any


@dataclasses.dataclass
class PostProcessMaskOverlayArgs:
    index: int
    mask_for_overlay: Any
    overlay_image: Any


@dataclasses.dataclass
class PostprocessBatchListArgs:
    images: list


class Script:
    name = None
    section = None
    filename = None
    args_from = None
    args_to = None
    alwayson = False
    is_txt2img = False
    is_img2img = False
    tabname = None
    group = None
    create_group = True
    infotext_fields = None
    paste_field_names = None
    api_info = None
    on_before_component_elem_id = None
    on_after_component_elem_id = None
    setup_for_ui_only = False
    controls = None

    def title(self):
        """Name in the Script dropdown; lower-cased, the script's ``name``. Must be overridden."""
        raise NotImplementedError()

    def ui(self, is_img2img):
        """Make the gradio inputs; their values arrive as ``*args`` in every hook below."""

    def show(self, is_img2img):
        """``False`` hides the script, ``True`` lists it in the dropdown, ``AlwaysVisible`` always runs it."""
        return True

    def run(self, p, *args):
        """Dropdown scripts: replaces ``process_images``; returns a ``Processed``."""

    def setup(self, p, *args):
        """As soon as ``p`` has both its scripts and its script arguments."""

    def before_process(self, p, *args):
        """First hook of ``process_images``, before the settings overrides are applied."""

    def process(self, p, *args):
        """Prompts and seeds are known (``p.all_prompts``, ``p.all_seeds``); nothing sampled yet."""

    def before_process_batch(self, p, *args, **kwargs):
        """Keyword arguments: batch_number, prompts, seeds, subseeds."""

    def after_extra_networks_activate(self, p, *args, **kwargs):
        """Keyword arguments: batch_number, prompts, seeds, subseeds, extra_network_data."""

    def process_before_every_sampling(self, p, *args, **kwargs):
        """Keyword arguments: x, noise, c, uc; just before the sampler starts."""

    def process_batch(self, p, *args, **kwargs):
        """Keyword arguments: batch_number, prompts, seeds, subseeds; conds not made yet."""

    def postprocess_batch(self, p, *args, **kwargs):
        """Keyword arguments: batch_number, images (decoded batch, (B, 3, H, W), values 0..1)."""

    def postprocess_batch_list(self, p, pp: PostprocessBatchListArgs, *args, **kwargs):
        """``pp.images`` is the batch as a list, which may be changed or replaced; kwargs: batch_number."""

    def post_sample(self, p, ps: PostSampleArgs, *args):
        """``ps.samples``: the latents the sampler returned, before decoding; replaceable."""

    def postprocess_image(self, p, pp: PostprocessImageArgs, *args):
        """``pp.image``: one finished PIL image; replaceable."""

    def postprocess_maskoverlay(self, p, ppmo: PostProcessMaskOverlayArgs, *args):
        """Inpainting overlay of image ``ppmo.index``."""

    def postprocess_image_after_composite(self, p, pp: PostprocessImageArgs, *args):
        """``pp.image`` after the inpainting overlay; replaceable."""

    def postprocess(self, p, processed, *args):
        """Last hook, with the ``Processed`` result; skipped when generation raised."""

    def before_hr(self, p, *args):
        """Before the hires-fix pass (not modelled by the stub)."""

    def before_component(self, component, **kwargs):
        """Any script: a gradio component is about to be made."""

    def after_component(self, component, **kwargs):
        """Any script: a gradio component was made."""

    def on_before_component(self, callback, *, elem_id):
        """Ask for ``callback`` before the component ``elem_id`` is made (recorded only: no UI here)."""
        self.on_before_component_elem_id = (self.on_before_component_elem_id or []) + [(elem_id, callback)]

    def on_after_component(self, callback, *, elem_id):
        """Ask for ``callback`` after the component ``elem_id`` is made (recorded only: no UI here)."""
        self.on_after_component_elem_id = (self.on_after_component_elem_id or []) + [(elem_id, callback)]

    def describe(self):
        return ""

    def elem_id(self, item_id):
        """HTML id ``script_[<tab>_]<title>_<item_id>``; the tab part only when the script shows on both tabs."""
        underscored = "".join("_" if ch.isspace() else ch for ch in self.title().lower())
        slug = re.sub(r"[^a-z_0-9]", "", underscored)
        tab = "img2img_" if self.is_img2img else "txt2img_"
        on_both = self.show(True) == self.show(False)
        return f"script_{tab if on_both else ''}{slug}_{item_id}"


current_basedir = paths.script_path


def basedir():
    """While an extension's script file is being executed: that extension's folder (else the WebUI root)."""
    return current_basedir


ScriptFile = namedtuple("ScriptFile", ["basedir", "filename", "path"])
ScriptClassData = namedtuple("ScriptClassData", ["script_class", "path", "basedir", "module"])
scripts_data = []


def load_scripts():
    """Execute ``scripts/*.py`` of every active extension, each as a top-level module named after
    its file, with the extension's folder in front of ``sys.path`` and as ``basedir()`` meanwhile;
    collect the ``Script`` subclasses; give txt2img and img2img fresh runners."""
    global current_basedir, scripts_txt2img, scripts_img2img
    scripts_data.clear()
    script_callbacks.clear_callbacks()
    saved_path = sys.path
    for file in [f for ext in extensions.active() for f in ext.list_files("scripts", ".py")]:
        sys.path, current_basedir = [file.basedir, *saved_path], file.basedir
        try:
            spec = importlib.util.spec_from_file_location(file.filename, file.path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
        except Exception:
            errors.report(f"could not load {file.path}", exc_info=True)
            continue
        finally:
            sys.path, current_basedir = saved_path, paths.script_path
        found = [c for c in vars(module).values() if inspect.isclass(c) and issubclass(c, Script)]
        scripts_data.extend(ScriptClassData(c, file.path, file.basedir, module) for c in found)
    scripts_txt2img = ScriptRunner()
    scripts_img2img = ScriptRunner()


class ScriptRunner:
    def __init__(self):
        self.scripts = []  # every script shown on this tab
        self.alwayson_scripts = []
        self.selectable_scripts = []  # dropdown entry i is selectable_scripts[i - 1]
        self.titles = []
        self.title_map = {}
        self.inputs = [None]

    def initialize_scripts(self, is_img2img):
        """Instantiate the loaded script classes for one tab and sort them by what ``show`` says."""
        self.scripts, self.alwayson_scripts, self.selectable_scripts = [], [], []
        for data in scripts_data:
            script = data.script_class()
            script.filename = data.path
            script.is_img2img, script.is_txt2img = is_img2img, not is_img2img
            script.tabname = "img2img" if is_img2img else "txt2img"
            shown = script.show(is_img2img)
            if shown is AlwaysVisible:
                script.alwayson = True
                self.alwayson_scripts.append(script)
            elif not shown:
                continue
            else:
                self.selectable_scripts.append(script)
            self.scripts.append(script)

    def script(self, title):
        return self.title_map.get(title.lower())

    def run(self, p, *args):
        """Run the script picked in the dropdown (``args[0]``); None when none is picked."""
        if not args or not args[0]:
            return None
        chosen = self.selectable_scripts[args[0] - 1]
        return chosen.run(p, *args[chosen.args_from : chosen.args_to])

    def _each(self, hook, p, *leading, scripts=None, **kwargs):
        """Call ``hook`` on each script overriding it as ``hook(p, *leading, *its args, **kwargs)``."""
        for script in self.alwayson_scripts if scripts is None else scripts:
            if getattr(type(script), hook) is getattr(Script, hook):
                continue
            try:
                getattr(script, hook)(p, *leading, *p.script_args[script.args_from : script.args_to], **kwargs)
            except Exception:
                errors.report(f"{hook} of {script.filename} failed", exc_info=True)

    def setup_scrips(self, p, *, is_ui=True):  # sic, the WebUI's spelling
        self._each("setup", p, scripts=[s for s in self.alwayson_scripts if is_ui or not s.setup_for_ui_only])

    def before_process(self, p):
        self._each("before_process", p)

    def process(self, p):
        self._each("process", p)

    def before_process_batch(self, p, **kwargs):
        self._each("before_process_batch", p, **kwargs)

    def after_extra_networks_activate(self, p, **kwargs):
        self._each("after_extra_networks_activate", p, **kwargs)

    def process_batch(self, p, **kwargs):
        self._each("process_batch", p, **kwargs)

    def process_before_every_sampling(self, p, **kwargs):
        self._each("process_before_every_sampling", p, **kwargs)

    def post_sample(self, p, ps: PostSampleArgs):
        self._each("post_sample", p, ps)

    def postprocess_batch(self, p, images, **kwargs):
        self._each("postprocess_batch", p, images=images, **kwargs)

    def postprocess_batch_list(self, p, pp: PostprocessBatchListArgs, **kwargs):
        self._each("postprocess_batch_list", p, pp, **kwargs)

    def postprocess_image(self, p, pp: PostprocessImageArgs):
        self._each("postprocess_image", p, pp)

    def postprocess_maskoverlay(self, p, ppmo: PostProcessMaskOverlayArgs):
        self._each("postprocess_maskoverlay", p, ppmo)

    def postprocess_image_after_composite(self, p, pp: PostprocessImageArgs):
        self._each("postprocess_image_after_composite", p, pp)

    def postprocess(self, p, processed):
        self._each("postprocess", p, processed)

    def before_hr(self, p):
        self._each("before_hr", p)


scripts_txt2img: ScriptRunner = None
scripts_img2img: ScriptRunner = None
scripts_current: ScriptRunner = None
