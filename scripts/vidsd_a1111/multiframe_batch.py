"""Multi-frame rendering from the img2img *Batch* tab: the batch images are the clip.

A1111's batch tab (``modules/img2img.py`` ``process_batch``, v1.10) builds one ``p``, sets
``state.job_count = len(images) · n_iter`` and then, for each image in turn, sets
``state.job = "<i+1> out of <len(images)>"`` and ``p.init_images = [image] · batch_size`` (and
``p.image_mask`` when an inpaint mask folder is given) and calls the selected script's ``run(p,
*args)`` on that same ``p``; a script that returns a ``Processed`` keeps A1111 from rendering the image
itself, and A1111 gathers the returned images into the batch's results. Images come in the order
A1111 lists them: a folder through ``shared.walk_files`` (natural name order, ``2.png`` before
``10.png``, sub-folders included after the files of their parent, in natural order), uploads in
the order given. An unreadable image is passed over (no call for it).

So when the script has no input of its own and is called that way, each call renders the next
frame of one :class:`~lib_vidsd.multiframe.MultiFrameJob` (:meth:`begin` / :meth:`step` /
:meth:`finish`) kept here between the calls: filmstrip and cross-frame references, previous and
first outputs, per-frame prompts and seeds, masks, colour correction; after the last selected image
the deflicker pass and the videos. ``start``, ``end``, ``every`` and ``max_frames`` select among the
batch images by position; the frame rate is ``fps`` or the folder rate divided by ``every``.
``mask_dir`` pairs masks with the images' positions (``0.png``, ``0001.png``… by name, or by
order); without it, the batch tab's inpaint masks (``p.image_mask``) are the frames' masks.

What comes back: every call returns a ``Processed``; the calls before the clip ends return no
images, the one that ends it returns what the non-batch run returns (the GIF/WEBP videos, then the
frames), so the gallery shows the clip as after any Multi-frame job. The frames and videos go to
``outputs/img2img-images/multiframe/<name>/`` as usual, also when the batch tab names an output
folder: A1111 would save the img2img result of each call there, which is the strip, not the frame
(the job saves the cropped, colour-matched frames itself and turns A1111's saving off).

Interrupt: the frames finished so far stay and come back, no video (as in the non-batch run);
A1111 then ends the batch. Skip: the clip ends at the frames finished so far and gets its videos;
the remaining images render nothing (A1111's batch tab clears the skip flag before each image). The
job (and with it cross-frame attention on the UNet) lives only as long as the batch: it is closed
and the UNet restored after the last image, on any error, when a new Multi-frame job starts, and
when any other generation reaches the sampler (``on_cfg_denoiser``), so a batch A1111 stopped
between images never leaves the UNet patched for an unrelated job.
"""

from __future__ import annotations

import datetime
import logging
import re
from pathlib import Path

import numpy as np
from PIL import Image

from lib_vidsd.config import MultiFrameParams
from lib_vidsd.errors import ConfigError, Interrupted
from lib_vidsd.multiframe import (
    FrameSource,
    InputFrame,
    MultiFrameJob,
    MultiFrameResult,
    RenderRequest,
    finished_frames,
    frame_path,
    job_folder,
    multiframe_infotext,
)
from lib_vidsd.multiframe.sources import fit_plane, open_masks, selected_indices, split_image
from lib_vidsd.multiframe.strip import control_image
from lib_vidsd.video.reader import FOLDER_FPS

from . import binding, models
from .controlnet import UnitImages
from .multiframe_job import Renderer, _processed, _progress, _State, input_roots

log = logging.getLogger("vidsd.a1111.multiframe.batch")

#: ``state.job`` as ``process_batch`` sets it before each image ("3 out of 12").
BATCH_JOB_TEXT = re.compile(r"^(\d+) out of (\d+)$")

# The one clip the batch tab is feeding. A1111 calls ``run`` once per image on the same ``p``, so
# the job must outlive a call; it is dropped as soon as anything else runs (see the module docstring).
_active: BatchClip | None = None


