"""The multi-frame loop: one frame at a time, each tied to the ones before it, written as it finishes.

Frame 0 is rendered alone with ``first_denoise``. Every later frame k is rendered according to the
mode:

* ``filmstrip``: the init image is the strip ``[left | input k | right]`` (see :mod:`.strip`) with
  only the centre cell masked, and the centre cell of the result is the output. ``left`` is the
  loopback source (previous output, input frame k, or the first output); ``right`` the third cell
  (none, the first output, input frame k, or the output two frames back);
* ``cross_frame``: the init image is input frame k alone; the request asks the renderer for
  cross-frame attention (self-attention also attends to the first and previous frames);
* ``both``: the strip, with cross-frame attention.

The renderer is a callable the host supplies (A1111's img2img, or
:func:`lib_vidsd.pipelines.multiframe.DiffusersRenderer`); it gets a :class:`RenderRequest` and
returns the rendered image. Outputs are optionally colour-matched to the first output, get the
input's alpha back, and are written as ``00000.png``, ``00001.png``… with their infotext, each to a
temporary name first. A job stopped part way (interrupt, crash) is continued with ``resume``: the
finished frames are read back from the folder and serve as references, so the loop picks up where
it stopped. At the end the frames become the requested videos, optionally interpolated.

Deflicker (``params.deflicker`` other than ``none``) runs after the last frame, on the whole clip,
guided by the selected source frames (the motion of the footage, not of the renders). The rendered
frames stay as rendered (they are what resume reads back and what the loop used as references); the
deflickered frames are written, each atomically, to ``deflickered/00000.png``… beside them, with the
same infotext (and alpha), and the videos are made from them. Being a pass over the whole clip, it
is redone from the rendered frames whenever the job finishes, also after a resume that had nothing
left to render; an interrupt during it leaves the rendered frames and no new video, and a later
resume repeats it. A skip that ended the clip early deflickers the frames made so far.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any, Union

import numpy as np
from PIL import Image

from ..config import MAX_FPS, DeflickerMode, LoopbackSource, MultiFrameParams, MultiFrameVideo, ThirdFrame
from ..consistency import match_histograms_lab
from ..consistency.outputs import check_frame_size, option_settings, run_deflicker
from ..errors import ConfigError, VidsdError
from ..progress import ProgressSink, StopToken, check_stop, null_progress
from ..video import to_rgb, write_video
from .perframe import FramePrompts, frame_seed
from .sources import FrameSource, InputFrame, MaskSet, attach_alpha
from .strip import build_strip, crop_centre, strip_mask

log = logging.getLogger("vidsd.multiframe.job")

FRAME_FILE = re.compile(r"^(\d{5})\.png$")
_STALE_PART = re.compile(r"^\.\d{5}\.png\..*\.part$")
DEFLICKER_DIR = "deflickered"  # the deflickered frames, below the job folder
VIDEO_SUFFIX = {
    MultiFrameVideo.GIF: ".gif",
    MultiFrameVideo.MP4: ".mp4",
    MultiFrameVideo.WEBM: ".webm",
    MultiFrameVideo.WEBP: ".webp",
    MultiFrameVideo.APNG: ".apng",
}


@dataclass(frozen=True)
class RenderRequest:
    """One img2img generation the host is asked to run.

    ``image`` is the RGB init image, ``width × height`` (a strip is ``cells`` frames wide);
    ``mask`` an ``L`` image of the same size (white = redraw, black = keep) or ``None`` to redraw
    everything. ``cross_frame``: render with cross-frame attention; ``first``: this is the clip's
    first frame, whose attention keys and values the later frames attend to. ``replay``: render
    only to rebuild those attention references after a resume; the image is thrown away (the host
    should not save or show it).
    """

    index: int
    image: Image.Image
    mask: Image.Image | None
    width: int
    height: int
    denoising_strength: float
    prompt: str
    seed: int
    cross_frame: bool = False
    first: bool = False
    cells: int = 1
    replay: bool = False

    @property
    def frame_width(self) -> int:
        return self.width // self.cells


Renderer = Callable[[RenderRequest], Any]  # → a PIL image or uint8 array of width × height
Infotext = Union[str, Callable[[RenderRequest], str], None]


@dataclass
class MultiFrameResult:
    """What a job wrote: ``frames`` (PNG paths of the rendered frames, in order), ``videos``, how
    many frames were ``rendered`` in this run (the rest were resumed from disk), the videos' ``fps``,
    whether the clip is ``complete`` (``False`` when a skip request ended it early), and
    ``deflickered`` (the deflickered frames' PNG paths; empty when deflicker is off)."""

    out_dir: Path
    frames: list[Path]
    videos: list[Path] = field(default_factory=list)
    rendered: int = 0
    fps: float = 0.0
    complete: bool = True
    deflickered: list[Path] = field(default_factory=list)

    @property
    def frame_count(self) -> int:
        return len(self.frames)

    @property
    def final_frames(self) -> list[Path]:
        """The frames the videos show: the deflickered ones when there are, else the rendered ones."""
        return self.deflickered or self.frames


def frame_path(out_dir: Path, index: int) -> Path:
    return out_dir / f"{index:05d}.png"


def finished_frames(out_dir: str | Path) -> int:
    """How many frames ``00000.png``, ``00001.png``… exist without a gap from the first."""
    folder = Path(out_dir)
    if not folder.is_dir():
        return 0
    present = {int(m.group(1)) for p in folder.iterdir() if (m := FRAME_FILE.match(p.name))}
    count = 0
    while count in present:
        count += 1
    return count


def job_folder(root: str | Path, name: str, *, resume: bool) -> Path:
    """The output folder of a job below ``root``: ``root/name`` (``name`` already safe, see
    ``config.safe_folder_name``; ``multiframe`` when empty). Without ``resume`` an existing, non-empty
    folder is not reused: ``name-2``, ``name-3``… is taken instead, so no earlier run is overwritten."""
    base = Path(root) / (name or "multiframe")
    if resume or not base.exists() or not any(base.iterdir()):
        return base
    n = 2
    while (candidate := base.with_name(f"{base.name}-{n}")).exists() and any(candidate.iterdir()):
        n += 1
    return candidate


def multiframe_infotext(params: MultiFrameParams) -> str:
    """The job's settings as one infotext value (``Multi-frame: "mode: filmstrip, …"``)."""
    pairs = {"mode": params.mode.value, "first_denoise": params.first_denoise}
    if params.mode.strip:
        pairs.update(third_frame=params.third_frame.value, loopback_source=params.loopback_source.value)
    if params.color_correction:
        pairs["color_strength"] = params.color_strength
    pairs["seed_mode"] = params.seed_mode.value
    if params.deflicker is not DeflickerMode.NONE:
        pairs.update(deflicker=params.deflicker.value, deflicker_window=params.deflicker_window)
    return ", ".join(f"{k}: {v}" for k, v in pairs.items())


def save_frame_png(path: Path, image: np.ndarray, text: str) -> Path:
    """``image`` (``(H, W, 3|4)`` uint8) as PNG with ``text`` in its ``parameters`` chunk (A1111's PNG
    Info), written atomically (:func:`lib_vidsd.video.writer.write_png`)."""
    from ..video.writer import write_png

    return write_png(path, image, text)


class MultiFrameJob:
    """One multi-frame rendering job.

    ``source`` gives the input frames (already fitted to the generation size), ``render`` runs one
    :class:`RenderRequest`. ``prompt``, ``seed`` and ``denoise`` (the strength of every frame but the
    first) are the host's own generation settings; ``seed`` must be resolved (not -1). ``masks``
    pairs a user mask with each frame. ``infotext`` is written into each PNG: a string, a callable
    of the request, or ``None`` for a short default. ``interp_model`` is the loaded FILM/RIFE network
    when ``params.interp`` needs one. ``progress`` gets (frames done, frames total, text);
    ``stop`` is checked before and after each frame: a stop request raises
    :class:`~lib_vidsd.errors.Interrupted` (finished frames stay, no video is written), a skip
    request ends the clip at the frames finished so far and writes the videos from them. A frame
    whose render was cut short by either is not saved.

    :meth:`run` is the whole job; a host that runs the loop itself (A1111's img2img batch tab, one
    image per call) uses :meth:`begin`, :meth:`step` per frame and :meth:`finish`, with the same
    results.
    """

    def __init__(
        self,
        params: MultiFrameParams,
        render: Renderer,
        *,
        source: FrameSource,
        out_dir: str | Path,
        prompt: str = "",
        seed: int = 0,
        denoise: float = 0.75,
        masks: MaskSet | None = None,
        infotext: Infotext = None,
        interp_model: Any = None,
        progress: ProgressSink | None = None,
        stop: StopToken | None = None,
    ):
        if not 0 <= seed < 2**32:
            raise ConfigError("seed", seed, "0..4294967295 (resolve -1 before the job)")
        if not 0.0 <= denoise <= 1.0:
            raise ConfigError("denoising_strength", denoise, "0..1")
        if source.count == 0:
            raise ConfigError("start", params.start, "a frame range holding at least one frame of the input")
        self.params, self.render, self.source = params, render, source
        self.out_dir = Path(out_dir)
        self.seed, self.denoise, self.masks = seed, denoise, masks
        self.width, self.height = source.size
        self.prompts = FramePrompts(prompt, params.frame_prompts, source.count)
        self.infotext = infotext
        self.interp_model = interp_model
        self.progress = progress or null_progress
        self.stop = stop
        self.fps = source.fps
        self._check_interpolation()
        self.deflicker = option_settings(params.deflicker, params.deflicker_window)
        check_frame_size(self.deflicker, self.width, self.height)
        self._outputs: dict[int, np.ndarray] = {}  # RGB outputs still needed as references
        self.result: MultiFrameResult | None = None  # from begin()
        self._start, self._replays, self._ended = 0, [], False

    # --- checks before anything runs ---------------------------------------------------------

    def _check_interpolation(self) -> None:
        p = self.params
        if p.interp.value == "none" or not p.format:
            return
        from ..interpolate import METHODS

        if METHODS[p.interp.value].needs_model and self.interp_model is None:
            raise ConfigError(
                "interp_model", p.interp_model or None, f"weights for {p.interp.value} (none were loaded)"
            )
        if self.fps * p.interp_x > MAX_FPS:
            top = int(MAX_FPS // self.fps)
            allowed = f"2..{top}" if top >= 2 else "no interpolation (even ×2 goes over the limit)"
            raise ConfigError("interp_x", p.interp_x, f"{allowed} at {self.fps:g} fps (at most {MAX_FPS:g} fps)")

    def _prepare_folder(self) -> int:
        """Create the folder; the index of the first frame to render (0 unless resuming)."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        done = finished_frames(self.out_dir)
        has_frames = any(FRAME_FILE.match(p.name) for p in self.out_dir.iterdir())
        if has_frames and not self.params.resume:
            hint = f"{self.out_dir} already holds frames of a job; resume it or choose another output_name"
            raise ConfigError("resume", False, "true to continue those frames", hint)
        for stale in (p for p in self.out_dir.iterdir() if _STALE_PART.match(p.name)):
            stale.unlink(missing_ok=True)  # left by a process killed mid-write
        return done

    # --- the loop ----------------------------------------------------------------------------

    def run(self) -> MultiFrameResult:
        """The whole job: :meth:`begin`, :meth:`step` for each frame of the source, :meth:`finish`."""
        self.begin()
        for frame in self.source:
            if not self.step(frame):
                break
        return self.finish()

    # --- frame by frame (the host runs the loop) -----------------------------------------------

    def begin(self) -> MultiFrameResult:
        """Prepare the folder (resume reads the finished frames there) and start the job's result.

        Then give the frames to :meth:`step` in order (``index`` 0, 1, …) and end with :meth:`finish`.
        This is :meth:`run` with the loop left to the host: A1111's img2img batch tab hands the
        script one image per call."""
        start = self._prepare_folder()
        if start:
            log.info("resuming %s from frame %d", self.out_dir, start)
        self._start = start
        self._replays = []
        self.result = MultiFrameResult(self.out_dir, [], fps=self.fps)
        self._ended = False
        return self.result

    def step(self, frame: InputFrame) -> bool:
        """Render ``frame`` (the next one: its ``index`` is the number of frames given so far) and
        save it, or take it from the folder when a resumed job finished it before. ``False`` when a
        skip request ended the clip (the frame is not saved; give no more frames, call
        :meth:`finish`). A stop request raises :class:`~lib_vidsd.errors.Interrupted`."""
        result, k = self.result, frame.index
        if result is None:
            raise VidsdError("begin() the job before giving it frames")
        if self._ended:
            raise VidsdError(f"frame {k + 1} given after the clip ended")
        if k != len(result.frames):
            raise VidsdError(f"frame {k + 1} given out of order (frame {len(result.frames) + 1} comes next)")
        total = max(self.source.count, k + 1)
        if k < self._start:
            result.frames.append(frame_path(self.out_dir, k))
            if self.params.mode.cross_frame and k in (0, self._start - 1):
                self._replays.append(frame)
            self.progress(k + 1, total, f"frame {k + 1}/{total} (done before)")
            return True
        if self._halted(f"before frame {k + 1}"):
            return self._end_early()
        for old in self._replays:
            self._call(self.request(old, replay=True))
        self._replays.clear()
        request = self.request(frame)
        image = self._call(request)
        if self._halted(f"after frame {k + 1}"):  # the render may have been cut short: not saved
            return self._end_early()
        result.frames.append(self._save(frame, request, self._finish(request, image)))
        result.rendered += 1
        self.progress(k + 1, total, f"frame {k + 1}/{total}")
        return True

    def _end_early(self) -> bool:
        self.result.complete = False
        self._ended = True
        return False

    def finish(self) -> MultiFrameResult:
        """The clip's deflicker pass and videos from the frames given so far; the job's result.
        Nothing is written when a skip ended the clip before its first frame."""
        result = self.result
        if result is None:
            raise VidsdError("begin() the job before finishing it")
        self._ended = True
        if not result.frames:
            if not result.complete:
                return result
            raise ConfigError("start", self.params.start, "a frame range holding at least one frame of the input")
        result.deflickered = self._deflicker(result.frames)
        result.videos, result.fps = self._write_videos(result.final_frames)
        return result

    def _halted(self, where: str) -> bool:
        """``True`` when the user asked to skip; raises :class:`Interrupted` when they asked to stop."""
        check_stop(self.stop, where)
        return self.stop is not None and self.stop.skip_requested()

    # --- one frame ---------------------------------------------------------------------------

    def request(self, frame: InputFrame, *, replay: bool = False) -> RenderRequest:
        """The generation for ``frame``: alone (frame 0, cross_frame mode) or as a strip."""
        p, k = self.params, frame.index
        user_mask = self.masks.for_frame(frame) if self.masks is not None else None
        common = {
            "index": k,
            "height": self.height,
            "prompt": self.prompts[k],
            "seed": frame_seed(p.seed_mode, self.seed, k),
            "cross_frame": p.mode.cross_frame,
            "first": k == 0,
            "replay": replay,
        }
        if k == 0 or not p.mode.strip:
            mask = None if user_mask is None else Image.fromarray(user_mask)
            strength = p.first_denoise if k == 0 else self.denoise
            return RenderRequest(
                image=Image.fromarray(frame.image), mask=mask, width=self.width, denoising_strength=strength, **common
            )
        right = self._third_cell(frame)
        cells = 2 if right is None else 3
        strip = build_strip(self._loopback_cell(frame), frame.image, right)
        mask = strip_mask(self.width, self.height, cells, user_mask)
        return RenderRequest(
            image=Image.fromarray(strip),
            mask=Image.fromarray(mask),
            width=self.width * cells,
            denoising_strength=self.denoise,
            cells=cells,
            **common,
        )

    def _loopback_cell(self, frame: InputFrame) -> np.ndarray:
        source = self.params.loopback_source
        if source is LoopbackSource.INPUT_FRAME:
            return frame.image
        if source is LoopbackSource.FIRST_GEN:
            return self.output(0)
        return self.output(frame.index - 1)

    def _third_cell(self, frame: InputFrame) -> np.ndarray | None:
        third = self.params.third_frame
        if third is ThirdFrame.NONE:
            return None
        if third is ThirdFrame.ORIGINAL_IMG:
            return frame.image
        if third is ThirdFrame.HISTORICAL and frame.index >= 2:
            return self.output(frame.index - 2)
        return self.output(0)  # FirstGen, and Historical before there are two outputs

    def output(self, index: int) -> np.ndarray:
        """The RGB output of frame ``index``: kept from this run, or read back from the folder."""
        if index not in self._outputs:
            path = frame_path(self.out_dir, index)
            with Image.open(path) as img:
                rgb = to_rgb(img.convert("RGB"))
            if rgb.shape[:2] != (self.height, self.width):
                size = f"{rgb.shape[1]}x{rgb.shape[0]}"
                raise ConfigError("resume", True, f"frames of {self.width}x{self.height}", f"{path.name} is {size}")
            self._outputs[index] = rgb
        return self._outputs[index]

    def _call(self, request: RenderRequest) -> np.ndarray:
        """Run the renderer; its result as RGB at the request's size (resized if the host changed it)."""
        image = self.render(request)
        if image is None:
            raise VidsdError(f"the renderer returned no image for frame {request.index + 1}")
        if not isinstance(image, Image.Image):
            image = Image.fromarray(to_rgb(image))
        if image.size != (request.width, request.height):
            log.warning("frame %d came back %dx%d, resized to the request", request.index, *image.size)
            image = image.convert("RGB").resize((request.width, request.height), Image.LANCZOS)
        return to_rgb(image)

    def _finish(self, request: RenderRequest, image: np.ndarray) -> np.ndarray:
        """The frame cut out of the strip and colour-matched to the first output."""
        if request.cells > 1:
            image = crop_centre(image, self.width, self.height)
        p = self.params
        if p.color_correction and request.index > 0:
            image = match_histograms_lab(image, self.output(0), p.color_strength)
        return image

    def _save(self, frame: InputFrame, request: RenderRequest, image: np.ndarray) -> Path:
        k = frame.index
        pixels = attach_alpha(image, frame.alpha) if self.params.keep_alpha else image
        path = save_frame_png(frame_path(self.out_dir, k), pixels, self._infotext(request))
        self._outputs[k] = image
        for old in [i for i in self._outputs if i not in (0, k - 1, k)]:
            del self._outputs[old]  # the next frame needs only the first, previous and historical outputs
        return path

    def _infotext(self, request: RenderRequest) -> str:
        if callable(self.infotext):
            return self.infotext(request)
        if isinstance(self.infotext, str):
            return self.infotext
        settings = f"{multiframe_infotext(self.params)}, frame: {request.index}"
        pairs = (
            f"Seed: {request.seed}, Denoising strength: {request.denoising_strength}, "
            f'Size: {self.width}x{self.height}, Multi-frame: "{settings}"'
        )
        return f"{request.prompt}\n{pairs}"

    # --- deflicker ----------------------------------------------------------------------------

    def _deflicker(self, frames: Sequence[Path]) -> list[Path]:
        """The rendered ``frames`` deflickered (guided by the same source frames) into
        :data:`DEFLICKER_DIR`; their paths, or ``[]`` when deflicker is off."""
        if self.deflicker is None:
            return []
        n = len(frames)
        guide = [frame.image for frame in islice(self.source, n)]
        if len(guide) != n:
            raise VidsdError(f"the source gave {len(guide)} frames on a second reading, not {n}")
        rendered = [_read_rgb(f) for f in frames]

        def progress(done: int, total: int | None, text: str = "") -> None:
            self.progress(done, total, "deflicker (patch matches)")

        smooth = run_deflicker(rendered, self.deflicker, guide=guide, progress=progress, stop=self.stop)
        folder = self.out_dir / DEFLICKER_DIR
        folder.mkdir(exist_ok=True)
        written = []
        for k, (source, image) in enumerate(zip(frames, smooth, strict=True)):
            with Image.open(source) as img:
                text = img.info.get("parameters", "")
                alpha = np.asarray(img.getchannel("A")) if img.mode == "RGBA" else None
            written.append(save_frame_png(frame_path(folder, k), attach_alpha(image, alpha), text))
        for stale in folder.iterdir():  # from an earlier, longer run, or a process killed mid-write
            m = FRAME_FILE.match(stale.name)
            if (m and int(m.group(1)) >= n) or _STALE_PART.match(stale.name):
                stale.unlink(missing_ok=True)
        return written

    # --- the videos --------------------------------------------------------------------------

    def _write_videos(self, frames: Sequence[Path]) -> tuple[list[Path], float]:
        p = self.params
        if not p.format:
            return [], self.fps
        fps = self.fps
        clip: Sequence[np.ndarray] | None = None
        if p.interp.value != "none":
            from ..interpolate import interpolate

            clip = interpolate(
                [_read_rgb(f) for f in frames], p.interp_x, p.interp.value, self.interp_model, stop=self.stop
            )
            fps = self.fps * p.interp_x
        total = len(clip) if clip is not None else len(frames)
        comment = self._infotext_of_first(frames[0])
        videos = []
        for fmt in p.format:
            target = self.out_dir / f"{self.out_dir.name}{VIDEO_SUFFIX[fmt]}"
            pictures = clip if clip is not None else _read_all(frames)
            videos.append(
                write_video(
                    pictures,
                    target,
                    fps=fps,
                    format=fmt.value,
                    loop=p.loop,
                    comment=comment,
                    total=total,
                    stop=self.stop,
                )
            )
        return videos, fps

    @staticmethod
    def _infotext_of_first(path: Path) -> str | None:
        with Image.open(path) as img:
            return img.info.get("parameters")


def _read_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return to_rgb(img.convert("RGB"))


def _read_all(paths: Sequence[Path]) -> Iterator[np.ndarray]:
    for path in paths:
        yield _read_rgb(path)
