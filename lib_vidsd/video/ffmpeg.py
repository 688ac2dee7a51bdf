"""Finding and running ffmpeg.

ffmpeg comes from, in order: :func:`set_ffmpeg_path` (A1111's ``--vidsd-ffmpeg``
flag or the CLI's ``--ffmpeg``), the ``VIDSD_FFMPEG`` environment variable, the
binary of the ``imageio-ffmpeg`` wheel. A system ffmpeg is never assumed.
Commands are argv lists; nothing goes through a shell.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import shutil
import subprocess
from pathlib import Path

from ..errors import MediaError

log = logging.getLogger("vidsd.video.ffmpeg")

ENV_VAR = "VIDSD_FFMPEG"
_override: str | None = None


def set_ffmpeg_path(path: str | os.PathLike | None) -> None:
    """Use this ffmpeg binary from now on (``None`` goes back to the default lookup)."""
    global _override
    _override = str(path) if path else None


def ffmpeg_exe() -> str:
    """The ffmpeg binary to run; raises :class:`MediaError` saying how to get one."""
    for source, candidate in (("--vidsd-ffmpeg", _override), (ENV_VAR, os.environ.get(ENV_VAR))):
        if candidate:
            resolved = shutil.which(candidate) or (candidate if Path(candidate).is_file() else None)
            if not resolved:
                raise MediaError(f"ffmpeg set by {source} does not exist: {candidate}")
            return resolved
    try:
        import imageio_ffmpeg
    except ImportError as e:
        raise MediaError(
            f"no ffmpeg: install the imageio-ffmpeg package (pip install imageio-ffmpeg) or set {ENV_VAR}"
        ) from e
    try:
        return imageio_ffmpeg.get_ffmpeg_exe()
    except RuntimeError as e:
        raise MediaError(f"imageio-ffmpeg has no ffmpeg binary for this platform; set {ENV_VAR}: {e}") from e


@functools.lru_cache(maxsize=8)
def _encoders_of(exe: str) -> frozenset[str]:
    out = subprocess.run(
        [exe, "-hide_banner", "-encoders"], capture_output=True, text=True, errors="replace", timeout=60
    )
    if out.returncode != 0:
        raise MediaError(f"cannot list the encoders of {exe}", out.stderr)
    names = set()
    for line in out.stdout.splitlines():
        # " V....D libx264   libx264 H.264 ..." : six flag characters, then the name
        m = re.match(r"^\s*[VAS][A-Z.]{5}\s+(\S+)", line)
        if m:
            names.add(m.group(1))
    return frozenset(names)


def encoders(exe: str | None = None) -> frozenset[str]:
    """Names of the encoders the ffmpeg binary was built with (cached per binary)."""
    return _encoders_of(exe or ffmpeg_exe())


def stderr_tail(text: str | bytes, lines: int = 12) -> str:
    """The last lines of ffmpeg's stderr: where it says what went wrong."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    kept = [ln for ln in text.strip().splitlines() if ln.strip()]
    return "\n".join(kept[-lines:])


def enlarge_pipe(fileobj, size: int = 1 << 20) -> None:
    """Ask Linux for a 1 MiB pipe buffer (fewer context switches per frame); ignored elsewhere."""
    try:
        import fcntl

        fcntl.fcntl(fileobj.fileno(), getattr(fcntl, "F_SETPIPE_SZ", 1031), size)
    except (ImportError, OSError, ValueError):
        pass


def read_exact(stream, out) -> int:
    """Fill the writable buffer ``out`` from the raw ``stream``; returns the bytes read (short at EOF)."""
    view = memoryview(out).cast("B")
    got = 0
    while got < len(view):
        n = stream.readinto(view[got:])
        if not n:
            break
        got += n
    return got


def run(argv: list[str], *, timeout: float | None = None) -> subprocess.CompletedProcess:
    """Run ffmpeg (``argv`` without the binary) to completion, capturing its output."""
    exe = ffmpeg_exe()
    log.debug("ffmpeg %s", " ".join(argv))
    return subprocess.run([exe, *argv], capture_output=True, timeout=timeout)
