"""Writing an AnimateDiff result where A1111 writes its images, and what the gallery/API get back.

Files go to ``<outpath_samples>/AnimateDiff/<YYYY-MM-DD>/`` named ``NNNNN-<seed>[-<request_id>]``
(A1111's sequence numbering), each written atomically by ``lib_vidsd.video``.
"""

from __future__ import annotations

import base64
import datetime
from pathlib import Path

import numpy as np

from lib_vidsd.video import write_video
from lib_vidsd.video.writer import write_text

VIDEO_FORMATS = {"GIF": ("gif", ".gif"), "MP4": ("mp4", ".mp4"), "WEBP": ("webp", ".webp"), "WEBM": ("webm", ".webm")}


def output_folder(p) -> Path:
    return Path(p.outpath_samples) / "AnimateDiff" / datetime.date.today().isoformat()


def _settings() -> dict:
    from modules import shared

    opts = shared.opts.data
    return {
        "gif_palette": bool(opts.get("vidsd_gif_palette", True)),
        "gif_optimize": bool(opts.get("vidsd_gif_optimize", False)),
        "webp_quality": int(opts.get("vidsd_webp_quality", 80)),
        "webp_lossless": bool(opts.get("vidsd_webp_lossless", False)),
        "mp4_crf": int(opts.get("vidsd_mp4_crf", 23)),
        "mp4_preset": str(opts.get("vidsd_mp4_preset", "medium")),
    }


class _Stop:
    """``shared.state``'s interrupt as the core's stop token (a skip does not cut a deflicker short)."""

    def stop_requested(self) -> bool:
        from modules import shared

        return bool(shared.state.interrupted)

    def skip_requested(self) -> bool:
        return False


def deflicker_frames(params, frames: list) -> list:
    """The animation's frames (PIL images) after the ``deflicker`` option: unchanged when it is
    ``none``, else deflickered with the frames as their own guide and ``deflicker_window`` frames on
    each side (every other setting a ``DeflickerParams`` default), as PIL images. Runs on the sampled
    frames, before closed-loop playback and interpolation (:func:`finish_frames`). Raises
    ``Interrupted`` (a ``VidsdError``) when the user interrupts it."""
    from lib_vidsd.config import DeflickerMode

    if params.deflicker is DeflickerMode.NONE or len(frames) < 2:
        return frames
    from PIL import Image

    from lib_vidsd.consistency.outputs import deflicker_option

    smooth = deflicker_option(frames, params.deflicker, params.deflicker_window, stop=_Stop())
    return [Image.fromarray(f) for f in smooth]


def finish_frames(params, frames: list) -> list:
    """What the saved animation shows: with closed loop A on a clip no longer than the context, the
    frames played back (sd-webui-animatediff's reverse append, ends not repeated); then frame
    interpolation ×``interp_x`` when ``interp`` is not Off."""
    if params.closed_loop.value == "A" and (params.video_length or params.batch_size) <= params.batch_size:
        frames = frames + frames[-2:0:-1]
    if params.interp.value != "Off" and len(frames) > 1:
        from lib_vidsd.interpolate import interpolate

        from .models import load_vfi

        model = load_vfi(params.interp.method, params.interp_model)
        frames = interpolate(frames, params.interp_x, method=params.interp.method, model=model)
    return frames


def save(p, frames: list, params, infotext: str, seed: int) -> list[Path]:
    """Write one animation in every requested format; returns the files (video files first)."""
    from modules import images

    folder = output_folder(p)
    folder.mkdir(parents=True, exist_ok=True)
    number = images.get_next_sequence_number(str(folder), "")
    stem = f"{number:05}-{seed}" + (f"-{params.request_id}" if params.request_id else "")
    arrays = finish_frames(
        params, [np.asarray(f.convert("RGB")) if hasattr(f, "convert") else np.asarray(f) for f in frames]
    )
    opts = _settings()
    formats = [f.value for f in params.format]
    written = []
    for name in formats:
        if name not in VIDEO_FORMATS:
            continue
        fmt, suffix = VIDEO_FORMATS[name]
        extra = {}
        if fmt == "gif":
            extra = {"gif_palette": opts["gif_palette"], "gif_optimize": opts["gif_optimize"]}
        elif fmt == "webp":
            extra = {"quality": opts["webp_quality"], "lossless": opts["webp_lossless"]}
        elif fmt == "mp4":
            extra = {"crf": opts["mp4_crf"], "preset": opts["mp4_preset"]}
        written.append(
            write_video(
                arrays,
                folder / f"{stem}{suffix}",
                fps=params.fps,
                loop=params.loop_number,
                format=fmt,
                comment=infotext,
                **extra,
            )
        )
    if "PNG" in formats:
        written.append(
            write_video(
                arrays, folder / f"{stem}-frames", fps=params.fps, format="png", frame_texts=[infotext] * len(arrays)
            )
        )
    if "TXT" in formats:
        written.append(write_text(folder / f"{stem}.txt", infotext + "\n"))
    return written


def encode_files(paths: list[Path]) -> list[str]:
    """Each file as base64 text: what sd-webui-animatediff clients read from the API's ``images``."""
    return [base64.b64encode(Path(path).read_bytes()).decode("ascii") for path in paths]
