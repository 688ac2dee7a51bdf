"""Multi-frame rendering: the img2img script that stylises a whole clip frame by frame."""

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:  # our glue package lives beside this file (A1111 runs only top-level files)
    sys.path.insert(0, _HERE)

from modules import scripts  # noqa: E402

from vidsd_a1111 import binding, ui  # noqa: E402


class MultiFrameScript(scripts.Script):
    def title(self):
        return binding.MULTIFRAME.key

    def show(self, is_img2img):
        return is_img2img

    def ui(self, is_img2img):
        return ui.build_plain(self, is_img2img, binding.MULTIFRAME)

    def run(self, p, *args):
        from vidsd_a1111 import multiframe_job

        params, video_path = multiframe_job.parse(args, is_api=getattr(p, "is_api", False))
        return multiframe_job.run(p, params, video_path)
