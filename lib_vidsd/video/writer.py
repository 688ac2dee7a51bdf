"""Frames → video file, streamed to ffmpeg's stdin, written atomically.

The output appears under its final name only once it is complete: ffmpeg writes a
temporary file beside it (``.<name>.<random>.part``), which is renamed with
``os.replace`` on success and removed on any failure, interrupt included.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, PngImagePlugin

from ..config import Codec, EncodeOptions, EvenMode, VideoFormat, fps_fraction, validate
from ..errors import ConfigError, EncodeError, Interrupted
from ..progress import ProgressSink, StopToken, null_progress
from . import containers, ffmpeg
from .frames import to_rgb
from .presets import AV1_DEFAULT_SPEED, PRESETS, SUFFIX_FORMAT, Preset, combinations, preset_for

log = logging.getLogger("vidsd.video.writer")


def available_formats(exe: str | None = None) -> list[str]:
    """The preset names (``gif``, ``mp4-h264``, ``webm-vp9``, …) this ffmpeg can write."""
    have = ffmpeg.encoders(exe) if any(p.encoders for p in PRESETS.values()) else frozenset()
    return [name for name, p in PRESETS.items() if not p.encoders or any(e in have for e in p.encoders)]


def resolve_preset(path: Path, opts: EncodeOptions) -> Preset:
    """Pick the preset from ``opts.format``/``opts.codec`` or, failing that, the file suffix."""
    fmt = opts.format
    if fmt is None:
        fmt = SUFFIX_FORMAT.get(path.suffix.lower())
        if fmt is None:
            if path.suffix == "" and (path.is_dir() or not path.exists()):
                fmt = VideoFormat.PNG
            else:
                raise ConfigError(
                    "format",
                    path.suffix or str(path),
                    [f.value for f in VideoFormat],
                    "give a format or use a known suffix (.gif .mp4 .webm .webp .png); a folder gets PNG frames",
                )
    preset = preset_for(VideoFormat(fmt), Codec(opts.codec) if opts.codec else None)
    if preset is None:
        raise ConfigError("codec", opts.codec.value if opts.codec else None, combinations())
    return preset


def _pick_encoder(preset: Preset, exe: str) -> str:
    have = ffmpeg.encoders(exe)
    for name in preset.encoders:
        if name in have:
            return name
    raise EncodeError(
        f"this ffmpeg ({exe}) has no {' or '.join(preset.encoders)} encoder, needed for {preset.name}; "
        f"formats it can write: {', '.join(available_formats(exe))}"
    )


def _codec_args(preset: Preset, encoder: str, opts: EncodeOptions) -> list[str]:
    crf = opts.crf if opts.crf is not None else preset.crf_default
    if crf is not None and preset.crf_max is not None and crf > preset.crf_max:
        raise ConfigError("crf", crf, f"0..{preset.crf_max} for {preset.name}")
    speed = opts.preset or preset.preset_default or AV1_DEFAULT_SPEED.get(encoder)
    allowed = preset.presets.get(encoder)
    if opts.preset is not None and allowed is not None and opts.preset not in allowed:
        raise ConfigError("preset", opts.preset, list(allowed), f"for {encoder}")
    if opts.preset is not None and allowed is None:
        raise ConfigError("preset", opts.preset, "none", f"{preset.name} has no speed preset")
    args = ["-c:v", encoder]
    if encoder in ("libx264", "libx265"):
        args += ["-crf", str(crf), "-preset", speed, "-pix_fmt", "yuv420p"]
        if encoder == "libx265":
            args += ["-tag:v", "hvc1", "-x265-params", "log-level=error"]
    elif encoder == "libvpx-vp9":
        args += ["-crf", str(crf), "-b:v", "0", "-deadline", speed, "-row-mt", "1", "-pix_fmt", "yuv420p"]
    elif encoder == "libsvtav1":
        args += ["-crf", str(crf), "-preset", speed, "-pix_fmt", "yuv420p", "-svtav1-params", "log-level=0"]
    elif encoder == "libaom-av1":
        args += ["-crf", str(crf), "-b:v", "0", "-cpu-used", speed, "-row-mt", "1", "-pix_fmt", "yuv420p"]
    elif encoder == "libwebp_anim":
        if opts.lossless:
            args += ["-lossless", "1", "-quality", "100", "-pix_fmt", "bgra"]
        else:
            args += ["-lossless", "0", "-quality", str(opts.quality), "-pix_fmt", "yuv420p"]
        args += ["-loop", str(opts.loop)]
    elif encoder == "apng":
        args += ["-pix_fmt", "rgb24", "-plays", str(opts.loop)]
    elif encoder == "gif":
        # plays → NETSCAPE count: once = no loop block, N plays = N - 1 repeats, 0 = forever
        count = 0 if opts.loop == 0 else (-1 if opts.loop == 1 else opts.loop - 1)
        # optimised: only the changed rectangle is stored, unchanged pixels become transparent;
        # plain: every frame complete (what editors that re-read frames expect)
        flags = "+offsetting+transdiff" if opts.gif_optimize else "-offsetting-transdiff"
        args += ["-loop", str(count), "-gifflags", flags]
    if preset.format is VideoFormat.MP4:
        args += ["-movflags", "+faststart"]
    return args


def _filters(preset: Preset, opts: EncodeOptions, width: int, height: int) -> list[str]:
    chain = []
    if preset.yuv420 and (width % 2 or height % 2):
        even_w, even_h = width + width % 2, height + height % 2
        if opts.even is EvenMode.PAD:
            chain.append(f"pad={even_w}:{even_h}:0:0")
        elif opts.even is EvenMode.CROP:
            chain.append(f"crop={width - width % 2}:{height - height % 2}:0:0")
        else:
            chain.append(f"scale={even_w}:{even_h}:flags=lanczos")
    if preset.format is VideoFormat.GIF and opts.gif_palette:
        use = f"paletteuse=dither={opts.gif_dither.value}"
        if opts.gif_optimize:
            use += ":diff_mode=rectangle"
        head = ",".join(chain) + "," if chain else ""
        return ["-filter_complex", f"[0:v]{head}split[a][b];[a]palettegen=stats_mode=full[p];[b][p]{use}"]
    return ["-vf", ",".join(chain)] if chain else []


def _metadata_args(preset: Preset, opts: EncodeOptions) -> list[str]:
    if preset.animated_image:
        return []  # written into the file's own chunks afterwards
    args = []
    for key, value in (("title", opts.title), ("artist", opts.artist), ("comment", opts.comment)):
        if value:
            args += ["-metadata", f"{key}={value}"]
            if key == "comment":
                args += ["-metadata", f"description={value}"]
    return args


def _audio_args(preset: Preset, opts: EncodeOptions, duration: float | None = None) -> tuple[list[str], list[str]]:
    """Inputs and output options adding ``audio_from``'s track. With the video's ``duration`` known the
    audio is padded with silence and the output cut there, so a short track never drops frames;
    otherwise the output ends with the shorter stream."""
    if not opts.audio_from:
        return [], []
    if preset.audio_codec is None:
        raise ConfigError("audio_from", opts.audio_from, "only with mp4 or webm output", f"{preset.name} has no audio")
    source = Path(opts.audio_from)
    from .reader import has_audio  # late: reader imports this module's helpers

    if not has_audio(source):
        raise ConfigError("audio_from", str(source), "a video or audio file that has an audio track")
    maps = ["-map", "0:v:0", "-map", "1:a:0", "-c:a", preset.audio_codec]
    if duration:
        return ["-i", str(source)], [*maps, "-af", "apad", "-t", f"{duration:.6f}"]
    return ["-i", str(source)], [*maps, "-shortest"]


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write a text file atomically (temporary name beside it, then ``os.replace``)."""
    target = Path(path)
    temp = _temp_beside(target)
    try:
        temp.write_text(text, encoding="utf-8")
        os.replace(temp, target)
    finally:
        temp.unlink(missing_ok=True)
    return target


