"""A stylisation job's input: the source frames (read whole: every step runs over the whole clip),
their rate, the audio to keep, and the reference images.

Reading goes through :mod:`lib_vidsd.multiframe.sources` (videos, base64 uploads, folders inside
configured roots, frame selection and fitting); this module only collects the frames and keeps the
temporary file of a base64 upload alive until the job is done (its audio is muxed at the end).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..config import FitMode, StylizeParams
from ..errors import ConfigError, DecodeError
from ..multiframe.sources import FrameSource, decode_base64, input_kind, open_folder, open_source
from ..video import fit_frame, to_rgb

log = logging.getLogger("vidsd.stylize.inputs")

__all__ = ["StylizeInput", "decode_references", "read_stylize_input"]


@dataclass
class StylizeInput:
    """The fitted source frames (``uint8 (H, W, 3)`` RGB, in order), the output rate ``fps``
    (``params.fps``, else the source's rate divided by ``every``), and ``audio_source``: the input video
    when it has an audio track and ``keep_audio`` is set (a base64 upload's temporary file lives until
    :meth:`cleanup`, so finish the job first). A context manager."""

    frames: list[np.ndarray]
    fps: float
    audio_source: Path | None = None
    _source: FrameSource | None = field(default=None, repr=False)

    def cleanup(self) -> None:
        """Remove temporary files (a base64 upload). Idempotent."""
        if self._source is not None:
            self._source.close()
            self._source = None

    def __enter__(self) -> StylizeInput:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.cleanup()


def _audio_of(source: FrameSource, keep: bool) -> Path | None:
    if not keep or source.path is None:
        return None
    from ..video import probe

    try:
        info = probe(source.path)
    except DecodeError:
        return None
    if info.kind != "video" or not info.has_audio:
        log.info("keep_audio: %s has no audio track", source.path.name)
        return None
    return source.path


def read_stylize_input(
    params: StylizeParams,
    *,
    size: tuple[int, int],
    video_path: str | Path | None = None,
    roots: Sequence[Path] = (),
) -> StylizeInput:
    """Every selected source frame, fitted to ``size`` (width, height).

    The input is ``video_path`` (a local video file, or a folder of images, from the host: the WebUI's
    upload, the CLI's path) or exactly one of ``params.input_video`` (base64), ``input_frames`` (base64
    images) and ``input_dir`` (a folder name inside ``roots``). Errors are :class:`ConfigError` naming
    the field.
    """
    if video_path is not None and Path(video_path).is_dir():
        input_kind(params, video_path)  # one input only
        source = open_folder(Path(video_path), params, size)
    else:
        source = open_source(params, size=size, roots=roots, video_path=video_path)
    try:
        frames = [frame.image for frame in source]
        if not frames:
            raise ConfigError("start", params.start, "a frame range holding at least one frame of the input")
        return StylizeInput(frames, float(source.fps), _audio_of(source, params.keep_audio), source)
    except BaseException:
        source.close()
        raise


def _reference_image(text: str, index: int, size: tuple[int, int], fit: FitMode) -> np.ndarray:
    name = f"reference_images[{index}]"
    data = decode_base64(text, field=name)
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            rgb = to_rgb(img.convert("RGB"))
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise ConfigError(name, f"{text[:32]}…", "a base64 image PIL can read (PNG, JPEG, WEBP…)", str(e)) from e
    return fit_frame(rgb, size, fit)


def decode_references(params: StylizeParams, size: tuple[int, int]) -> list[np.ndarray]:
    """``params.reference_images`` (base64 or data URLs) as ``uint8 (H, W, 3)`` RGB fitted to ``size``
    like the frames; errors name ``reference_images[i]``."""
    return [_reference_image(text, i, size, params.fit) for i, text in enumerate(params.reference_images or [])]
