"""Multi-frame rendering: the img2img script that stylises a whole clip frame by frame."""

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:  # our glue package lives beside this file (A1111 runs only top-level files)
    sys.path.insert(0, _HERE)

from modules import script_callbacks, scripts  # noqa: E402

from vidsd_a1111 import binding, multiframe_batch, ui  # noqa: E402


class MultiFrameScript(scripts.Script):
    def title(self):
        return binding.MULTIFRAME.key

    def show(self, is_img2img):
        return is_img2img

    def ui(self, is_img2img):
        return ui.build_plain(self, is_img2img, binding.MULTIFRAME)

    def run(self, p, *args):
        from lib_vidsd.multiframe import input_kind
        from vidsd_a1111 import multiframe_job

        params, video_path = multiframe_job.parse(args, is_api=getattr(p, "is_api", False))
        if not (video_path or any(getattr(params, f) for f in ("input_video", "input_frames", "input_dir"))):
            position = multiframe_batch.batch_position(p)
            if position is not None:  # the img2img batch tab: its images are the clip, one per call
                return multiframe_batch.run(p, params, *position)
            input_kind(params, video_path)  # no input at all: the error naming the field
        multiframe_batch.drop()  # a new job: whatever an abandoned batch left goes
        return multiframe_job.run(p, params, video_path)


script_callbacks.on_cfg_denoiser(multiframe_batch.on_cfg_denoiser)
script_callbacks.on_model_loaded(multiframe_batch.on_model_loaded)
script_callbacks.on_script_unloaded(multiframe_batch.drop)
