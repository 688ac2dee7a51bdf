"""Where a multi-frame job's frames and masks come from.

Inputs: a video (a file on the server for the CLI and the WebUI's upload; base64 over the API,
written to a private temporary file), base64 images, or a folder of images in natural name order
(from the API only by a name inside a configured root). Frames are selected by source index
(``start``, ``end``, every ``every``-th, at most ``max_frames``) and fitted to the generation size.
With ``keep_alpha`` an image's transparency is fitted the same way and kept beside the RGB frame,
to be put back on the output (:func:`attach_alpha`). Masks come from a folder, paired by name or
position (:class:`MaskSet`).
"""

from __future__ import annotations

import base64
import binascii
import io
import logging
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..config import MAX_MULTIFRAME_FRAMES, FitMode, MaskMatch, MultiFrameParams
from ..errors import ConfigError, DecodeError
from ..paths import inside
from ..video import fit_frame, list_images, read_video, to_rgb
from ..video.reader import FOLDER_FPS

log = logging.getLogger("vidsd.multiframe.sources")

_IMAGE_ERRORS = (OSError, SyntaxError, ValueError, UnidentifiedImageError, Image.DecompressionBombError)
# leading bytes → a suffix ffmpeg and our reader recognise (the content decides, the suffix only helps)
_VIDEO_MAGIC: tuple[tuple[int, bytes, str], ...] = (
    (4, b"ftyp", ".mp4"),
    (0, b"\x1a\x45\xdf\xa3", ".webm"),
    (0, b"GIF8", ".gif"),
    (8, b"WEBP", ".webp"),
    (0, b"\x89PNG", ".png"),
    (0, b"RIFF", ".avi"),
)


@dataclass(frozen=True)
class InputFrame:
    """One frame to render.

    ``index`` is its position in the job (0-based), ``source_index`` its frame number in the
    source, ``name`` the file stem (folders) or the source frame number (videos, base64 lists),
    ``image`` ``uint8 (H, W, 3)`` RGB at the generation size, ``alpha`` ``uint8 (H, W)`` when
    ``keep_alpha`` is set and the source image has transparency, else ``None``.
    """

    index: int
    source_index: int
    name: str
    image: np.ndarray
    alpha: np.ndarray | None = None


class FrameSource:
    """The selected, fitted frames of one input; iterate it (each pass reads from the start).

    ``count`` is the number of frames a pass gives (exact for images, from the container's frame
    count for videos), ``fps`` the rate the output video gets (``params.fps``, else the source's
    rate divided by ``every`` so the clip keeps its duration), ``size`` (width, height), ``path`` the
    video file read (``None`` for images). ``params`` may be any object with the fields used
    (``start``, ``every``, ``max_frames``, ``fit``, ``fps``; ``end`` and ``keep_alpha`` optional). Use it as
    a context manager: a source made from a base64 video owns a temporary file until closed.
    """

    def __init__(
        self,
        frames: Callable[[], Iterator[InputFrame]],
        *,
        count: int,
        fps: float,
        size: tuple[int, int],
        cleanup: Callable[[], None] | None = None,
        path: Path | None = None,
    ):
        if count > MAX_MULTIFRAME_FRAMES:
            if cleanup is not None:
                cleanup()
            raise ConfigError(
                "max_frames", count, f"1..{MAX_MULTIFRAME_FRAMES}", "the selection is too long: set max_frames or every"
            )
        self._frames = frames
        self.count = count
        self.fps = fps
        self.size = size
        self.path = path  # the video file read (also a base64 upload's temporary file), else None
        self._cleanup = cleanup

    def __iter__(self) -> Iterator[InputFrame]:
        return self._frames()

    def close(self) -> None:
        if self._cleanup is not None:
            self._cleanup()
            self._cleanup = None

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


# --- choosing the input -------------------------------------------------------------------------


def input_kind(params: MultiFrameParams, video_path: str | Path | None = None) -> str:
    """Which input the job uses: ``"video_path"`` (a server file the host passes, e.g. the WebUI's
    upload), ``"input_video"``, ``"input_frames"`` or ``"input_dir"``. Exactly one must be given;
    otherwise :class:`ConfigError` naming the field."""
    given = [name for name in ("input_video", "input_frames", "input_dir") if getattr(params, name)]
    if video_path:
        if given:
            raise ConfigError(given[0], "given", "empty when a video is uploaded (one input only)")
        return "video_path"
    if not given:
        raise ConfigError("input_video", None, "one of input_video, input_frames or input_dir (or an uploaded video)")
    return given[0]


def resolve_in_roots(name: str, roots: Sequence[str | Path], *, field: str) -> Path:
    """The folder ``name`` inside the first of ``roots`` that has it; :class:`ConfigError` naming
    ``field`` when ``name`` leaves a root or no root has it."""
    if not roots:
        raise ConfigError(field, name, "empty (no input folders are configured)")
    for root in roots:
        path = inside(root, name, field=field)
        if path.is_dir():
            return path
    places = ", ".join(str(Path(r)) for r in roots)
    raise ConfigError(field, name, f"a folder inside {places}")


