"""The keyframe-animation loop: frames rendered in plan order (in batches where allowed), written as they finish.

The host supplies a renderer: a callable that gets a :class:`KeyframeRequest` (one batch of
:class:`~lib_vidsd.keyframe.plan.FramePlan`, with init images for img2img frames) and returns one
image per frame. It slerps the text embeddings and keyframe noises itself (A1111 with its own
conditioning and RNG, :mod:`lib_vidsd.pipelines.keyframes` with diffusers) and, when the request
carries a :class:`~lib_vidsd.keyframe.LatentCoherence`, applies it at every denoising step.

Per frame the job picks the init image (mode ``none``: the host's init image or nothing; ``2d``: the
previous output moved by the frame's zoom/angle/translation, frame 0 as ``none``; ``video``: the
input video's frame), colour-matches the output to the first frame, and writes ``00000.png``… with
its infotext (atomically). An interrupt raises :class:`~lib_vidsd.progress.Interrupted` after the
finished frames are on disk; a skip ends the clip early (``complete=False``, videos of what was
done). ``resume`` continues a stopped animation in the same folder: the previous and the first
frames are read back; the coherence reference starts again from the first resumed frame.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch
from PIL import Image

from ..config import MAX_FPS, KeyframeMode, KeyframeParams
from ..errors import ConfigError, VidsdError
from ..multiframe.job import _STALE_PART, FRAME_FILE, VIDEO_SUFFIX, finished_frames, frame_path, save_frame_png
from ..progress import ProgressSink, StopToken, check_stop, null_progress
from ..video import to_rgb, write_video
from .coherence import LatentCoherence, match_colors
from .motion import warp2d
from .plan import AnimationPlan, FramePlan

log = logging.getLogger("vidsd.keyframe.job")

AUDIO_FORMATS = ("mp4", "webm")


@dataclass(frozen=True)
class KeyframeRequest:
    """One batch the host renders: ``frames`` share strength, CFG scale and kind.

    ``init_images``: ``uint8 (H, W, 3)`` RGB per frame for img2img, ``None`` for txt2img from noise.
    ``coherence``: apply it to the latent at every denoising step (batches of one frame then).
    """

    frames: tuple[FramePlan, ...]
    init_images: tuple[np.ndarray, ...] | None
    width: int
    height: int
    coherence: LatentCoherence | None = None

    @property
    def strength(self) -> float:
        return self.frames[0].strength

    @property
    def cfg_scale(self) -> float | None:
        return self.frames[0].cfg_scale


Renderer = Callable[[KeyframeRequest], Sequence[Any]]  # → one PIL image or uint8 array per frame
Infotext = Union[Callable[[FramePlan], str], None]


@dataclass
class KeyframeResult:
    """What a run wrote: the PNG ``frames`` in order, ``videos``, frames ``rendered`` in this run,
    the videos' ``fps`` and whether the animation is ``complete`` (``False`` after a skip)."""

    out_dir: Path
    frames: list[Path]
    videos: list[Path] = field(default_factory=list)
    rendered: int = 0
    fps: float = 0.0
    complete: bool = True


def keyframe_infotext(params: KeyframeParams) -> str:
    """The animation's main settings as one infotext value (``Keyframe animation: "mode: 2d, …"``)."""
    pairs: dict[str, Any] = {"mode": params.mode.value, "interpolation": params.interpolation.value}
    if params.fixed_latent:
        pairs["fixed_latent"] = True
    if params.coherence_scale:
        pairs["coherence"] = params.coherence_scale
    if params.color_match:
        pairs["color_match"] = params.color_match
    return ", ".join(f"{k}: {v}" for k, v in pairs.items())