def batch_position(p) -> tuple[int, int] | None:
    """``(index, count)`` of the batch image this call of the script is for, or ``None`` when the
    call does not come from the img2img batch tab's loop.

    The batch tab leaves no mark on ``p``; what it does set, right before calling the script, is
    ``state.job`` ("<index+1> out of <count>"), and before its first image ``state.job_count =
    count · n_iter``. The first call on a ``p`` is taken for the batch when both hold; later calls
    when they come on the ``p`` of the running clip with the same count and a later index.
    """
    from modules import shared

    if getattr(p, "is_api", False) or not getattr(p, "init_images", None) or p.init_images[0] is None:
        return None
    match = BATCH_JOB_TEXT.match(str(getattr(shared.state, "job", "") or ""))
    if match is None:
        return None
    index, count = int(match[1]) - 1, int(match[2])
    if not 0 <= index < count:
        return None
    clip = _active
    if clip is not None and clip.p is p:
        return (index, count) if count == clip.count and index > clip.position else None
    if shared.state.job_count != count * max(int(getattr(p, "n_iter", 1) or 1), 1):
        return None
    return index, count


def run(p, params: MultiFrameParams, index: int, count: int):
    """One call of the batch tab: the image ``index`` of ``count`` (see :func:`batch_position`)."""
    global _active
    clip = _active if _active is not None and _active.p is p else None
    if clip is None:
        drop()
        clip = BatchClip(p, params, count)
        _active = clip
    return clip.feed(index)


def drop() -> None:
    """Close whatever batch clip is left (the UNet restored); its finished frames stay on disk."""
    global _active
    clip, _active = _active, None
    if clip is not None:
        clip.close()


def on_cfg_denoiser(params) -> None:
    """A sampling step of some job: when it is not the batch clip's own, the clip was abandoned
    (A1111 stopped the batch between images): drop it before the UNet runs."""
    clip = _active
    if clip is not None and clip.open and getattr(params.denoiser, "p", None) is not clip.p:
        log.info("a batch Multi-frame job was left unfinished; dropped (frames in %s)", clip.out_dir)
        drop()


def on_model_loaded(*_args) -> None:
    drop()


class _BatchMasks:
    """The batch tab's inpaint masks (``p.image_mask`` of each call), fitted like the frames and kept
    for the frames that may still need them (the first and the last two)."""

    def __init__(self, size: tuple[int, int], fit):
        self.size, self.fit = size, fit
        self.masks: dict[int, np.ndarray] = {}

    def add(self, index: int, mask: Image.Image | None) -> None:
        if mask is not None:
            self.masks[index] = fit_plane(np.asarray(mask.convert("L")), self.size, self.fit)
        for old in [i for i in self.masks if 0 < i < index - 2]:
            del self.masks[old]

    def for_frame(self, frame: InputFrame) -> np.ndarray | None:
        return self.masks.get(frame.index)


