"""Multi-frame rendering in the WebUI: the img2img script's run, one ``process_images`` per frame.

The frame loop, strips, masks, colour match, resume and the videos are ``lib_vidsd.multiframe``'s;
this file supplies the renderer (A1111's img2img with the strip as init image and the centre
cell as inpaint mask, as the WebUI's own loopback script reuses ``p``), cross-frame attention on
the loaded UNet (restored in a ``finally``), progress and interrupt through ``shared.state``, and
the folders: input folders only inside the allowed roots, outputs below the img2img outputs.

With sd-webui-controlnet, every enabled unit without an image of its own gets, before each frame's
``process_images``, the control image built from the *source* frames the way the init image is
built (``lib_vidsd.multiframe.strip.control_image``: the strip of the source frames in strip modes,
the source frame for a frame rendered alone), through ``external_code``; the job's ControlNet
arguments are put back afterwards (also after an error).
"""

from __future__ import annotations

import datetime
import logging
import re
from pathlib import Path

import numpy as np
from PIL import Image

from lib_vidsd.config import MultiFrameParams
from lib_vidsd.errors import ConfigError, Interrupted, MediaError, VidsdError
from lib_vidsd.multiframe import (
    MultiFrameJob,
    MultiFrameResult,
    RenderRequest,
    finished_frames,
    frame_path,
    job_folder,
    multiframe_infotext,
)
from lib_vidsd.multiframe.sources import FrameSource, open_masks, open_source, selected_indices
from lib_vidsd.multiframe.strip import control_image

from . import binding, models
from .controlnet import UnitImages

log = logging.getLogger("vidsd.a1111.multiframe")

ROOTS_SETTING = "vidsd_input_roots"
FRAMES_KEY = "Multi-frame frames"
UI_ZERO_IS_EMPTY = ("end", "max_frames", "fps")


def input_roots() -> list[Path]:
    """The folders ``input_dir`` and ``mask_dir`` may name something inside (Settings; one per line)."""
    from modules import shared

    text = str(shared.opts.data.get(ROOTS_SETTING) or "")
    return [Path(line.strip()) for line in text.splitlines() if line.strip()]


def check(params: MultiFrameParams, video_path: str | None = None, body: dict | None = None) -> None:
    """What the API refuses before anything runs (422 naming the field): one input, folders inside
    the roots, the frame range, every base64 frame decodable, per-frame prompts, a mask for each
    frame of a numbered source, the videos' frame rate, interpolation weights. ``body`` is the
    request (size, prompt)."""
    from lib_vidsd.multiframe.perframe import FramePrompts
    from lib_vidsd.multiframe.sources import InputFrame, resolve_in_roots
    from lib_vidsd.video import list_images

    body = body or {}
    kind, count, fps, size, roots = check_source(params, video_path, body)
    FramePrompts(str(body.get("prompt") or ""), params.frame_prompts, count)
    masks = open_masks(params, size=size, roots=roots)
    if masks is not None:  # each frame has its mask (names only: nothing is decoded)
        if kind == "input_dir":
            files = list_images(resolve_in_roots(params.input_dir, roots, field="input_dir"))
            names = [f.stem for f in files]
        else:
            names = [str(i) for i in range(max(count * params.every + params.start, 1))]
        for k, i in enumerate(selected_indices(len(names), params)[:count]):
            masks.path_for(InputFrame(k, i, names[i], None))
    check_video_rate(params, fps)


def check_source(params, video_path: str | None, body: dict) -> tuple[str, int, float, tuple[int, int], list[Path]]:
    """The input of a clip job (Multi-frame, Video stylisation) opened as the job will open it: one
    input, a folder inside the roots, every base64 frame decodable, a frame range holding frames.
    Returns ``(kind, frame count, fps, generation size, roots)``; errors name the field."""
    from lib_vidsd.multiframe.sources import input_kind, resolve_in_roots

    kind = input_kind(params, video_path)
    roots = input_roots()
    if kind == "input_dir":
        resolve_in_roots(params.input_dir, roots, field="input_dir")
    size = (_int(body.get("width"), 512), _int(body.get("height"), 512))
    try:
        with open_source(params, size=size, roots=roots, video_path=video_path) as source:
            count, fps = source.count, params.fps or source.fps
            if kind == "input_frames":
                for _frame in source:  # decodes each base64 image: a bad one is named now, not after rendering
                    pass
    except MediaError as e:  # an undecodable video or image
        raise ConfigError(kind, "…", "a readable video or images", str(e)) from e
    if count == 0:
        raise ConfigError("start", params.start, "a frame range holding at least one frame of the input")
    return kind, count, fps, size, roots


