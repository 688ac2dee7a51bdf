"""Keyframe animation: the txt2img/img2img script that travels between prompt keys (Giffusion, Deforum 2D)."""

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:  # our glue package lives beside this file (A1111 runs only top-level files)
    sys.path.insert(0, _HERE)

from modules import script_callbacks, scripts  # noqa: E402

from vidsd_a1111 import binding, keyframes_job, ui  # noqa: E402


class KeyframeScript(scripts.Script):
    def title(self):
        return binding.KEYFRAMES.key

    def show(self, is_img2img):
        return True

    def ui(self, is_img2img):
        return ui.build_plain(self, is_img2img, binding.KEYFRAMES)

    def run(self, p, *args):
        params, audio_path, video_path = keyframes_job.parse(args, is_api=getattr(p, "is_api", False))
        return keyframes_job.run(p, params, audio_path, video_path)


# registered once per script load (A1111 clears callbacks before reloading scripts); the callback does
# nothing unless a keyframe request with coherence is being rendered
script_callbacks.on_cfg_after_cfg(keyframes_job.on_cfg_after_cfg, name="vidsd_keyframes_coherence")
script_callbacks.on_infotext_pasted(binding.KEYFRAMES.infotext_pasted)