class BatchClip:
    """One Multi-frame job fed one image per call by the batch tab (see the module docstring)."""

    def __init__(self, p, params: MultiFrameParams, count: int):
        from modules import processing, shared

        processing.fix_seed(p)
        self.p, self.params, self.count = p, params, count
        self.position = -1  # the last batch index seen
        self.picked = selected_indices(count, params)
        self._picked = set(self.picked)
        self.size = (int(p.width), int(p.height))
        self._p_fields = {name: getattr(p, name) for name in ("prompt", "seed", "denoising_strength", "n_iter")}
        self._p_fields["batch_size"] = p.batch_size
        self.recent: dict[int, np.ndarray] = {}  # source images for ControlNet: the first and the last three
        self.kept: list[InputFrame] = []  # every frame, when the deflicker pass needs them as its guide
        self.result: MultiFrameResult | None = None
        self.renderer: Renderer | None = None
        self._first = None  # the first Processed returned (see feed)
        if not self.picked:
            raise ConfigError("start", params.start, f"a frame range holding at least one of the {count} batch images")
        source = FrameSource(
            lambda: iter(list(self.kept)),
            count=len(self.picked),
            fps=params.fps or FOLDER_FPS / params.every,
            size=self.size,
        )
        masks = open_masks(params, size=self.size, roots=input_roots())
        self.batch_masks = _BatchMasks(self.size, params.fit) if masks is None else None
        root = Path(shared.opts.outdir_samples or shared.opts.outdir_img2img_samples) / "multiframe"
        name = params.output_name or datetime.datetime.now().strftime("%Y%m%d-%H%M%S")  # already made safe
        self.out_dir = job_folder(root, name, resume=params.resume)
        interp_model = models.load_vfi(params.interp.value, params.interp_model) if params.format else None
        p.extra_generation_params[binding.MULTIFRAME.key] = multiframe_infotext(params)
        base = {"prompt": p.prompt, "seed": int(p.seed), "denoise": float(p.denoising_strength)}
        self.job = MultiFrameJob(
            params, self._render, source=source, out_dir=self.out_dir, masks=masks if masks is not None else self.batch_masks,
            infotext=self._infotext, interp_model=interp_model, progress=_progress, stop=_State(), **base,
        )  # fmt: skip
        try:
            self.job.begin()
            self.renderer = Renderer(p, params.mode.cross_frame)  # cross-frame attention patched until close()
        except BaseException:
            self.close()
            raise
        if params.mode.cross_frame and params.resume:
            shared.state.job_count += 2  # the references are rendered again
        log.info("batch tab: %d of %d images as a clip into %s", len(self.picked), count, self.out_dir)

    @property
    def open(self) -> bool:
        return self.renderer is not None

    def _render(self, req: RenderRequest):
        return self.renderer(req)

    def _infotext(self, req: RenderRequest) -> str:
        return self.renderer.infos.get(req.index, "") if self.renderer is not None else ""

    # --- one call ------------------------------------------------------------------------------

    def feed(self, index: int):
        """The batch image ``index`` (in ``p.init_images``): its frame rendered when it is selected,
        the clip finished when it is the last selected one. A ``Processed`` for A1111."""
        from modules import shared

        p = self.p
        self.position = index
        image, mask = p.init_images[0], getattr(p, "image_mask", None)
        rendered = self.job.result.rendered
        try:
            if self.result is None and index in self._picked:
                self._frame(index, image, mask)
            if self.result is None and index >= self.picked[-1]:
                self.result = self.job.finish()
        except Interrupted as e:
            log.info("multi-frame rendering (batch) stopped: %s", e)
            done = [frame_path(self.out_dir, k) for k in range(finished_frames(self.out_dir))]
            self.result = MultiFrameResult(self.out_dir, done, complete=False)
        except BaseException:
            self._put_back_p()
            self._abandon()
            raise
        finally:
            if self.job.result.rendered == rendered:
                shared.state.job_no += 1  # A1111 counts this image as a job; nothing was rendered
        self._put_back_p()
        if self.result is not None and self.open:  # ended by this call: the clip comes back
            infos = self.renderer.infos
            self.close()  # stays the active clip: the batch's remaining images render nothing
            processed = _processed(p, self.result, infos)
            if self._first is not None:  # A1111 gathers the batch's results into the first one it got:
                self._first.info = processed.info  # its info is what the UI shows for the whole batch
            return processed
        return self._nothing()

    def _abandon(self) -> None:
        global _active
        if _active is self:
            _active = None
        self.close()

    def _frame(self, index: int, image: Image.Image, mask: Image.Image | None) -> None:
        params, k = self.params, len(self.job.result.frames)
        rgb, alpha = split_image(image, self.size, params.fit, params.keep_alpha)
        frame = InputFrame(k, index, str(index), rgb, alpha)
        self.recent[k] = rgb
        for old in [i for i in self.recent if 0 < i < k - 2]:
            del self.recent[old]
        if self.job.deflicker is not None:
            self.kept.append(frame)
        if self.batch_masks is not None:
            self.batch_masks.add(k, mask)
        units = UnitImages(self.p, "Multi-frame rendering")
        if units.active:  # units without an image follow the source frames, laid out like the init image

            def control(req: RenderRequest) -> None:
                loopback, third = params.loopback_source, params.third_frame
                units.set(control_image(req.index, req.cells, loopback, third, self.recent.__getitem__))

            self.renderer.control = control
        try:
            if not self.job.step(frame):  # a skip request ended the clip here
                self.result = self.job.finish()
        finally:
            self.renderer.control = None
            units.restore()

    def _put_back_p(self) -> None:
        """``p`` as the batch tab set it: the renders changed its size, prompt, seed and strength."""
        p = self.p
        p.width, p.height = self.size
        p.image_mask = None  # so a mask on the next call is the batch tab's, not the last strip's
        for name, value in self._p_fields.items():
            setattr(p, name, value)

    def _nothing(self):
        from modules import processing

        p = self.p
        info = f"{p.prompt}\nMulti-frame rendering of the batch images into {self.out_dir.name}"
        processed = processing.Processed(p, [], seed=p.seed, info=info)
        if self._first is None:
            self._first = processed
        return processed

    def close(self) -> None:
        """Restore the UNet (cross-frame attention) and drop the references. Idempotent."""
        renderer, self.renderer = self.renderer, None
        if renderer is not None:
            renderer.close()
        self.kept.clear()
        self.recent.clear()
        if self.out_dir.is_dir() and not any(self.out_dir.iterdir()):
            self.out_dir.rmdir()  # nothing was rendered: no empty folder left behind
