"""Video stylisation: the img2img script that re-renders a whole clip with cross-frame attention (DiffSynth)."""

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:  # our glue package lives beside this file (A1111 runs only top-level files)
    sys.path.insert(0, _HERE)

from modules import script_callbacks, scripts  # noqa: E402

from vidsd_a1111 import binding, stylize_job, ui  # noqa: E402


class StylizeScript(scripts.Script):
    def title(self):
        return binding.STYLIZE.key

    def show(self, is_img2img):
        return is_img2img

    def ui(self, is_img2img):
        return ui.build_plain(self, is_img2img, binding.STYLIZE)

    def run(self, p, *args):
        params, video_path = stylize_job.parse(args, is_api=getattr(p, "is_api", False))
        return stylize_job.run(p, params, video_path)


# registered once per script load (A1111 clears callbacks before reloading scripts); the callback does
# nothing unless a stylisation job with the in-loop smoother is being rendered
script_callbacks.on_cfg_after_cfg(stylize_job.on_cfg_after_cfg, name="vidsd_stylize_smoother")
script_callbacks.on_infotext_pasted(binding.STYLIZE.infotext_pasted)
