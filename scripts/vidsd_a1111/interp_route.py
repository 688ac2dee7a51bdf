"""``POST /vidsd/v1/interpolate``: a video (or frames) in, the interpolated video out, all base64.

Nothing names a server path: the input arrives in the body, is written to a private temporary
folder, and that folder is removed when the answer is built. Sizes, frame counts and factors
have limits that answer 422 (413 for a body that is too large).
"""

from __future__ import annotations

import base64
import binascii
import math
import tempfile
from pathlib import Path

from lib_vidsd.errors import ConfigError

MAX_BYTES = 64 * 1024 * 1024
MAX_FRAMES_IN = 512
MAX_FRAMES_OUT = 4096
MAX_SIDE = 2048
FORMATS = {"mp4": ".mp4", "webm": ".webm", "gif": ".gif", "webp": ".webp"}


class TooLarge(ConfigError):
    """The request body is over :data:`MAX_BYTES`."""


def _decode(field: str, text) -> bytes:
    if not isinstance(text, str) or not text:
        raise ConfigError(field, type(text).__name__, "base64 text")
    if "," in text[:64] and text.startswith("data:"):
        text = text.split(",", 1)[1]
    if len(text) * 3 // 4 > MAX_BYTES:
        raise TooLarge(field, f"{len(text) * 3 // 4} bytes", f"at most {MAX_BYTES} bytes")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as e:
        raise ConfigError(field, text[:24] + "…", "base64 text") from e


def interpolate_request(body: dict) -> dict:
    """The route's work, without HTTP: validate, interpolate, encode. Raises ``ConfigError``."""
    from lib_vidsd.interpolate import METHODS, interpolate, interpolate_at, retime_positions
    from lib_vidsd.video import probe, read_video, write_video

    from .models import load_vfi

    if not isinstance(body, dict):
        raise ConfigError("body", type(body).__name__, "a JSON object")
    known = {"video", "frames", "method", "factor", "fps", "format", "loop", "source_fps", "model", "scene_threshold"}
    unknown = sorted(set(body) - known)
    if unknown:
        raise ConfigError(unknown[0], body[unknown[0]], f"known fields: {', '.join(sorted(known))}")
    method = body.get("method", "flow")
    if method not in METHODS:
        raise ConfigError("method", method, list(METHODS))
    model = load_vfi(method, str(body.get("model") or ""), field="model")  # a file name of the VFI folder
    fmt = body.get("format", "mp4")
    if fmt not in FORMATS:
        raise ConfigError("format", fmt, list(FORMATS))
    with tempfile.TemporaryDirectory(prefix="vidsd-interp-") as tmp:
        tmp = Path(tmp)
        if "video" in body:
            source = tmp / "input"
            source.write_bytes(_decode("video", body["video"]))
        elif "frames" in body:
            frames = body["frames"]
            if not isinstance(frames, list) or not 2 <= len(frames) <= MAX_FRAMES_IN:
                raise ConfigError(
                    "frames",
                    f"{len(frames) if isinstance(frames, list) else frames!r}",
                    f"a list of 2..{MAX_FRAMES_IN} base64 images",
                )
            source = tmp / "frames"
            source.mkdir()
            for i, item in enumerate(frames):
                (source / f"{i:05d}.png").write_bytes(_decode(f"frames[{i}]", item))
        else:
            raise ConfigError("video", None, "a base64 video, or 'frames': a list of base64 images")
        info = probe(source)
        if info.frame_count > MAX_FRAMES_IN:
            raise ConfigError("video", f"{info.frame_count} frames", f"at most {MAX_FRAMES_IN} frames")
        if max(info.width, info.height) > MAX_SIDE:
            raise ConfigError("video", f"{info.width}x{info.height}", f"sides up to {MAX_SIDE} px")
        src_fps = float(body.get("source_fps") or info.fps)
        factor, out_fps = _factor_and_fps(body, src_fps)
        frames_in = list(read_video(source))
        loop = bool(body.get("loop", False))
        common = {"loop": loop, "scene_threshold": body.get("scene_threshold")}
        if "fps" in body and body["fps"] is not None:  # retimed: same duration at the requested rate
            positions = retime_positions(len(frames_in), src_fps, out_fps, loop=loop)
            expected = len(positions)
        else:
            expected = len(frames_in) * factor if loop else (len(frames_in) - 1) * factor + 1
        if expected > MAX_FRAMES_OUT:
            field = "fps" if "fps" in body else "factor"
            raise ConfigError(
                field, body.get(field), f"at most {MAX_FRAMES_OUT} output frames (this would make {expected})"
            )
        if "fps" in body and body["fps"] is not None:
            frames_out = interpolate_at(frames_in, positions, method, model, **common)
        else:
            frames_out = interpolate(frames_in, factor, method, model, **common)
        target = tmp / f"output{FORMATS[fmt]}"
        write_video(frames_out, target, fps=out_fps)
        data = base64.b64encode(target.read_bytes()).decode("ascii")
    return {"video": data, "format": fmt, "frames": len(frames_out), "fps": out_fps, "method": method, "factor": factor}


def _factor_and_fps(body: dict, src_fps: float) -> tuple[int, float]:
    if "fps" in body and body["fps"] is not None:
        target = body["fps"]
        if not isinstance(target, (int, float)) or not 0 < target <= 240:
            raise ConfigError("fps", target, "a number in (0, 240]")
        factor = max(1, math.ceil(target / src_fps - 1e-9))
        return _check_factor(factor), float(target)
    factor = body.get("factor", 2)
    return _check_factor(factor), src_fps * factor


def _check_factor(factor) -> int:
    if isinstance(factor, bool) or not isinstance(factor, int) or not 1 <= factor <= 16:
        raise ConfigError("factor", factor, "a whole number 1..16")
    return factor
