"""From recorded step latents to frames on disk and a movie."""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from ..config import MAX_FPS, StepsAnimationParams, StepsCodec, StepsInterpolation, StepsResolution
from ..errors import ConfigError
from ..paths import inside
from ..progress import ProgressSink, StopToken, check_stop

log = logging.getLogger("vidsd.steps")

#: codec → (container format, ffmpeg codec name or None, file suffix)
CONTAINERS: dict[StepsCodec, tuple[str, str | None, str]] = {
    StepsCodec.H264: ("mp4", "h264", ".mp4"),
    StepsCodec.H265: ("mp4", "h265", ".mp4"),
    StepsCodec.AV1: ("mp4", "av1", ".mp4"),
    StepsCodec.VP9: ("webm", "vp9", ".webm"),
    StepsCodec.GIF: ("gif", None, ".gif"),
    StepsCodec.WEBP: ("webp", None, ".webp"),
}
#: GIF stores delays in hundredths of a second; below 2 most players slow down to 10
MAX_GIF_FPS = 50.0
SCALES = {StepsResolution.FULL: 1, StepsResolution.HALF: 2, StepsResolution.QUARTER: 4}

Decoder = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class MoviePlan:
    """``positions``: for each movie frame, the step it shows (fractions are interpolated);
    ``hold``: copies of the last frame appended; ``fps``: the movie's frame rate."""

    positions: list[float]
    hold: int
    fps: float

    @property
    def frames(self) -> int:
        return len(self.positions) + self.hold


@dataclass(frozen=True)
class StepsResult:
    steps: int  # recorded frames used (after skipping)
    movie: Path | None
    frames_dir: Path | None
    movie_frames: int
    fps: float


def movie_plan(count: int, params: StepsAnimationParams) -> MoviePlan:
    """How ``count`` recorded steps fill ``params.duration`` seconds, then ``params.hold`` seconds.

    Without interpolation each step is one frame at ``count / duration`` fps. With interpolation
    the movie runs at ``params.fps`` with ``round(duration * fps)`` frames spread evenly from the
    first step to the last (both shown exactly). Either way the movie's length is within one frame
    of the request.
    """
    if count < 1:
        raise ConfigError("skip_steps", params.skip_steps, "fewer than the steps recorded")
    limit = MAX_GIF_FPS if params.codec is StepsCodec.GIF else MAX_FPS
    if params.interpolation is StepsInterpolation.NONE:
        fps = count / params.duration
        if fps > limit:
            need = count / limit
            raise ConfigError(
                "duration", params.duration, f"at least {need:.3g} s for {count} steps at most {limit:g} fps"
            )
        positions = [float(i) for i in range(count)]
    else:
        fps = params.fps
        if fps > limit:
            raise ConfigError("fps", fps, f"at most {limit:g} for {params.codec.value}")
        total = max(1, round(params.duration * fps))
        if count == 1 or total == 1:
            positions = [float(count - 1)] * total
        else:
            positions = [j * (count - 1) / (total - 1) for j in range(total)]
    return MoviePlan(positions, round(params.hold * fps), fps)


def steps_movie_path(root: str | Path, params: StepsAnimationParams, stem: str) -> Path:
    """Where the movie of ``stem`` goes: ``root / movie_folder / stem.<ext>``, never outside ``root``."""
    suffix = CONTAINERS[params.codec][2]
    return inside(root, params.movie_folder, stem + suffix, field="movie_folder")


