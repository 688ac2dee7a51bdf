"""Stands in for ``modules/shared.py`` and the modules it gathers (``shared_state``,
``options``, ``shared_options``, ``shared_cmd_options``, ``shared_total_tqdm``).

What is here: ``cmd_opts`` (a namespace, nothing parsed), ``opts`` with the handful of settings the
stub reads (real keys and defaults, labels of our own), ``OptionInfo`` / ``options_section`` /
``options_templates`` for extensions that add settings, the job ``state``, a silent
``total_tqdm``, ``prompt_styles`` (a ``styles.StyleDatabase``, empty unless a test adds styles), and
``sd_model``, which stays ``None`` until a test puts a model there.
"""

import argparse
import os
import time

from modules import styles
from modules.paths_internal import data_path, default_output_dir, extensions_dir, models_path, script_path

__all__ = ["data_path", "extensions_dir", "models_path", "script_path"]

cmd_opts = argparse.Namespace(
    data_dir=data_path,
    models_dir=None,
    api=False,
    nowebui=False,
    lowvram=False,
    medvram=False,
    no_half=False,
    no_half_vae=False,
)


class OptionInfo:
    def __init__(
        self,
        default=None,
        label="",
        component=None,
        component_args=None,
        onchange=None,
        section=None,
        refresh=None,
        comment_before="",
        comment_after="",
        infotext=None,
        restrict_api=False,
        category_id=None,
    ):
        self.default = default
        self.label = label
        self.component = component
        self.component_args = component_args
        self.onchange = onchange
        self.section = section
        self.refresh = refresh
        self.comment_before = comment_before
        self.comment_after = comment_after
        self.infotext = infotext
        self.restrict_api = restrict_api
        self.category_id = category_id
        self.do_not_save = False

    def _note(self, text, *, before=False):
        """For the chainable helpers below: collect a note (the WebUI shows HTML beside the label)."""
        if before:
            self.comment_before += text
        else:
            self.comment_after += text
        return self

    def info(self, info):
        return self._note(f" ({info})")

    def link(self, label, url):
        return self._note(f"[{label}: {url}]", before=True)

    def needs_restart(self):
        return self._note(" (restart needed)")

    def needs_reload_ui(self):
        return self._note(" (Reload UI needed)")


def options_section(section_identifier, options_dict):
    """Tag every option in ``options_dict`` with its section: ``(id, title)``, or
    ``(id, title, category)`` which also sets ``category_id``. Returns ``options_dict``."""
    section, category = tuple(section_identifier[:2]), None
    if len(section_identifier) > 2:
        category = section_identifier[2]
    for info in options_dict.values():
        info.section = section
        if category is not None:
            info.category_id = category
    return options_dict


class Options:
    """Settings: values in ``data``, their ``OptionInfo`` in ``data_labels``; ``opts.<key>`` reads
    ``data`` and falls back to the default, assigning to a known key writes ``data``."""

    _own = ("data", "data_labels", "restricted_opts")

    def __init__(self, data_labels, restricted_opts):
        self.data_labels = data_labels
        self.restricted_opts = restricted_opts
        self.data = {key: info.default for key, info in data_labels.items() if not info.do_not_save}

    def __getattr__(self, name):  # only reached when ordinary lookup fails
        if name in Options._own:
            raise AttributeError(name)
        if name in self.data:
            return self.data[name]
        if name in self.data_labels:
            return self.data_labels[name].default
        raise AttributeError(f"no setting named {name!r}")

    def __setattr__(self, name, value):
        if name in Options._own or (name not in self.data and name not in self.data_labels):
            object.__setattr__(self, name, value)
        elif not self.data_labels.get(name, OptionInfo()).do_not_save:
            self.data[name] = value

    def set(self, key, value, is_api=False, run_callbacks=True):
        """Change one setting; True when its value changed. Runs its ``onchange`` unless told not to."""
        info = self.data_labels[key]
        if self.data.get(key) == value or info.do_not_save or (is_api and info.restrict_api):
            return False
        setattr(self, key, value)
        if run_callbacks and info.onchange is not None:
            info.onchange()
        return True

    def get_default(self, key):
        info = self.data_labels.get(key)
        return info.default if info is not None else None

    def add_option(self, key, info):
        self.data_labels[key] = info
        if not info.do_not_save:
            self.data.setdefault(key, info.default)


