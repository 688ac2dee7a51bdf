"""``POST /vidsd/v1/deflicker``: a clip in (base64 video, base64 frames, or a name inside the input
folders), the deflickered video out as base64; ``GET /vidsd/v1/schema/deflicker``: the body's schema.

Body: exactly one of ``video`` (base64), ``frames`` (list of base64 images) or ``path`` (a video file
or folder of images named inside one of the folders in *Settings → Multi-frame input folders*);
optionally ``guide``, the footage the clip was made from, as an object with one of the same three
keys (read at the clip's size); the :class:`~lib_vidsd.config.DeflickerParams` fields (``mode``,
``window``, …); ``format`` (mp4, gif, webm, webp, apng; default mp4), ``fps`` (default: the input's)
and ``return_frames`` (also answer every frame as a base64 PNG). Answer: ``video`` (base64),
``format``, ``frames`` (the frame count, as many as came in), ``fps``, ``mode``, ``window`` and, when
asked, ``images``.

Nothing names a server path outside the roots: uploads are written to a private temporary folder,
removed when the answer is built. A bad value answers 422 naming the field (``guide.video`` for the
guide's), a body, clip or frame count over the limits 413/422. The work waits for A1111's queue lock,
so it never shares the GPU with a generation in progress.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lib_vidsd.config import MAX_FPS, DeflickerParams, validate
from lib_vidsd.errors import ConfigError, MediaError, VidsdError

MAX_BYTES = 128 * 1024 * 1024  # one clip (video, or all frames together), decoded
MAX_FRAMES = 1000
MAX_SIDE = 2048
MAX_PIXELS = 1 << 27  # frames × width × height of one clip (512 frames of 512×512)
MAX_BODY = 2 * (MAX_BYTES * 4 // 3) + 65536  # clip and guide as base64, plus the settings
FORMATS = {"mp4": ".mp4", "gif": ".gif", "webm": ".webm", "webp": ".webp", "apng": ".apng"}
SOURCES = ("video", "frames", "path")
ROUTE_FIELDS = (*SOURCES, "guide", "format", "fps", "return_frames")


class TooLarge(ConfigError):
    """Over a size limit: answered 413."""


def deflicker_request(body: Any, *, roots: Sequence[str | Path] = (), stop=None) -> dict:
    """The route's work, without HTTP: validate, read, deflicker, encode. ``roots`` are the folders a
    ``path`` may name something inside. Raises ``ConfigError`` (``TooLarge`` for size limits)."""
    from lib_vidsd.consistency.outputs import check_frame_size, run_deflicker
    from lib_vidsd.video import write_video

    if not isinstance(body, dict):
        raise ConfigError("body", type(body).__name__, "a JSON object")
    known = (*ROUTE_FIELDS, *DeflickerParams.__fields__)
    unknown = sorted(set(body) - set(known))
    if unknown:
        raise ConfigError(unknown[0], _short(body[unknown[0]]), f"known fields: {', '.join(known)}")
    settings = validate(DeflickerParams, {k: v for k, v in body.items() if k in DeflickerParams.__fields__})
    fmt = body.get("format", "mp4")
    if fmt not in FORMATS:
        raise ConfigError("format", _short(fmt), list(FORMATS))
    fps = body.get("fps")
    if fps is not None and (isinstance(fps, bool) or not isinstance(fps, (int, float)) or not 0 < fps <= MAX_FPS):
        raise ConfigError("fps", _short(fps), f"a number in (0, {MAX_FPS:g}], or null for the input's rate")
    return_frames = body.get("return_frames", False)
    if not isinstance(return_frames, bool):
        raise ConfigError("return_frames", _short(return_frames), "true or false")
    guide_body = body.get("guide")
    if guide_body is not None and not isinstance(guide_body, dict):
        raise ConfigError("guide", _short(guide_body), "an object with one of: video, frames, path")
    with tempfile.TemporaryDirectory(prefix="vidsd-deflicker-") as tmp:
        tmp = Path(tmp)
        frames, in_fps = _read_clip(body, "", tmp / "clip", roots)
        height, width = frames[0].shape[:2]
        guide = None
        if guide_body is not None:
            guide, _ = _read_clip(guide_body, "guide.", tmp / "guide", roots, size=(width, height))
            if len(guide) != len(frames):
                raise ConfigError("guide", f"{len(guide)} frames", f"{len(frames)} frames, like the clip")
        check_frame_size(settings, width, height, field="patch_size")
        with _queue_lock():
            smooth = run_deflicker(frames, settings, guide=guide, stop=stop)
        out_fps = float(fps) if fps is not None else in_fps
        target = write_video(smooth, tmp / f"output{FORMATS[fmt]}", fps=out_fps)
        answer = {
            "video": base64.b64encode(target.read_bytes()).decode("ascii"),
            "format": fmt,
            "frames": len(smooth),
            "fps": out_fps,
            "mode": settings.mode.value,
            "window": settings.window,
        }
    if return_frames:
        answer["images"] = [_png_base64(f) for f in smooth]
    return answer


def _read_clip(source: dict, prefix: str, folder: Path, roots, size=None):
    """The frames (uint8 RGB) and frame rate of one of ``video``/``frames``/``path`` in ``source``."""
    from lib_vidsd.video import probe, read_video

    given = [key for key in SOURCES if source.get(key) is not None]
    if len(given) != 1:
        value = ", ".join(given) if given else None
        raise ConfigError(prefix + (given[1] if given else "video"), value, "exactly one of video, frames or path")
    key = given[0]
    field = prefix + key
    if key == "video":
        path = folder.with_suffix(".bin")
        path.write_bytes(_decode(field, source["video"]))
    elif key == "frames":
        path = _write_frames(field, source["frames"], folder)
    else:
        path = _in_roots(field, source["path"], roots)
    try:
        info = probe(path)
        if info.frame_count > MAX_FRAMES:
            raise ConfigError(field, f"{info.frame_count} frames", f"at most {MAX_FRAMES} frames")
        if max(info.width, info.height) > MAX_SIDE:
            raise ConfigError(field, f"{info.width}x{info.height}", f"sides up to {MAX_SIDE} px")
        w, h = size or (info.width, info.height)
        if info.frame_count * w * h > MAX_PIXELS:
            raise TooLarge(
                field, f"{info.frame_count} frames of {w}x{h}", f"at most {MAX_PIXELS} pixels (frames x width x height)"
            )
        reader = read_video(path, size=size) if size and size != (info.width, info.height) else read_video(path)
        frames = list(reader)[:MAX_FRAMES]
    except MediaError as e:
        raise ConfigError(field, "…", "a readable video or images", str(e)) from e
    if not frames:
        raise ConfigError(field, "0 frames", "a clip of at least one frame")
    return frames, float(reader.fps)


def _decode(field: str, text: Any) -> bytes:
    if not isinstance(text, str) or not text:
        raise ConfigError(field, type(text).__name__, "base64 text")
    if text.startswith("data:") and "," in text[:100]:
        text = text.split(",", 1)[1]
    if len(text) * 3 // 4 > MAX_BYTES:
        raise TooLarge(field, f"{len(text) * 3 // 4} bytes", f"at most {MAX_BYTES} bytes")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as e:
        raise ConfigError(field, text[:24] + "…", "base64 text") from e


def _write_frames(field: str, items: Any, folder: Path) -> Path:
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_FRAMES:
        count = len(items) if isinstance(items, list) else _short(items)
        raise ConfigError(field, count, f"a list of 1..{MAX_FRAMES} base64 images")
    if sum(len(t) * 3 // 4 for t in items if isinstance(t, str)) > MAX_BYTES:
        raise TooLarge(field, f"{len(items)} images", f"at most {MAX_BYTES} bytes together")
    folder.mkdir()
    for i, item in enumerate(items):
        (folder / f"{i:05d}.png").write_bytes(_decode(f"{field}[{i}]", item))
    return folder


def _in_roots(field: str, name: Any, roots) -> Path:
    """A video file or folder of images named inside one of ``roots`` (never anything outside)."""
    from lib_vidsd.paths import inside

    if not isinstance(name, str) or not name.strip():
        raise ConfigError(field, _short(name), "a file or folder name inside an input folder")
    if not roots:
        raise ConfigError(field, name, "empty (no input folders are configured)")
    for root in roots:
        path = inside(root, name, field=field)
        if path.exists():
            return path
    places = ", ".join(str(Path(r)) for r in roots)
    raise ConfigError(field, name, f"a file or folder inside {places}")


def _png_base64(frame) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(frame).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _short(value: Any) -> Any:
    text = value if isinstance(value, (int, float, bool)) or value is None else str(value)
    return text[:40] + "…" if isinstance(text, str) and len(text) > 40 else text


def _queue_lock():
    """A1111's queue lock (``modules.call_queue``): one GPU job at a time, generations included."""
    from modules import call_queue

    return call_queue.queue_lock