def _to_uint8(images: torch.Tensor, size: tuple[int, int]) -> list[np.ndarray]:
    """``[B, 3, h, w]`` floats 0..1 → ``(H, W, 3)`` uint8 arrays at ``size`` = (width, height)."""
    width, height = size
    if images.shape[-2:] != (height, width):
        shrink = images.shape[-1] > width
        mode = "area" if shrink else "bilinear"
        extra = {} if shrink else {"align_corners": False}
        images = torch.nn.functional.interpolate(images.float(), size=(height, width), mode=mode, **extra)
    data = (images.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    return list(data)


def decode_steps(
    latents: Sequence[torch.Tensor],
    decode: Decoder,
    size: tuple[int, int],
    *,
    batch: int = 4,
    progress: ProgressSink | None = None,
    stop: StopToken | None = None,
) -> list[np.ndarray]:
    """Decode ``[4, h, w]`` latents in batches; every picture is brought to ``size`` (width, height)
    (hires fix's first pass is smaller than its second)."""
    frames: list[np.ndarray] = []
    i = 0
    while i < len(latents):
        check_stop(stop, f"decoding step {i + 1} of {len(latents)}")
        shape = latents[i].shape
        group = [latents[i]]
        while len(group) < batch and i + len(group) < len(latents) and latents[i + len(group)].shape == shape:
            group.append(latents[i + len(group)])
        with torch.inference_mode():
            frames += _to_uint8(decode(torch.stack(group)), size)
        i += len(group)
        if progress is not None:
            progress(i, len(latents), "decoding steps")
    return frames


def render_steps(
    latents: Sequence[torch.Tensor],
    decode: Decoder,
    params: StepsAnimationParams,
    *,
    root: str | Path,
    stem: str,
    size: tuple[int, int],
    comment: str = "",
    prompt: str = "",
    interp_model: Any = None,
    progress: ProgressSink | None = None,
    stop: StopToken | None = None,
) -> StepsResult:
    """Decode the recorded ``latents`` (skipping ``params.skip_steps``), write them as numbered PNG
    frames in ``root / frames_folder / stem`` and, when asked, the movie ``root / movie_folder /
    stem.<ext>`` with title/comment/artist metadata. ``size`` is the final image's (width, height),
    divided by ``params.resolution``. Each file is written atomically; on failure, or once the movie
    exists, the frames are removed when ``delete_frames`` is set. ``interp_model`` is the loaded
    network for ``film``/``rife``.
    """
    from ..interpolate import interpolate_at
    from ..video import write_video

    used = list(latents[params.skip_steps :])
    if not used:
        raise ConfigError("skip_steps", params.skip_steps, f"fewer than the {len(latents)} steps recorded")
    scale = SCALES[params.resolution]
    out_size = (max(2, size[0] // scale), max(2, size[1] // scale))
    plan = movie_plan(len(used), params) if params.create_movie else None
    frames_dir = inside(root, params.frames_folder, stem, field="frames_folder")
    movie = steps_movie_path(root, params, stem) if params.create_movie else None
    keep_frames = not (params.delete_frames and params.create_movie)
    written_frames = False
    try:
        frames = decode_steps(used, decode, out_size, progress=progress, stop=stop)
        write_video(frames, frames_dir, format="png", frame_texts=[comment] * len(frames) if comment else None)
        written_frames = True
        if plan is None:
            return StepsResult(len(used), None, frames_dir, 0, 0.0)
        shown = frames
        if params.interpolation is not StepsInterpolation.NONE and len(frames) > 1:
            shown = interpolate_at(
                frames, plan.positions, params.interpolation.value, interp_model, progress=progress, stop=stop
            )
        shown = list(shown) + [shown[-1]] * plan.hold
        fmt, codec, _ = CONTAINERS[params.codec]
        movie.parent.mkdir(parents=True, exist_ok=True)
        write_video(
            shown,
            movie,
            fps=plan.fps,
            format=fmt,
            codec=codec,
            title=params.title or _title(prompt),
            comment=comment or None,
            artist=params.artist or None,
            stop=stop,
        )
    except BaseException:
        if written_frames and params.delete_frames:
            _remove_frames(frames_dir, root)
        raise
    if not keep_frames:
        _remove_frames(frames_dir, root)
    return StepsResult(len(used), movie, frames_dir if keep_frames else None, len(shown), plan.fps)


def _remove_frames(frames_dir: Path, root: str | Path) -> None:
    """Delete the frames, then the folders above them that are left empty (up to ``root``)."""
    shutil.rmtree(frames_dir, ignore_errors=True)
    top = Path(root).resolve()
    folder = frames_dir.parent
    while folder != top and top in folder.parents:
        try:
            folder.rmdir()  # only when empty
        except OSError:
            break
        folder = folder.parent


def _title(prompt: str) -> str:
    text = " ".join(prompt.split())
    return (text[:77] + "…") if len(text) > 78 else (text or "Steps animation")