def check_video_rate(params, fps: float) -> None:
    """Interpolated videos stay within MAX_FPS, and the interpolation weights exist."""
    from lib_vidsd.config import MAX_FPS

    if params.format and params.interp.value != "none":
        if fps * params.interp_x > MAX_FPS:
            top = int(MAX_FPS // fps)
            allowed = f"2..{top}" if top >= 2 else "none: even ×2 goes over the limit (lower fps or interp none)"
            raise ConfigError("interp_x", params.interp_x, f"{allowed} at {fps:g} fps (videos at most {MAX_FPS:g} fps)")
        models.load_vfi(params.interp.value, params.interp_model)


def _int(value, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else default


def parse(args, *, is_api: bool = False) -> tuple[MultiFrameParams, str | None]:
    """The script's arguments → (params, uploaded video path). API: ``script_args: [{...}]``, or
    the list form, which is laid out like the UI's arguments (A1111 puts it into the script's
    argument slice as it is): ``[upload, *widgets in binding order]``, the upload slot empty (over
    HTTP a video comes as base64 ``input_video``, never as a server path)."""
    if args and isinstance(args[0], dict):
        return binding.MULTIFRAME.parse_args([args[0]]), None
    upload, *values = args if args else (None,)
    path = getattr(upload, "name", upload) if upload else None
    if is_api and path:
        raise ConfigError("script_args", "a file path", "the dict form [{...}] with base64 input_video")
    fields = [b.field for b in binding.MULTIFRAME.widget_bindings()]
    for name in UI_ZERO_IS_EMPTY:  # gr.Number shows an empty value as 0 and sends 0 back
        i = fields.index(name)
        if i < len(values) and not values[i]:
            values[i] = None
    return binding.MULTIFRAME.parse_args(values), (str(path) if path else None)


class _State:
    """``shared.state`` as the core's stop token."""

    def stop_requested(self) -> bool:
        from modules import shared

        return bool(shared.state.interrupted)

    def skip_requested(self) -> bool:
        from modules import shared

        return bool(shared.state.skipped)


class SourceFrames:
    """The source frames as the job reads them (``source`` wraps ``original``; the original keeps
    its cleanup), so each request's control image can be built from the frames it refers to: the
    first frame and the last three read are kept."""

    def __init__(self, original: FrameSource):
        self.frames: dict[int, np.ndarray] = {}
        self.source = FrameSource(
            self._read, count=original.count, fps=original.fps, size=original.size, path=original.path
        )
        self._original = original

    def _read(self):
        for frame in self._original:
            self.frames[frame.index] = frame.image
            for old in [i for i in self.frames if 0 < i < frame.index - 2]:
                del self.frames[old]
            yield frame

    def __getitem__(self, index: int) -> np.ndarray:
        return self.frames[index]


class Renderer:
    """One img2img ``process_images`` per request on the job's own ``p``. ``control(request)``, when
    given, runs just before each ``process_images`` (ControlNet's images)."""

    def __init__(self, p, cross_frame: bool, control=None):
        self.p = p
        self.control = control
        self.attention = None
        if cross_frame:
            from modules import shared

            from lib_vidsd.attention import CrossFrameAttention

            self.attention = CrossFrameAttention(shared.sd_model.model.diffusion_model)
        self.infos: dict[int, str] = {}  # frame index → its infotext (at the frame's size, not the strip's)

    def __call__(self, req: RenderRequest) -> Image.Image:
        from modules import processing, shared

        p = self.p
        p.init_images = [req.image]
        p.image_mask = req.mask
        if req.mask is None:  # A1111 keeps a previous run's latent mask and overlay on a reused p
            p.mask = p.overlay_images = None
        p.width, p.height = req.width, req.height
        p.denoising_strength = req.denoising_strength
        p.prompt, p.seed = req.prompt, req.seed
        p.n_iter, p.batch_size = 1, 1
        p.do_not_save_samples = p.do_not_save_grid = True  # the job saves the cropped frame
        p.inpainting_fill, p.inpaint_full_res, p.mask_blur = 1, False, 0  # "original" fill, whole strip
        shared.state.job = f"frame {req.index + 1}" + (" (rebuilding references)" if req.replay else "")
        attention = self.attention if req.cross_frame else None
        if attention is not None:
            if req.first:
                attention.reset()
            attention.begin_frame(req.index)
        if self.control is not None:
            self.control(req)
        processed = processing.process_images(p)
        if attention is not None:
            attention.end_frame()
        if not processed.images:  # A1111 stops before sampling once interrupted
            if shared.state.interrupted or shared.state.skipped:
                raise Interrupted(f"interrupted at frame {req.index + 1}")
            raise VidsdError(f"img2img returned no image for frame {req.index + 1}")
        text = processed.infotexts[0] if processed.infotexts else processed.info
        size = f"Size: {req.frame_width}x{req.height}"
        self.infos[req.index] = re.sub(r"Size: \d+x\d+", size, text) + f", Multi-frame frame: {req.index}"
        return processed.images[0]

    def close(self) -> None:
        if self.attention is not None:
            self.attention.restore()
            self.attention = None


def run(p, params: MultiFrameParams, video_path: str | None):
    """The whole job; returns A1111's ``Processed`` (the frames for the UI; the videos for the API)."""
    from modules import processing, shared

    processing.fix_seed(p)
    size = (p.width, p.height)
    roots = input_roots()
    source = open_source(params, size=size, roots=roots, video_path=video_path)
    masks = open_masks(params, size=size, roots=roots)
    name = params.output_name or datetime.datetime.now().strftime("%Y%m%d-%H%M%S")  # already made safe
    out_dir = job_folder(Path(p.outpath_samples) / "multiframe", name, resume=params.resume)
    interp_model = models.load_vfi(params.interp.value, params.interp_model) if params.format else None
    setting_text = multiframe_infotext(params)
    p.extra_generation_params[binding.MULTIFRAME.key] = setting_text
    base = {"prompt": p.prompt, "seed": int(p.seed), "denoise": float(p.denoising_strength)}
    shared.state.job_count = source.count + (2 if params.mode.cross_frame and params.resume else 0)
    units = UnitImages(p, "Multi-frame rendering")
    control = None
    if units.active:  # units without an image follow the source frames, laid out like the init image
        read = SourceFrames(source)
        source_for_job = read.source

        def control(req: RenderRequest) -> None:
            units.set(control_image(req.index, req.cells, params.loopback_source, params.third_frame, read.__getitem__))

    else:
        source_for_job = source
    renderer = Renderer(p, params.mode.cross_frame, control)
    frame_size = (p.width, p.height)

    def infotext(req: RenderRequest) -> str:
        return renderer.infos.get(req.index, "")

    try:
        with source:
            job = MultiFrameJob(
                params, renderer, source=source_for_job, out_dir=out_dir, masks=masks, infotext=infotext,
                interp_model=interp_model, progress=_progress, stop=_State(), **base,
            )  # fmt: skip
            result = job.run()
    except Interrupted as e:  # like A1111's own scripts: the finished frames come back, no video
        log.info("multi-frame rendering stopped: %s", e)
        done = [frame_path(out_dir, k) for k in range(finished_frames(out_dir))]
        result = MultiFrameResult(out_dir, done, complete=False)
    finally:
        renderer.close()
        units.restore()
        p.width, p.height = frame_size  # the renders set the strip's size; the job's result is frames
        if out_dir.is_dir() and not any(out_dir.iterdir()):
            out_dir.rmdir()  # failed before its first frame: no empty folder left behind
    return _processed(p, result, renderer.infos)


def _progress(done: int, total: int | None, text: str = "") -> None:
    """The job's progress: frames are counted by the renders (``shared.state.job_no``); the
    deflicker pass after the last frame shows its matches in the progress text."""
    if text.startswith("deflicker"):
        from modules import shared

        shared.state.job = "deflicker"
        shared.state.textinfo = f"{text} {done}/{total}"


def _processed(p, result: MultiFrameResult, infos: dict[int, str]):
    from modules import processing

    from .output import encode_files

    state = "" if result.complete else " (stopped early)"
    p.extra_generation_params[FRAMES_KEY] = f"{result.frame_count}{state}" if state else result.frame_count
    info = f"{p.prompt}\n{FRAMES_KEY}: {result.frame_count}{state}, folder: {result.out_dir.name}"
    if getattr(p, "is_api", False):
        images, texts = encode_files(result.videos), [info] * len(result.videos)
    else:
        shown = [v for v in result.videos if v.suffix in (".gif", ".webp")]
        frames = result.final_frames  # the deflickered frames when there are: what the videos show
        images = [str(v) for v in shown] + [str(path) for path in frames]
        texts = [info] * len(shown) + [infos.get(k, info) for k in range(len(frames))]
    return processing.Processed(p, images, seed=p.seed, info=info, infotexts=texts)
