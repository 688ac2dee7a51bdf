"""The end of a stylisation job: post deflicker, contrast/sharpness, PNG frames and videos.

Whatever renders the frames (A1111's img2img script, :mod:`lib_vidsd.pipelines.stylize`) hands them
to :meth:`StylizeJob.finish`, which

1. deflickers them with the source frames as guide (``post_deflicker``, ``post_window``,
   ``patch_size``, ``guide_weight``; ``none`` skips it) — DiffSynth's ``post_smoother``;
2. applies ``contrast`` and ``sharpness`` (also without deflicker);
3. writes ``frame_00000.png``, ``frame_00001.png``… (infotext in each PNG's ``parameters`` chunk);
4. writes the videos of ``params.format`` (optionally interpolated ``interp_x`` times, the duration
   kept; the source's audio muxed into MP4/WEBM with ``keep_audio``).

Every file is written to a temporary name and renamed. Settings that cannot work (interpolation weights
missing, a frame rate over the limit) are refused when the job is made, before anything renders.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..config import MAX_FPS, DeflickerMode, MultiFrameVideo, StylizeParams
from ..errors import ConfigError
from ..progress import ProgressSink, StopToken, check_stop, null_progress
from ..video import to_rgb, write_video

log = logging.getLogger("vidsd.stylize.job")

__all__ = ["StylizeJob", "StylizeResult", "frame_file", "stylize_infotext"]

VIDEO_SUFFIX = {
    MultiFrameVideo.GIF: ".gif",
    MultiFrameVideo.MP4: ".mp4",
    MultiFrameVideo.WEBM: ".webm",
    MultiFrameVideo.WEBP: ".webp",
    MultiFrameVideo.APNG: ".apng",
}
_AUDIO_FORMATS = (MultiFrameVideo.MP4, MultiFrameVideo.WEBM)
#: Fields of :class:`StylizeParams` shown in the infotext (inputs and output naming are left out).
INFOTEXT_FIELDS = (
    "combine_pattern",
    "chunk_size",
    "fixed_noise",
    "smoother",
    "smoother_interval",
    "smoother_ignore_last",
    "smoother_window",
    "post_deflicker",
    "post_window",
    "patch_size",
    "guide_weight",
    "contrast",
    "sharpness",
    "every",
)


def frame_file(out_dir: Path, index: int) -> Path:
    return Path(out_dir) / f"frame_{index:05d}.png"


def stylize_infotext(params: StylizeParams) -> str:
    """The job's settings as one infotext value: ``combine_pattern: -10000 -1 0 1, smoother: fast, …``
    (A1111 shows it under ``Video stylisation``; commas inside values are replaced so the value stays
    one ``key: value`` list)."""
    parts = []
    for name in INFOTEXT_FIELDS:
        value = getattr(params, name)
        value = getattr(value, "value", value)
        if name == "combine_pattern":
            value = " ".join(str(value).replace(",", " ").split())
        parts.append(f"{name}: {value}")
    return ", ".join(parts)


@dataclass
class StylizeResult:
    """What :meth:`StylizeJob.finish` wrote: the final ``frames`` (RGB), their ``frame_paths``, the
    ``videos`` and the videos' ``fps`` (times ``interp_x`` when interpolated)."""

    frames: list[np.ndarray]
    frame_paths: list[Path] = field(default_factory=list)
    videos: list[Path] = field(default_factory=list)
    fps: float = 0.0