def open_source(
    params: MultiFrameParams,
    *,
    size: tuple[int, int],
    roots: Sequence[str | Path] = (),
    video_path: str | Path | None = None,
) -> FrameSource:
    """The job's frames from whichever input ``params`` (or ``video_path``) names; see :func:`input_kind`.
    ``roots`` are the folders ``input_dir`` may name something inside."""
    kind = input_kind(params, video_path)
    if kind == "video_path":
        return open_video(video_path, params, size)
    if kind == "input_video":
        return open_base64_video(params.input_video, params, size)
    if kind == "input_frames":
        return open_base64_images(params.input_frames, params, size)
    return open_folder(resolve_in_roots(params.input_dir, roots, field="input_dir"), params, size)


def open_path(path: str | Path, params: MultiFrameParams, size: tuple[int, int]) -> FrameSource:
    """A local folder of images or a video file (the CLI: any path)."""
    path = Path(path)
    return open_folder(path, params, size) if path.is_dir() else open_video(path, params, size)


# --- videos -------------------------------------------------------------------------------------


def open_video(
    path: str | Path,
    params: MultiFrameParams,
    size: tuple[int, int],
    *,
    field: str = "input_video",
    cleanup: Callable[[], None] | None = None,
) -> FrameSource:
    """Frames of a video file or animated image, decoded lazily at the source's own rate.
    ``cleanup`` runs when the source closes (or fails to open)."""
    try:
        reader = read_video(
            path,
            start=params.start,
            end=getattr(params, "end", None),
            every=params.every,
            max_frames=params.max_frames,
            size=size,
            fit=params.fit,
        )
    except DecodeError as e:
        if cleanup is not None:
            cleanup()
        raise ConfigError(field, Path(path).name, "a video ffmpeg can read", str(e)) from e
    fps = params.fps or reader.info.fps / params.every

    def frames() -> Iterator[InputFrame]:
        for k, image in enumerate(reader):
            source_index = params.start + k * params.every
            yield InputFrame(k, source_index, str(source_index), image)

    return FrameSource(frames, count=reader.expected_frames, fps=fps, size=size, cleanup=cleanup, path=Path(path))


def _strip_data_url(text: str) -> str:
    return text.partition(",")[2] if text.startswith("data:") else text


def decode_base64(text: str, *, field: str) -> bytes:
    """Bytes of a base64 text (a ``data:…;base64,`` prefix and whitespace allowed)."""
    try:
        return base64.b64decode("".join(_strip_data_url(text.strip()).split()), validate=True)
    except (binascii.Error, ValueError) as e:
        raise ConfigError(field, f"{text[:32]}…", "base64 text") from e


def _video_suffix(head: bytes) -> str:
    for offset, magic, suffix in _VIDEO_MAGIC:
        if head[offset : offset + len(magic)] == magic:
            return suffix
    return ".video"


def open_base64_video(text: str, params: MultiFrameParams, size: tuple[int, int]) -> FrameSource:
    """A base64 video written to a private temporary folder (removed when the source closes)."""
    data = decode_base64(text, field="input_video")
    folder = Path(tempfile.mkdtemp(prefix="vidsd-multiframe-"))

    def cleanup() -> None:
        shutil.rmtree(folder, ignore_errors=True)

    path = folder / f"input{_video_suffix(data[:12])}"
    try:
        path.write_bytes(data)
    except BaseException:
        cleanup()
        raise
    return open_video(path, params, size, cleanup=cleanup)


# --- images -------------------------------------------------------------------------------------


def selected_indices(total: int, params: MultiFrameParams) -> list[int]:
    """Source indices kept from ``total`` images: ``start`` … ``end`` − 1, every ``every``-th, at most
    ``max_frames``."""
    end = getattr(params, "end", None)  # duck typing: StylizeParams has no end
    stop = total if end is None else min(total, end)
    picked = list(range(params.start, stop, params.every))
    return picked if params.max_frames is None else picked[: params.max_frames]


def fit_plane(plane: np.ndarray, size: tuple[int, int], fit: FitMode) -> np.ndarray:
    """A single-channel ``uint8 (H, W)`` plane (alpha, mask) fitted like the frames (pad adds zeros)."""
    return fit_frame(np.repeat(plane[:, :, None], 3, axis=2), size, fit)[:, :, 0].copy()


def split_image(img: Image.Image, size: tuple[int, int], fit: FitMode, keep_alpha: bool):
    """``(rgb, alpha)`` of an opened image, both fitted to ``size``; ``alpha`` is ``None`` unless
    ``keep_alpha`` is set and the image has transparency."""
    has_alpha = img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info
    if keep_alpha and has_alpha:
        rgba = np.asarray(img.convert("RGBA"))
        return fit_frame(np.ascontiguousarray(rgba[..., :3]), size, fit), fit_plane(rgba[..., 3], size, fit)
    return fit_frame(to_rgb(img.convert("RGB")), size, fit), None


