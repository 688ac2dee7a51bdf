"""Multi-frame rendering: video to video one frame at a time, each frame tied to the ones before it.

:class:`MultiFrameJob` runs the loop over a :class:`FrameSource` with a renderer the host supplies
(A1111's img2img, or :class:`lib_vidsd.pipelines.multiframe.DiffusersRenderer`); :mod:`.strip`
builds the filmstrip and cuts the frame back out; :mod:`.sources` reads videos, base64 uploads,
folders and masks.
"""

from .job import (
    MultiFrameJob,
    MultiFrameResult,
    RenderRequest,
    finished_frames,
    frame_path,
    job_folder,
    multiframe_infotext,
    save_frame_png,
)
from .perframe import FramePrompts, frame_seed
from .sources import (
    FrameSource,
    InputFrame,
    MaskSet,
    attach_alpha,
    input_kind,
    open_base64_images,
    open_base64_video,
    open_folder,
    open_masks,
    open_path,
    open_source,
    open_video,
    resolve_in_roots,
)
from .strip import build_strip, crop_centre, strip_mask

__all__ = [
    "FramePrompts",
    "FrameSource",
    "InputFrame",
    "MaskSet",
    "MultiFrameJob",
    "MultiFrameResult",
    "RenderRequest",
    "attach_alpha",
    "build_strip",
    "crop_centre",
    "finished_frames",
    "frame_path",
    "frame_seed",
    "input_kind",
    "job_folder",
    "multiframe_infotext",
    "open_base64_images",
    "open_base64_video",
    "open_folder",
    "open_masks",
    "open_path",
    "open_source",
    "open_video",
    "resolve_in_roots",
    "save_frame_png",
    "strip_mask",
]