class StylizeJob:
    """The output side of one stylisation job (see the module docstring).

    ``source``: the source frames (the deflicker's guide; the rendered frames must match them in count
    and size); ``fps``: the output rate; ``audio_from``: a video whose audio MP4/WEBM outputs get when
    ``keep_audio`` is set; ``infotext``: written into every PNG and the videos' comment;
    ``interp_model_dir``: the folder of FILM/RIFE weights (``interp`` film/rife); ``seed``: the
    deflicker's random search. ``progress(done, total, text)``; ``stop`` raises
    :class:`~lib_vidsd.errors.Interrupted` between stages.
    """

    def __init__(
        self,
        params: StylizeParams,
        *,
        out_dir: str | Path,
        source: Sequence[np.ndarray],
        fps: float,
        audio_from: str | Path | None = None,
        infotext: str = "",
        interp_model_dir: str | Path | None = None,
        progress: ProgressSink | None = None,
        stop: StopToken | None = None,
        seed: int = 0,
    ):
        if not source:
            raise ConfigError("start", params.start, "a frame range holding at least one frame of the input")
        if not fps or fps <= 0 or fps > MAX_FPS:
            raise ConfigError("fps", fps, f"0 < fps <= {MAX_FPS:g}")
        self.params = params
        self.out_dir = Path(out_dir)
        self.source = [to_rgb(f) for f in source]
        self.fps = float(fps)
        self.audio_from = Path(audio_from) if audio_from is not None and params.keep_audio else None
        self.infotext = infotext
        self.progress = progress or null_progress
        self.stop = stop
        self.seed = seed
        self._interp_weights = self._check_interpolation(interp_model_dir)

    def _check_interpolation(self, folder: str | Path | None) -> Path | None:
        p = self.params
        if p.interp.value == "none" or not p.format:
            return None
        if self.fps * p.interp_x > MAX_FPS:
            top = int(MAX_FPS // self.fps)
            allowed = f"2..{top}" if top >= 2 else "no interpolation (even ×2 goes over the limit)"
            raise ConfigError("interp_x", p.interp_x, f"{allowed} at {self.fps:g} fps (at most {MAX_FPS:g} fps)")
        from ..interpolate import METHODS

        if not METHODS[p.interp.value].needs_model:
            return None
        from ..interpolate.weights import find_weights

        return find_weights(p.interp.value, p.interp_model, [folder] if folder is not None else [])

    # --- the stages ----------------------------------------------------------------------------

    def finish(self, rendered: Sequence[Any]) -> StylizeResult:
        """Post-process ``rendered`` (one uint8 RGB frame per source frame) and write everything."""
        frames = [to_rgb(f) for f in rendered]
        if len(frames) != len(self.source) or frames[0].shape != self.source[0].shape:
            got = f"{len(frames)} frames of {frames[0].shape if frames else '?'}"
            raise ConfigError("frames", got, f"{len(self.source)} frames of {self.source[0].shape} (like the source)")
        frames = self.postprocess(frames)
        check_stop(self.stop, "before saving the frames")
        paths = self._save_frames(frames)
        videos, fps = self._write_videos(frames)
        return StylizeResult(frames, paths, videos, fps)

    def postprocess(self, frames: list[np.ndarray]) -> list[np.ndarray]:
        """Post deflicker (guided by the source frames), then contrast and sharpness."""
        p = self.params
        if p.post_deflicker is not DeflickerMode.NONE:
            from ..consistency.deflicker import deflicker

            return deflicker(
                frames,
                guide=self.source,
                mode=p.post_deflicker.value,
                window=p.post_window,
                patch_size=p.patch_size,
                guide_weight=p.guide_weight,
                contrast=p.contrast,
                sharpness=p.sharpness,
                seed=self.seed,
                progress=self.progress,
                stop=self.stop,
            )
        if p.contrast != 1.0 or p.sharpness != 1.0:
            from ..consistency.deflicker import postprocess

            return [postprocess(f, contrast=p.contrast, sharpness=p.sharpness) for f in frames]
        return frames

    def _save_frames(self, frames: list[np.ndarray]) -> list[Path]:
        from ..multiframe.job import save_frame_png

        self.out_dir.mkdir(parents=True, exist_ok=True)
        paths = []
        for k, frame in enumerate(frames):
            paths.append(save_frame_png(frame_file(self.out_dir, k), frame, self.infotext))
            self.progress(k + 1, len(frames), f"saved frame {k + 1}/{len(frames)}")
        return paths

    def _write_videos(self, frames: list[np.ndarray]) -> tuple[list[Path], float]:
        p = self.params
        if not p.format:
            return [], self.fps
        clip: Sequence[np.ndarray] = frames
        fps = self.fps
        if p.interp.value != "none":
            from ..interpolate import interpolate

            clip = interpolate(frames, p.interp_x, p.interp.value, self._interp_model(), stop=self.stop)
            fps = self.fps * p.interp_x
        videos = []
        for fmt in p.format:
            check_stop(self.stop, f"before writing {fmt.value}")
            extra: dict[str, Any] = {}
            if self.audio_from is not None and fmt in _AUDIO_FORMATS:
                extra["audio_from"] = str(self.audio_from)
            target = self.out_dir / f"{self.out_dir.name}{VIDEO_SUFFIX[fmt]}"
            videos.append(
                write_video(
                    clip,
                    target,
                    fps=fps,
                    format=fmt.value,
                    loop=p.loop,
                    comment=self.infotext or None,
                    stop=self.stop,
                    **extra,
                )
            )
        return videos, fps

    def _interp_model(self) -> Any:
        if self._interp_weights is None:
            return None
        import torch

        from ..interpolate.weights import load_network

        device = "cuda" if torch.cuda.is_available() else "cpu"
        return load_network(self.params.interp.value, self._interp_weights, device=device, half=device == "cuda")