def write_png(path: str | os.PathLike, image: np.ndarray, parameters: str | None = None) -> Path:
    """One ``(H, W, 3|4)`` uint8 image as PNG, ``parameters`` in its text chunk of that name (where
    A1111's PNG Info reads generation settings); written to a temporary name beside ``path`` and
    renamed, so ``path`` is whole or absent."""
    target = Path(path)
    temp = _temp_beside(target)
    info = PngImagePlugin.PngInfo()
    if parameters is not None:
        info.add_text("parameters", parameters)
    try:
        Image.fromarray(np.ascontiguousarray(image)).save(temp, format="PNG", pnginfo=info)
        os.replace(temp, target)
    finally:
        temp.unlink(missing_ok=True)
    return target


def _umask() -> int:
    """The process's umask (read by setting it and putting it back: there is no getter)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


#: files and folders get the permissions a plain ``open`` / ``mkdir`` would give, not the
#: owner-only ones of ``tempfile``
FILE_MODE = 0o666 & ~_umask()
DIR_MODE = 0o777 & ~_umask()


def _temp_beside(target: Path, suffix: str = ".part") -> Path:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=target.parent)
        os.fchmod(fd, FILE_MODE)
    except OSError as e:
        raise EncodeError(f"cannot write in folder {target.parent}: {e.strerror or e}") from e
    os.close(fd)
    return Path(name)


def write_video(
    frames: Iterable[Any],
    path: str | os.PathLike,
    *,
    fps: float | str = 8.0,
    progress: ProgressSink = null_progress,
    stop: StopToken | None = None,
    frame_texts: Sequence[str] | None = None,
    total: int | None = None,
    **options: Any,
) -> Path:
    """Encode ``frames`` (``uint8 (H, W, 3)`` arrays or PIL images) into ``path``; returns the path.

    ``options`` are the fields of :class:`~lib_vidsd.config.EncodeOptions` (format, codec, crf,
    preset, loop, quality, lossless, gif_*, even, title, comment, artist, audio_from).
    ``frame_texts`` (PNG frames only) go into each frame's ``parameters`` text chunk, where
    A1111's PNG Info reads the generation parameters. ``stop`` is checked between frames;
    ``total`` is the frame count for ``progress`` when ``frames`` has no ``len()``.
    """
    opts = validate(EncodeOptions, options, fps=fps)
    target = Path(path)
    preset = resolve_preset(target, opts)
    if total is None and hasattr(frames, "__len__"):
        total = len(frames)
    if preset.format is VideoFormat.PNG:
        return _write_png_frames(frames, target, opts, progress, stop, frame_texts, total)
    exe = ffmpeg.ffmpeg_exe()
    encoder = _pick_encoder(preset, exe)
    codec_args = _codec_args(preset, encoder, opts)
    audio_in, audio_map = _audio_args(preset, opts, total / float(opts.fps) if total else None)
    iterator = iter(frames)
    try:
        first = to_rgb(next(iterator), 0)
    except StopIteration:
        raise ConfigError("frames", "0 frames", "at least 1 frame") from None
    height, width = first.shape[:2]
    rate = fps_fraction(opts.fps)
    argv = [
        "-hide_banner",
        "-y",
        "-v",
        "error",
        "-f",
        "rawvideo",
        "-pix_fmt",
        "rgb24",
        "-s",
        f"{width}x{height}",
        "-r",
        f"{rate.numerator}/{rate.denominator}",
        "-i",
        "pipe:0",
        *audio_in,
        *_filters(preset, opts, width, height),
        *audio_map,
        *codec_args,
        *_metadata_args(preset, opts),
    ]
    temp = _temp_beside(target)
    try:
        _stream(exe, argv + ["-f", preset.muxer, str(temp)], first, iterator, total, progress, stop, width, height)
        if preset.animated_image:
            containers.add_metadata(
                temp, preset.format.value, {"title": opts.title, "artist": opts.artist, "comment": opts.comment}
            )
        os.replace(temp, target)
    finally:
        temp.unlink(missing_ok=True)
    log.info("wrote %s (%s)", target, preset.name)
    return target


def mux_audio(
    video_path: str | os.PathLike,
    audio_path: str | os.PathLike,
    *,
    start: float = 0.0,
    out_path: str | os.PathLike | None = None,
) -> Path:
    """Put the audio of ``audio_path`` (from ``start`` seconds on) under the video of ``video_path``.

    The video stream and the metadata are copied as they are; the audio (any file or video ffmpeg
    reads, its first audio stream) is encoded to AAC in MP4, to Opus (else Vorbis) in WEBM. The
    result ends with the shorter of the two streams (``-shortest``). It is written to a temporary
    file beside ``out_path`` (default: ``video_path`` itself, replaced) and renamed when complete.

    Raises:
        ConfigError: GIF/WEBP/APNG output (field ``format``: no audio track possible; callers skip
            them), a missing file, no audio stream (field ``audio``) or ``start`` < 0.
        EncodeError: ffmpeg failed (its words attached) or has no suitable audio encoder.
    """
    video, audio = Path(video_path), Path(audio_path)
    target = Path(out_path) if out_path is not None else video
    fmt = SUFFIX_FORMAT.get(video.suffix.lower())
    codecs = {VideoFormat.MP4: ("aac",), VideoFormat.WEBM: ("libopus", "libvorbis")}.get(fmt)
    if codecs is None:
        name = fmt.value if fmt else video.suffix or str(video)
        raise ConfigError("format", name, ["mp4", "webm"], "only MP4 and WEBM files can carry an audio track")
    if not video.is_file():
        raise ConfigError("video", str(video), "an existing mp4 or webm file")
    if not audio.is_file():
        raise ConfigError("audio", str(audio), "an existing audio or video file with an audio track")
    if not start >= 0:
        raise ConfigError("audio_start", start, "seconds >= 0")
    exe = ffmpeg.ffmpeg_exe()
    have = ffmpeg.encoders(exe)
    codec = next((c for c in codecs if c in have), None)
    if codec is None:
        raise EncodeError(f"this ffmpeg ({exe}) has no {' or '.join(codecs)} encoder for {fmt.value} audio")
    argv = ["-hide_banner", "-nostdin", "-y", "-v", "error", "-i", str(video), "-ss", f"{start:.6f}", "-i", str(audio)]
    argv += ["-map", "0:v:0", "-map", "1:a:0", "-map_metadata", "0", "-c:v", "copy", "-c:a", codec, "-shortest"]
    if fmt is VideoFormat.MP4:
        argv += ["-movflags", "+faststart"]
    temp = _temp_beside(target)
    try:
        out = ffmpeg.run(argv + ["-f", fmt.value, str(temp)])
        if out.returncode != 0:
            said = ffmpeg.stderr_tail(out.stderr)
            if "matches no streams" in said:
                raise ConfigError("audio", str(audio), "a file with an audio track", "it has none")
            raise EncodeError(f"adding the audio of {audio} to {video} failed", said)
        os.replace(temp, target)
    finally:
        temp.unlink(missing_ok=True)
    log.info("muxed audio %s into %s", audio, target)
    return target


def _stream(exe, argv, first, rest, total, progress, stop, width, height) -> None:
    log.debug("ffmpeg %s", " ".join(argv))
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen([exe, *argv], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=err, bufsize=0)
        ffmpeg.enlarge_pipe(proc.stdin)
        count = 0
        try:
            frame = first
            while True:
                if stop is not None and stop.stop_requested():
                    raise Interrupted(f"interrupted after {count} frames")
                if frame.shape[:2] != (height, width):
                    raise ConfigError(
                        f"frames[{count}]",
                        f"{frame.shape[1]}x{frame.shape[0]}",
                        f"{width}x{height} like frames[0]",
                        "every frame must have the same size",
                    )
                try:
                    _write_all(proc.stdin, memoryview(frame).cast("B"))
                except (BrokenPipeError, OSError):
                    break  # ffmpeg died; its return code and stderr say why
                count += 1
                progress(count, total, "encoding")
                try:
                    frame = to_rgb(next(rest), count)
                except StopIteration:
                    break
            try:
                proc.stdin.close()
            except OSError:
                pass
            rc = proc.wait()
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        if rc != 0:
            err.seek(0)
            said = ffmpeg.stderr_tail(err.read())
            why = f"ffmpeg was killed by signal {-rc}" if rc < 0 else f"ffmpeg failed with exit code {rc}"
            raise EncodeError(f"{why} after {count} frames", said)


def _write_all(stream, view: memoryview) -> None:
    """Unbuffered pipes may take part of a buffer per call."""
    while view:
        n = stream.write(view)
        view = view[n:]


def _png_info(opts: EncodeOptions, text: str | None) -> PngImagePlugin.PngInfo:
    info = PngImagePlugin.PngInfo()
    if text:
        info.add_text("parameters", text)
    for key, value in (("Title", opts.title), ("Author", opts.artist), ("Comment", opts.comment)):
        if value:
            info.add_itxt(key, value)
    return info


def _write_png_frames(frames, target: Path, opts, progress, stop, frame_texts, total) -> Path:
    """Numbered PNG frames (``00000.png`` …) in the folder ``target``, moved in once all are written."""
    if target.exists() and not target.is_dir():
        raise ConfigError("path", str(target), "a folder for PNG frames", "a file of that name exists")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent))
        staging.chmod(DIR_MODE)
    except OSError as e:
        raise EncodeError(f"cannot write in folder {target.parent}: {e.strerror or e}") from e
    try:
        size = None
        count = 0
        for count, frame in enumerate(frames):
            if stop is not None and stop.stop_requested():
                raise Interrupted(f"interrupted after {count} frames")
            arr = to_rgb(frame, count)
            if size is None:
                size = arr.shape[:2]
            elif arr.shape[:2] != size:
                raise ConfigError(
                    f"frames[{count}]",
                    f"{arr.shape[1]}x{arr.shape[0]}",
                    f"{size[1]}x{size[0]} like frames[0]",
                    "every frame must have the same size",
                )
            text = frame_texts[count] if frame_texts is not None and count < len(frame_texts) else None
            Image.fromarray(arr).save(staging / f"{count:05d}.png", pnginfo=_png_info(opts, text))
            progress(count + 1, total, "writing frames")
        if size is None:
            raise ConfigError("frames", "0 frames", "at least 1 frame")
        if not target.exists():
            os.replace(staging, target)
        else:
            for item in sorted(staging.iterdir()):
                os.replace(item, target / item.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
