"""Motion-compensated interpolation by ffmpeg's ``minterpolate`` filter (``mi_mode=mci``).

Frames go to ffmpeg as raw ``rgb24`` on stdin (written from a thread, so the pipes cannot
deadlock) and come back as raw ``rgb24`` on stdout. No network, no extra package: only the ffmpeg
that :func:`~lib_vidsd.video.ffmpeg_exe` finds.

minterpolate works in YUV (here full-range 4:4:4), so the frames it passes through at multiples of
``factor`` may differ slightly from the originals (rounding, a level or two);
:func:`mci_clip` returns them as ffmpeg does. minterpolate's own scene-change detection (``scd``,
on by default) repeats frames across a cut instead of morphing.
Through :func:`~lib_vidsd.interpolate.interpolate` (the ``"mci"`` method) only the in-between
frames come from ffmpeg and the originals are kept exactly.
"""

from __future__ import annotations

import logging
import subprocess
import tempfile
import threading
from typing import Sequence

import numpy as np

from ..errors import ConfigError, EncodeError, MediaError
from ..video.ffmpeg import enlarge_pipe, ffmpeg_exe, stderr_tail

log = logging.getLogger("vidsd.interpolate.mci")

#: minterpolate fails on frames smaller than its blocks; smaller frames are padded up to this
MIN_SIDE = 32
#: minterpolate holds back the last frames (it needs a future frame); copies of the last frame fed after it
_TAIL = 2

# full-range 4:4:4 in and out: 8-bit limited-range YUV would round small steps away (10 -> 12 has no 11)
FILTER = "scale=out_range=full,format=yuv444p,minterpolate=fps={fps}:mi_mode=mci:mc_mode=aobmc:me_mode=bidir:vsbmc=1"


def _pad(frames: np.ndarray) -> np.ndarray:
    """Edge-replicate ``(N, H, W, 3)`` frames up to ``MIN_SIDE`` on each side (bottom/right)."""
    _, h, w, _ = frames.shape
    ph, pw = max(0, MIN_SIDE - h), max(0, MIN_SIDE - w)
    if ph or pw:
        frames = np.pad(frames, ((0, 0), (0, ph), (0, pw), (0, 0)), mode="edge")
    return frames


def mci_clip(frames: Sequence[np.ndarray], factor: int, *, timeout: float | None = None) -> list[np.ndarray]:
    """Multiply the frame rate of ``frames`` (``uint8 (H, W, 3)``, same size) by ``factor`` with minterpolate.

    Returns exactly ``(n - 1) * factor + 1`` frames; frame ``k * factor`` is input frame ``k`` as
    ffmpeg returns it (close to, not always equal to, the original). ``factor=1`` or one frame
    returns copies of the input. Raises :class:`~lib_vidsd.errors.MediaError` with ffmpeg's words.
    """
    if isinstance(factor, bool) or not isinstance(factor, (int, np.integer)) or factor < 1:
        raise ConfigError("factor", factor, "an integer of at least 1")
    factor = int(factor)
    stack = np.stack([np.ascontiguousarray(f, dtype=np.uint8) for f in frames]) if len(frames) else None
    if stack is None:
        raise ConfigError("frames", 0, "at least one frame")
    if stack.ndim != 4 or stack.shape[3] != 3:
        raise ConfigError("frames", f"shape {stack.shape[1:]}", "uint8 (H, W, 3) RGB arrays")
    n, h, w, _ = stack.shape
    if factor == 1 or n == 1:
        return [f.copy() for f in stack]
    want = (n - 1) * factor + 1
    padded = _pad(np.concatenate([stack, np.repeat(stack[-1:], _TAIL, axis=0)]))
    ph, pw = padded.shape[1:3]
    argv = [
        ffmpeg_exe(),
        "-hide_banner",
        "-v",
        "error",
        "-f",
        "rawvideo",
        "-pix_fmt",
        "rgb24",
        "-s",
        f"{pw}x{ph}",
        "-r",
        "1",
        "-i",
        "pipe:0",
        "-vf",
        FILTER.format(fps=factor),
        "-f",
        "rawvideo",
        "-pix_fmt",
        "rgb24",
        "pipe:1",
    ]
    log.debug("ffmpeg %s", " ".join(argv[1:]))
    frame_bytes = ph * pw * 3
    with tempfile.TemporaryFile() as err:
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err)
        except OSError as e:
            raise MediaError(f"cannot start ffmpeg: {e}") from e
        enlarge_pipe(proc.stdin)
        write_error: list[BaseException] = []

        def feed() -> None:
            try:
                proc.stdin.write(padded.tobytes())
            except (BrokenPipeError, OSError) as e:  # ffmpeg quit early; its stderr says why
                write_error.append(e)
            finally:
                try:
                    proc.stdin.close()
                except OSError:
                    pass

        writer = threading.Thread(target=feed, name="vidsd-mci-feed", daemon=True)
        writer.start()
        try:
            data = proc.stdout.read(want * frame_bytes)
            proc.stdout.close()  # the trailing extra frames are not needed
            writer.join()
            code = proc.wait(timeout=timeout)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        err.seek(0)
        said = stderr_tail(err.read())
    got = len(data) // frame_bytes
    if got < want:
        raise EncodeError(f"minterpolate gave {got} frames, expected {want} (exit code {code})", said)
    out = np.frombuffer(data[: want * frame_bytes], dtype=np.uint8).reshape(want, ph, pw, 3)
    return [out[i, :h, :w].copy() for i in range(want)]


#: the finest grid used for timesteps that fit no coarser one (frames within 1/128 of a gap of the request)
MAX_GRID = 64


def grid_for(ts: Sequence[float]) -> int:
    """The smallest ``f`` (2..``MAX_GRID``) whose multiples ``k / f`` hit every ``t`` within 1e-4."""
    for f in range(2, MAX_GRID + 1):
        if all(abs(t * f - round(t * f)) < 1e-4 * f for t in ts):
            return f
    return MAX_GRID


def mci(a: np.ndarray, b: np.ndarray, ts: Sequence[float]) -> list[np.ndarray]:
    """The registry's ``"mci"`` method: the frames at ``ts`` (each in 0..1) between ``a`` and ``b``.

    minterpolate makes evenly spaced frames only, so it runs at the coarsest grid ``k / f`` that
    holds every ``t`` (``ts = 1/f … (f-1)/f`` for a plain ×f) and each ``t`` takes the nearest
    grid frame; timesteps on no grid up to 1/64 are rounded to the nearest 1/64.
    """
    if not len(ts):
        return []
    factor = grid_for(ts)
    made = mci_clip([a, b], factor)
    return [made[min(factor - 1, max(1, round(t * factor)))] for t in ts]
