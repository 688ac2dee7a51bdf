"""Video file, animated image or folder of images → frames, lazily.

Three kinds of source, one interface:

- a video file (anything ffmpeg decodes): ffmpeg pipes ``rgb24`` frames, one read at a time;
  resampling uses ffmpeg's ``fps`` filter;
- a GIF, WEBP or PNG/APNG file: decoded by PIL frame by frame, resampled from its frame
  durations; a still image is a one-frame clip;
- a folder of images, in natural name order (``2.png`` before ``10.png``); a folder has no
  time base, so ``fps`` only labels it (default :data:`FOLDER_FPS`).

Frames come out as ``uint8 (H, W, 3)`` RGB; selection (start, end, every, max_frames) is in
the index space after resampling.
"""

from __future__ import annotations

import logging
import math
import os
import re
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageSequence, UnidentifiedImageError

from ..config import ReadOptions, fps_fraction, validate
from ..errors import DecodeError
from . import containers, ffmpeg
from .frames import fit_frame, to_rgb

log = logging.getLogger("vidsd.video.reader")

FOLDER_FPS = 8.0
TIME_TOLERANCE = 0.001  # seconds: a frame starting this close after an output instant counts as shown
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")
_PIL_MAGIC = (b"GIF87a", b"GIF89a", b"\x89PNG", b"RIFF", b"\xff\xd8\xff", b"BM")
# animated WEBP goes through PIL: ffmpeg decodes it only since 7.1, and the binary may be older
PIL_DECODED = ("webp",)
_PIL_ERRORS = (OSError, SyntaxError, ValueError, UnidentifiedImageError, EOFError)


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe` finds. ``loop`` is in plays (0 = forever) for animations, else ``None``."""

    path: Path
    kind: str  # "video", "animation", "image" or "folder"
    width: int
    height: int
    fps: float
    frame_count: int
    duration: float
    has_audio: bool = False
    codec: str | None = None
    loop: int | None = None
    metadata: dict[str, str] = field(default_factory=dict)


def _natural_key(path: Path):
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", path.name)]


def list_images(folder: Path) -> list[Path]:
    """Image files of ``folder`` in natural order (hidden files skipped)."""
    files = [p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")]
    return sorted(files, key=_natural_key)


def _is_pil_file(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(12)
    if head[:4] == b"RIFF":
        return head[8:12] == b"WEBP"
    return any(head.startswith(m) for m in _PIL_MAGIC)


def probe(path: str | os.PathLike) -> VideoInfo:
    """Frame rate, frame count, size, duration, audio, loop count and metadata of a source."""
    path = Path(path)
    if not path.exists():
        raise DecodeError(f"no such file or folder: {path}")
    if path.is_dir():
        return _probe_folder(path)
    if _is_pil_file(path):
        return _probe_pil(path)
    return _probe_ffmpeg(path)


def has_audio(path: str | os.PathLike) -> bool:
    """Whether ffmpeg finds an audio stream in ``path`` (a video, or an audio file such as WAV/MP3)."""
    path = Path(path)
    if not path.is_file():
        raise DecodeError(f"no such file: {path}")
    out = ffmpeg.run(["-hide_banner", "-nostdin", "-i", str(path)], timeout=60)
    said = out.stderr.decode("utf-8", errors="replace")
    return re.search(r"Stream #\d+:\d+.*?: Audio:", said) is not None


def _probe_folder(path: Path) -> VideoInfo:
    files = list_images(path)
    if not files:
        raise DecodeError(f"folder {path} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    try:
        with Image.open(files[0]) as img:
            w, h = img.size
    except _PIL_ERRORS as e:
        raise DecodeError(f"cannot read image {files[0]}: {e}") from e
    return VideoInfo(path, "folder", w, h, FOLDER_FPS, len(files), len(files) / FOLDER_FPS)


def _probe_pil(path: Path) -> VideoInfo:
    """Size from the image header, frame timing/loop/metadata from the chunks: nothing is decoded."""
    try:
        with Image.open(path) as img:
            w, h = img.size
            fmt = (img.format or "").lower()
    except _PIL_ERRORS as e:
        raise DecodeError(f"cannot read {path}: {e}") from e
    anim = containers.read_animated_info(path)
    if anim is None or len(anim.durations) <= 1:
        return VideoInfo(path, "image", w, h, FOLDER_FPS, 1, 0.0, codec=fmt, metadata=anim.metadata if anim else {})
    durations = anim.durations
    n = len(durations)
    total = sum(durations)
    same = max(durations) - min(durations) < 1e-9
    fps = round(1.0 / durations[0] if same else n / total, 6)
    return VideoInfo(path, "animation", w, h, fps, n, total, codec=anim.format, loop=anim.plays, metadata=anim.metadata)


_DURATION = re.compile(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)")
_VIDEO = re.compile(r"Stream #\d+:\d+.*?: Video: (\w+)(.*)")
_SIZE = re.compile(r"[ ,](\d{1,5})x(\d{1,5})[ ,\[]")
_FPS = re.compile(r"([\d.]+)(k?) (?:fps|tbr)")
_ROTATION = re.compile(r"rotation of (-?[\d.]+) degrees")
_FRAME = re.compile(r"frame=\s*(\d+)")


def _probe_ffmpeg(path: Path) -> VideoInfo:
    # one pass: stream-copy the video to the null muxer (counts frames without decoding)
    # and write the global metadata as ffmetadata to stdout
    out = ffmpeg.run(
        [
            "-hide_banner",
            "-nostdin",
            "-i",
            str(path),
            "-map",
            "0:v:0?",
            "-c",
            "copy",
            "-f",
            "null",
            "-",
            "-map_metadata",
            "0",
            "-f",
            "ffmetadata",
            "pipe:1",
        ],
        timeout=600,
    )
    said = out.stderr.decode("utf-8", errors="replace")
    video = _VIDEO.search(said)
    if video is None:
        why = ffmpeg.stderr_tail(said, 3) or "no video stream"
        raise DecodeError(f"cannot read video {path}: no video stream found", why)
    size = _SIZE.search(video.group(2))
    fps = _FPS.search(video.group(2))
    if size is None or fps is None:
        raise DecodeError(f"cannot read video {path}: no frame size or rate", ffmpeg.stderr_tail(said, 3))
    w, h = int(size.group(1)), int(size.group(2))
    rotation = _ROTATION.search(said)
    if rotation and round(abs(float(rotation.group(1)))) % 180 == 90:
        w, h = h, w
    rate = float(fps.group(1)) * (1000 if fps.group(2) else 1)
    dur = _DURATION.search(said)
    duration = int(dur.group(1)) * 3600 + int(dur.group(2)) * 60 + float(dur.group(3)) if dur else 0.0
    frames = [int(m) for m in _FRAME.findall(said)]
    count = frames[-1] if frames else round(duration * rate)
    has_audio = re.search(r"Stream #\d+:\d+.*?: Audio:", said) is not None
    return VideoInfo(
        path, "video", w, h, rate, count, duration, has_audio, video.group(1), None, _parse_ffmetadata(out.stdout)
    )


def _parse_ffmetadata(raw: bytes) -> dict[str, str]:
    """Global ``key=value`` entries of ffmpeg's ffmetadata text (escapes ``\\=`` ``\\;`` ``\\#`` ``\\\\`` and newline)."""
    text = raw.decode("utf-8", errors="replace")
    meta: dict[str, str] = {}
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if line.startswith("[") or line.startswith(";") or "=" not in line:
            if line.startswith("["):
                break  # stream/chapter sections follow the global ones
            continue
        while line.endswith("\\") and not line.endswith("\\\\") and i < len(lines):
            line = line[:-1] + "\n" + lines[i]
            i += 1
        key, value = _split_unescape(line)
        key = key.lower()
        if key == "description" and "comment" in meta:
            continue
        meta["comment" if key == "description" else key] = value
    return {k: v for k, v in meta.items() if k in containers.META_KEYS}


def _split_unescape(line: str) -> tuple[str, str]:
    parts, cur, escaped = [], [], False
    for ch in line:
        if escaped:
            cur.append(ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == "=" and not parts:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return parts[0], parts[1] if len(parts) > 1 else ""


class FrameReader:
    """Lazy frames of one source. Iterate it (each iteration reads from the start); ``info`` is the probe.

    ``fps`` is the output rate (the resampled one, or the source's), ``size`` (width, height) of every
    frame, ``expected_frames`` an estimate of how many frames an iteration gives.
    """

    def __init__(self, path: Path, opts: ReadOptions):
        self.path = path
        self.opts = opts
        self.info = probe(path)
        self.fps = opts.fps or self.info.fps
        self.size = tuple(opts.size) if opts.size else (self.info.width, self.info.height)

    @property
    def expected_frames(self) -> int:
        n = self.info.frame_count
        if self.opts.fps and self.info.kind in ("video", "animation"):
            n = math.ceil(self.info.duration * self.opts.fps - 1e-6)
        stop = n if self.opts.end is None else min(n, self.opts.end)
        kept = max(0, math.ceil((stop - self.opts.start) / self.opts.every))
        return kept if self.opts.max_frames is None else min(kept, self.opts.max_frames)

    def __iter__(self) -> Iterator[np.ndarray]:
        return self._select(self._source())

    def _select(self, frames: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
        o = self.opts
        kept = 0
        try:
            for index, frame in enumerate(frames):
                if o.end is not None and index >= o.end:
                    break
                if index < o.start or (index - o.start) % o.every:
                    continue
                yield fit_frame(frame, self.size, o.fit) if o.size else frame
                kept += 1
                if o.max_frames is not None and kept >= o.max_frames:
                    break
        finally:
            frames.close()

    def _source(self) -> Iterator[np.ndarray]:
        kind = self.info.kind
        if kind == "folder":
            return self._folder_frames()
        if kind == "image" or self.info.codec in PIL_DECODED:
            return self._pil_frames()
        return self._ffmpeg_frames()  # videos, GIF and APNG

    def _folder_frames(self) -> Iterator[np.ndarray]:
        for file in list_images(self.path):
            try:
                with Image.open(file) as img:
                    yield to_rgb(img)
            except _PIL_ERRORS as e:
                raise DecodeError(f"cannot read image {file}: {e}") from e

    def _pil_frames(self) -> Iterator[np.ndarray]:
        try:
            with Image.open(self.path) as img:
                if self.opts.fps is None or self.info.kind == "image":
                    for frame in ImageSequence.Iterator(img):
                        yield to_rgb(frame.convert("RGB"))
                    return
                yield from self._resample_pil(img)
        except _PIL_ERRORS as e:
            raise DecodeError(f"cannot read {self.path}: {e}") from e

    def _resample_pil(self, img: Image.Image) -> Iterator[np.ndarray]:
        """Output frame k shows the source frame on screen at time k / fps (see ``TIME_TOLERANCE``)."""
        step = 1.0 / self.opts.fps
        k = 0
        start = 0.0
        for frame in ImageSequence.Iterator(img):
            frame.load()
            ms = frame.info.get("duration") or 0
            end = start + (ms / 1000.0 if ms > 0 else 0.1)
            rgb = None
            while k * step < end - TIME_TOLERANCE:
                rgb = to_rgb(frame.convert("RGB")) if rgb is None else rgb
                yield rgb
                k += 1
            start = end

    def _ffmpeg_frames(self) -> Iterator[np.ndarray]:
        w, h = self.info.width, self.info.height
        argv = ["-hide_banner", "-nostdin", "-v", "error", "-xerror", "-i", str(self.path), "-map", "0:v:0"]
        if self.opts.fps:
            # output frame k = the source frame on screen at k / fps; timestamps stored in a coarse
            # time base (ms in WEBM, 1/100 s in GIF) land a hair off the exact instant, so a frame
            # starting within TIME_TOLERANCE after it counts as on screen (same rule as the PIL path)
            rate = fps_fraction(self.opts.fps)
            argv += ["-vf", f"setpts=PTS-{TIME_TOLERANCE}/TB,fps={rate.numerator}/{rate.denominator}:round=up"]
        else:  # every decoded frame once, as stored (no duplicates for a variable rate)
            argv += ["-fps_mode", "passthrough"]
        argv += ["-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"]
        frame_bytes = w * h * 3
        with tempfile.TemporaryFile() as err:
            proc = subprocess.Popen(
                [ffmpeg.ffmpeg_exe(), *argv], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err, bufsize=0
            )
            ffmpeg.enlarge_pipe(proc.stdout)
            finished = False
            try:
                got = 0
                while True:
                    frame = np.empty((h, w, 3), np.uint8)  # a fresh, writable array per frame
                    n = ffmpeg.read_exact(proc.stdout, frame)
                    if n < frame_bytes:
                        if n:
                            raise DecodeError(f"{self.path}: the last frame is incomplete (truncated file?)")
                        break
                    got += 1
                    yield frame
                rc = proc.wait()
                finished = True
                if rc != 0:
                    err.seek(0)
                    raise DecodeError(
                        f"cannot decode {self.path} after {got} frames (corrupt or truncated?)",
                        ffmpeg.stderr_tail(err.read()),
                    )
            finally:
                if not finished:  # the consumer stopped early: end ffmpeg, it is not an error
                    proc.kill()
                proc.stdout.close()
                proc.wait()


def read_video(path: str | os.PathLike, **options: Any) -> FrameReader:
    """Frames of a video file, animated image or folder of images, read lazily.

    ``options`` are the fields of :class:`~lib_vidsd.config.ReadOptions`: ``fps`` (resample),
    ``every``, ``start``, ``end``, ``max_frames``, ``size`` (width, height) and ``fit``.
    """
    opts = validate(ReadOptions, options)
    return FrameReader(Path(path), opts)