def schema() -> dict:
    """JSON schema of the body: the route's own fields and :class:`DeflickerParams`."""
    source = {
        "video": {"type": "string", "description": "The clip as a base64 video (any format ffmpeg reads)."},
        "frames": {"type": "array", "items": {"type": "string"}, "description": "The clip as base64 images."},
        "path": {"type": "string", "description": "A video file or folder of images inside an input folder."},
    }
    out = DeflickerParams.schema()
    out["properties"] = {
        **source,
        "guide": {
            "type": "object",
            "properties": source,
            "description": "The footage the clip was made from (one of video, frames, path); default: the clip.",
        },
        **out["properties"],
        "format": {"type": "string", "enum": list(FORMATS), "default": "mp4", "description": "Output video format."},
        "fps": {"type": "number", "description": "Output frame rate; default: the input's."},
        "return_frames": {"type": "boolean", "default": False, "description": "Also answer the frames as PNG."},
    }
    out["description"] = (__doc__ or "").split("\n\n")[1].replace("\n", " ")
    return out


def add_routes(app, JSONResponse) -> None:
    """Register the two routes on A1111's FastAPI app (called from :func:`.api.mount`)."""

    async def deflicker_route(request):  # a plain Starlette route: it reads the raw body itself
        from starlette.concurrency import run_in_threadpool

        from .multiframe_job import input_roots

        raw = await request.body()
        if len(raw) > MAX_BODY:
            return JSONResponse(status_code=413, content={"error": "TooLarge", "detail": "request body too large"})
        try:
            body = json.loads(raw or b"{}")
            answer = await run_in_threadpool(deflicker_request, body, roots=input_roots())
        except ValueError as e:  # ConfigError is a ValueError, and so is bad JSON
            content = {"error": type(e).__name__, "field": getattr(e, "field", "body"), "detail": str(e)}
            return JSONResponse(status_code=413 if isinstance(e, TooLarge) else 422, content=content)
        except VidsdError as e:  # e.g. an encoder that fails
            return JSONResponse(status_code=422, content={"error": type(e).__name__, "detail": str(e)})
        return JSONResponse(content=answer)

    app.add_route("/vidsd/v1/deflicker", deflicker_route, methods=["POST"])
    app.add_api_route("/vidsd/v1/schema/deflicker", schema, methods=["GET"])