def _read_image(
    file: Path | io.BytesIO, what: str, field: str, size: tuple[int, int], params: MultiFrameParams
) -> tuple[np.ndarray, np.ndarray | None]:
    try:
        with Image.open(file) as img:
            img.load()
            return split_image(img, size, params.fit, getattr(params, "keep_alpha", False))
    except _IMAGE_ERRORS as e:
        raise ConfigError(field, what, "an image PIL can read (PNG, JPEG, WEBP…)", str(e)) from e


def open_folder(folder: str | Path, params: MultiFrameParams, size: tuple[int, int]) -> FrameSource:
    """Images of ``folder`` in natural name order (``2.png`` before ``10.png``); a folder has no rate,
    so the default rate is the reader's folder rate (8 fps) divided by ``every``."""
    folder = Path(folder)
    files = list_images(folder) if folder.is_dir() else []
    if not files:
        raise ConfigError("input_dir", folder.name, "a folder holding images (.png .jpg .webp …)")
    picked = selected_indices(len(files), params)

    def frames() -> Iterator[InputFrame]:
        for k, i in enumerate(picked):
            rgb, alpha = _read_image(files[i], files[i].name, "input_dir", size, params)
            yield InputFrame(k, i, files[i].stem, rgb, alpha)

    return FrameSource(frames, count=len(picked), fps=params.fps or FOLDER_FPS / params.every, size=size)


def open_base64_images(items: Sequence[str], params: MultiFrameParams, size: tuple[int, int]) -> FrameSource:
    """Base64 images in the order given, decoded one at a time."""
    picked = selected_indices(len(items), params)
    field = "input_frames"

    def frames() -> Iterator[InputFrame]:
        for k, i in enumerate(picked):
            data = decode_base64(items[i], field=field)
            rgb, alpha = _read_image(io.BytesIO(data), f"item {i}", field, size, params)
            yield InputFrame(k, i, str(i), rgb, alpha)

    return FrameSource(frames, count=len(picked), fps=params.fps or FOLDER_FPS / params.every, size=size)


def attach_alpha(image: np.ndarray, alpha: np.ndarray | None) -> np.ndarray:
    """``image`` (``(H, W, 3)``) with ``alpha`` as its fourth channel, or ``image`` when there is none."""
    if alpha is None:
        return image
    return np.concatenate([image[..., :3], alpha[..., None]], axis=2)


# --- masks --------------------------------------------------------------------------------------


class MaskSet:
    """The masks of a folder (white = redraw), paired with frames by name or by position.

    ``name``: the mask with the frame's file stem; for numbered frames (videos, base64 lists) a
    mask whose stem is that number (``12``, ``0012``). ``order``: the N-th mask in natural name
    order belongs to source frame N, so masks made from the same source line up whatever
    ``start``/``every`` are. Masks are fitted like the frames (grey levels kept). A frame without a
    mask is an error naming ``mask_dir``, not a silently unmasked frame.
    """

    def __init__(self, folder: Path, match: MaskMatch, size: tuple[int, int], fit: FitMode, label: str = ""):
        self.folder = folder
        self.match = MaskMatch(match)
        self.size = size
        self.fit = FitMode(fit)
        self.label = label or folder.name
        self.files = list_images(folder)
        self._by_stem = {p.stem: p for p in self.files}
        self._by_number = {int(p.stem): p for p in self.files if p.stem.isdigit()}

    def path_for(self, frame: InputFrame) -> Path:
        if self.match is MaskMatch.ORDER:
            path = self.files[frame.source_index] if frame.source_index < len(self.files) else None
        else:
            path = self._by_stem.get(frame.name)
            if path is None and frame.name.isdigit():
                path = self._by_number.get(int(frame.name))
        if path is None:
            hint = f"no mask for frame {frame.name} (matched by {self.match.value})"
            raise ConfigError("mask_dir", self.label, "a folder with a mask for every frame", hint)
        return path

    def for_frame(self, frame: InputFrame) -> np.ndarray:
        """The mask of ``frame`` as ``uint8 (H, W)`` at the generation size."""
        path = self.path_for(frame)
        try:
            with Image.open(path) as img:
                grey = np.asarray(img.convert("L"))
        except _IMAGE_ERRORS as e:
            raise ConfigError("mask_dir", path.name, "images PIL can read", str(e)) from e
        return fit_plane(grey, self.size, self.fit)


def open_masks(
    params: MultiFrameParams,
    *,
    size: tuple[int, int],
    roots: Sequence[str | Path] = (),
    folder: str | Path | None = None,
) -> MaskSet | None:
    """The job's masks: ``folder`` when the host gives a local one (CLI), else ``params.mask_dir``
    inside ``roots``; ``None`` when neither is set."""
    if folder is None and not params.mask_dir:
        return None
    path = Path(folder) if folder is not None else resolve_in_roots(params.mask_dir, roots, field="mask_dir")
    masks = MaskSet(path, params.mask_match, size, params.fit, label=params.mask_dir or path.name)
    if not masks.files:
        raise ConfigError("mask_dir", masks.label, "a folder holding mask images")
    return masks