def default_infotext(
    params: KeyframeParams, plan: AnimationPlan, width: int, height: int
) -> Callable[[FramePlan], str]:
    """The CLI's frame text: the frame's prompt (the key it travels from), seed, size, strength of
    img2img frames, and where it stands between two keys."""

    def text(frame: FramePlan) -> str:
        travel = f", to: {frame.prompt_b}, to seed: {frame.seed_b}, weight: {frame.weight:.4f}" if frame.travels else ""
        settings = f"{keyframe_infotext(params)}, frame: {frame.index}{travel}"
        pairs = f"Seed: {frame.seed}, Size: {width}x{height}, Keyframe animation: {_quote(settings)}"
        if plan.uses_init(frame.index):
            pairs = f"Denoising strength: {frame.strength}, " + pairs
        return f"{frame.prompt}\n{pairs}"

    return text


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class KeyframeJob:
    """One keyframe animation into ``out_dir``.

    Args:
        params: the animation's settings (formats, interpolation, colour match, coherence, resume…).
        plan: :func:`~lib_vidsd.keyframe.plan.plan_animation` of ``params``.
        render: the host's renderer (see the module docstring).
        size: ``(width, height)`` of every frame.
        init_image: RGB init image of mode ``none`` / frame 0 of ``2d`` (A1111's img2img tab).
        video: the input video's frames (``uint8 (H, W, 3)`` RGB at ``size``) for mode ``video``.
        audio_path: a local audio file muxed into MP4/WEBM videos when ``params.mux_audio``.
        batch_size: frames per render call where the plan allows batching.
        seed: seeds the coherence noise.
    """

    def __init__(
        self,
        params: KeyframeParams,
        plan: AnimationPlan,
        render: Renderer,
        *,
        out_dir: str | Path,
        size: tuple[int, int],
        init_image: np.ndarray | None = None,
        video: Iterator[np.ndarray] | Sequence[np.ndarray] | None = None,
        audio_path: str | Path | None = None,
        batch_size: int = 1,
        seed: int = 0,
        infotext: Infotext = None,
        interp_model: Any = None,
        progress: ProgressSink | None = None,
        stop: StopToken | None = None,
    ):
        self.params, self.plan, self.render = params, plan, render
        self.out_dir = Path(out_dir)
        self.width, self.height = size
        self.init_image = None if init_image is None else to_rgb(init_image)
        self.video = video
        self.audio_path = None if audio_path is None else Path(audio_path)
        self.batch_size = batch_size
        self.seed = seed
        self.infotext = infotext or default_infotext(params, plan, self.width, self.height)
        self.interp_model = interp_model
        self.progress = progress or null_progress
        self.stop = stop
        self._outputs: dict[int, np.ndarray] = {}
        if plan.mode is KeyframeMode.VIDEO and video is None:
            raise ConfigError("video", None, "an input video for mode 'video'")
        self._check_interpolation()

    def _check_interpolation(self) -> None:
        p = self.params
        if p.interp.value == "none" or not p.format:
            return
        from ..interpolate import METHODS

        if METHODS[p.interp.value].needs_model and self.interp_model is None:
            raise ConfigError(
                "interp_model", p.interp_model or None, f"weights for {p.interp.value} (none were loaded)"
            )
        if self.plan.fps * p.interp_x > MAX_FPS:
            top = int(MAX_FPS // self.plan.fps)
            allowed = f"2..{top}" if top >= 2 else "no interpolation (even ×2 goes over the limit)"
            raise ConfigError("interp_x", p.interp_x, f"{allowed} at {self.plan.fps:g} fps (at most {MAX_FPS:g} fps)")

    def _prepare_folder(self) -> int:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        has_frames = any(FRAME_FILE.match(p.name) for p in self.out_dir.iterdir())
        if has_frames and not self.params.resume:
            hint = f"{self.out_dir} already holds frames; resume it or choose another output_name"
            raise ConfigError("resume", False, "true to continue those frames", hint)
        for stale in (p for p in self.out_dir.iterdir() if _STALE_PART.match(p.name)):
            stale.unlink(missing_ok=True)
        return min(finished_frames(self.out_dir), self.plan.num_frames)

    # --- the loop ----------------------------------------------------------------------------

    def run(self) -> KeyframeResult:
        start = self._prepare_folder()
        if start:
            log.info("resuming %s from frame %d", self.out_dir, start)
        result = KeyframeResult(self.out_dir, [frame_path(self.out_dir, k) for k in range(start)], fps=self.plan.fps)
        coherence = self._coherence()
        video = self._video_frames(start)
        total = self.plan.num_frames
        for batch in self.plan.batches(self.batch_size, start=start, sequential=coherence is not None):
            if self._halted(f"before frame {batch[0].index + 1}"):
                result.complete = False
                break
            inits = self._init_images(batch, video)
            request = KeyframeRequest(tuple(batch), inits, self.width, self.height, coherence)
            images = self._call(request)
            if self._halted(f"after frame {batch[-1].index + 1}"):
                result.complete = False
                break
            for frame, image in zip(batch, images, strict=True):
                result.frames.append(self._save(frame, self._finish(frame, image)))
                result.rendered += 1
                self.progress(frame.index + 1, total, f"frame {frame.index + 1}/{total}")
        if result.frames:
            result.videos, result.fps = self._write_videos(result.frames)
        return result

    def _halted(self, where: str) -> bool:
        check_stop(self.stop, where)
        return self.stop is not None and self.stop.skip_requested()

    def _coherence(self) -> LatentCoherence | None:
        p = self.params
        if not (p.coherence_scale or p.coherence_noise):
            return None
        generator = torch.Generator().manual_seed(self.seed % 2**63)
        return LatentCoherence(
            p.coherence_scale,
            p.coherence_alpha,
            every=p.coherence_every,
            noise_level=p.coherence_noise,
            generator=generator,
        )

    def _video_frames(self, start: int) -> Iterator[np.ndarray] | None:
        if self.plan.mode is not KeyframeMode.VIDEO:
            return None
        frames = iter(self.video)
        for _ in range(start):
            next(frames, None)
        return frames

    def _init_images(self, batch: list[FramePlan], video: Iterator[np.ndarray] | None) -> tuple[np.ndarray, ...] | None:
        if not self.plan.uses_init(batch[0].index):
            return None
        out = []
        for frame in batch:
            if self.plan.mode is KeyframeMode.VIDEO:
                image = next(video, None)
                if image is None:
                    raise VidsdError(f"the input video ended before frame {frame.index + 1}")
                out.append(to_rgb(image))
            elif self.plan.mode is KeyframeMode.MOTION_2D and frame.index > 0:
                previous = self.output(frame.index - 1)
                out.append(warp2d(previous, **frame.motion(), border=self.params.border.value))
            else:
                if self.init_image is None:
                    raise ConfigError("init_image", None, "an init image for img2img frames")
                out.append(self.init_image)
        return tuple(out)

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

    def _call(self, request: KeyframeRequest) -> list[np.ndarray]:
        images = list(self.render(request) or [])
        if len(images) != len(request.frames):
            first = request.frames[0].index + 1
            raise VidsdError(
                f"the renderer returned {len(images)} images for {len(request.frames)} frames from {first}"
            )
        out = []
        for image in images:
            if not isinstance(image, Image.Image):
                image = Image.fromarray(to_rgb(image))
            if image.size != (self.width, self.height):
                image = image.convert("RGB").resize((self.width, self.height), Image.LANCZOS)
            out.append(to_rgb(image))
        return out

    def _finish(self, frame: FramePlan, image: np.ndarray) -> np.ndarray:
        p = self.params
        if p.color_match and frame.index > 0:
            image = match_colors(image, self.output(0), p.color_space.value, p.color_match)
        return image

    def _save(self, frame: FramePlan, image: np.ndarray) -> Path:
        k = frame.index
        path = save_frame_png(frame_path(self.out_dir, k), image, self.infotext(frame))
        self._outputs[k] = image
        for old in [i for i in self._outputs if i not in (0, k)]:
            del self._outputs[old]  # the next frame needs only the first and the previous output
        return path

    # --- the videos --------------------------------------------------------------------------

    def _write_videos(self, frames: Sequence[Path]) -> tuple[list[Path], float]:
        p = self.params
        fps = self.plan.fps
        if not p.format:
            return [], fps
        clip: Sequence[np.ndarray] | None = None
        if p.interp.value != "none" and len(frames) > 1:
            from ..interpolate import interpolate

            clip = interpolate(
                [_read_rgb(f) for f in frames], p.interp_x, p.interp.value, self.interp_model, stop=self.stop
            )
            fps *= p.interp_x
        total = len(clip) if clip is not None else len(frames)
        with Image.open(frames[0]) as img:
            comment = img.info.get("parameters")
        videos = []
        for fmt in p.format:
            target = self.out_dir / f"{self.out_dir.name}{VIDEO_SUFFIX[fmt]}"
            audio = self.audio_path if p.mux_audio and self.audio_path and fmt.value in AUDIO_FORMATS else None
            pictures = clip if clip is not None else (_read_rgb(f) for f in frames)
            options: dict[str, Any] = {"format": fmt.value, "loop": p.loop, "comment": comment}
            if audio is not None:
                options["audio_from"] = str(audio)
            videos.append(write_video(pictures, target, fps=fps, total=total, stop=self.stop, **options))
        return videos, fps


def _read_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return to_rgb(img.convert("RGB"))