_out = os.path.join
_STUB_SETTINGS = {  # section -> {key: (default, label)}; keys and defaults are the WebUI's, labels ours
    ("saving-images", "Saving images", "saving"): {
        "samples_save": (True, "Save every generated image"),
        "samples_format": ("png", "Image file format"),
        "save_images_add_number": (True, "Number the saved files"),
        "save_txt": (False, "Also write the infotext to a .txt file"),
        "enable_pnginfo": (True, "Store the infotext in the image"),
    },
    ("saving-paths", "Output folders", "saving"): {
        "outdir_samples": ("", "Images folder (empty: per tab)"),
        "outdir_txt2img_samples": (_out(default_output_dir, "txt2img-images"), "txt2img images folder"),
        "outdir_img2img_samples": (_out(default_output_dir, "img2img-images"), "img2img images folder"),
        "outdir_grids": ("", "Grids folder (empty: per tab)"),
        "outdir_txt2img_grids": (_out(default_output_dir, "txt2img-grids"), "txt2img grids folder"),
        "outdir_img2img_grids": (_out(default_output_dir, "img2img-grids"), "img2img grids folder"),
    },
    ("saving-to-dirs", "Subfolders", "saving"): {"save_to_dirs": (True, "Save into a subfolder per day")},
    ("sd", "Stable Diffusion", "sd"): {"CLIP_stop_at_last_layers": (1, "CLIP layers to skip")},
    ("optimizations", "Optimizations", "sd"): {"persistent_cond_cache": (True, "Keep the cond cache between jobs")},
    ("compatibility", "Compatibility", "sd"): {"use_old_scheduling": (False, "Old prompt editing timelines")},
    ("infotext", "Infotext", "ui"): {
        "add_model_hash_to_info": (True, "Infotext names the model hash"),
        "add_model_name_to_info": (True, "Infotext names the model"),
        "add_version_to_infotext": (True, "Infotext names the WebUI version"),
    },
}
options_templates = {
    key: info
    for section, options in _STUB_SETTINGS.items()
    for key, info in options_section(section, {k: OptionInfo(*v) for k, v in options.items()}).items()
}
options_templates["CLIP_stop_at_last_layers"].infotext = "Clip skip"

restricted_opts = {key for key in options_templates if key.startswith("outdir_")}
opts = Options(options_templates, restricted_opts)


class State:
    """The running job: progress counters and the interrupt/skip flags. Defaults live on the class,
    so ``begin`` starts a job by dropping what the last one set on the instance."""

    skipped = False
    interrupted = False
    stopping_generation = False
    job = ""
    job_no = 0
    job_count = 0
    job_timestamp = "0"
    sampling_step = 0
    sampling_steps = 0
    current_latent = None
    textinfo = None
    time_start = None

    def interrupt(self):
        self.interrupted = True

    def skip(self):
        self.skipped = True

    def stop_generating(self):
        self.stopping_generation = True

    def begin(self, job: str = "(unknown)"):
        vars(self).clear()
        self.job = job
        self.job_count = -1  # processing replaces it with n_iter
        self.time_start = time.time()
        self.job_timestamp = time.strftime("%Y%m%d%H%M%S")

    def nextjob(self):
        self.job_no += 1
        self.sampling_step = 0

    def end(self):
        self.job, self.job_count = "", 0


state = State()


class TotalTQDM:
    """The console bar over a whole job; its methods do nothing here."""

    def reset(self):
        pass

    update = clear = reset

    def updateTotal(self, new_total):  # noqa: N802 - the WebUI's name
        pass


total_tqdm = TotalTQDM()


prompt_styles = styles.StyleDatabase([])
sd_model = None
