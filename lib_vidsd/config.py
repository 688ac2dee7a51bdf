"""Every parameter of the suite, defined once: type, bounds, default and doc.

The A1111 layer builds its widgets, infotext entries and API fields from these
models; the CLI builds its options from them. Models use the pydantic v1 API
(A1111 ships pydantic 1; under pydantic 2 the ``pydantic.v1`` shim is used).

Use :func:`validate` to build a model: it applies defaults, then validates, and
turns any failure into a :class:`~lib_vidsd.errors.ConfigError` naming the field,
the value and what is allowed.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, List, Optional, Tuple, Type, TypeVar

try:  # pydantic 2 ships the v1 API under pydantic.v1
    from pydantic.v1 import BaseModel, Extra, Field, ValidationError, validator
except ImportError:  # pragma: no cover - pydantic 1 (A1111)
    from pydantic import BaseModel, Extra, Field, ValidationError, validator

from .errors import ConfigError

M = TypeVar("M", bound="Params")

MAX_FPS = 240.0
MAX_SIDE = 8192


class Choice(str, enum.Enum):
    """A string enum whose members compare equal to their plain values."""

    def __str__(self) -> str:
        return self.value

    @classmethod
    def values(cls) -> list[str]:
        return [m.value for m in cls]


class VideoFormat(Choice):
    GIF = "gif"
    MP4 = "mp4"
    WEBM = "webm"
    WEBP = "webp"
    APNG = "apng"
    PNG = "png"  # a folder of numbered PNG frames


class Codec(Choice):
    H264 = "h264"
    H265 = "h265"
    VP9 = "vp9"
    AV1 = "av1"


class EvenMode(Choice):
    """How odd frame sizes are made even for yuv420p codecs."""

    PAD = "pad"
    CROP = "crop"
    SCALE = "scale"


class GifDither(Choice):
    NONE = "none"
    BAYER = "bayer"
    FLOYD_STEINBERG = "floyd_steinberg"
    SIERRA2_4A = "sierra2_4a"


class FitMode(Choice):
    """How frames of another size are brought to the requested width × height."""

    CROP = "crop"  # scale to cover, cut the centre
    RESIZE = "resize"  # stretch
    PAD = "pad"  # scale to fit, black borders


class Params(BaseModel):
    """Base of every parameter model: unknown keys are errors, assignments are validated."""

    class Config:
        extra = Extra.forbid
        validate_assignment = True
        use_enum_values = False
        allow_mutation = True


def parse_fps(value: Any) -> float:
    """Accept a number or a ``"num/den"`` string (``"30000/1001"``) and return frames per second."""
    if isinstance(value, str):
        text = value.strip()
        try:
            value = float(Fraction(text))
        except (ValueError, ZeroDivisionError):
            raise ValueError("a number or num/den") from None
    if isinstance(value, bool):
        raise ValueError("a number")
    return float(value)


def fps_fraction(fps: float) -> Fraction:
    """The exact rate to hand ffmpeg: 29.97 → 2997/100, 30000/1001 → 30000/1001."""
    return Fraction(fps).limit_denominator(1001)


class EncodeOptions(Params):
    """How frames become a video file (``lib_vidsd.video.write_video``)."""

    format: Optional[VideoFormat] = Field(
        None, description="Container; taken from the file suffix when not given (.gif .mp4 .webm .webp .png)."
    )
    codec: Optional[Codec] = Field(
        None, description="Video codec for MP4 (h264, h265, av1) and WEBM (vp9, av1); default h264 / vp9."
    )
    fps: float = Field(8.0, gt=0, le=MAX_FPS, description="Frames per second; fractions such as 30000/1001 work.")
    crf: Optional[int] = Field(
        None,
        ge=0,
        le=63,
        description="Constant rate factor (lower is better). Defaults: H.264 23, H.265 28, VP9 34, AV1 28.",
    )
    preset: Optional[str] = Field(
        None,
        description="Encoder speed preset: H.264/H.265 ultrafast…veryslow (default medium); "
        "VP9 deadline good/best/realtime; AV1 speed 0-13 (SVT-AV1) or 0-8 (libaom).",
    )
    loop: int = Field(0, ge=0, le=65535, description="How many times an animation plays; 0 plays forever.")
    quality: int = Field(80, ge=0, le=100, description="WEBP quality (0-100) when not lossless.")
    lossless: bool = Field(False, description="WEBP: encode losslessly.")
    gif_palette: bool = Field(True, description="GIF: compute an optimal palette for the clip (palettegen).")
    gif_dither: GifDither = Field(GifDither.SIERRA2_4A, description="GIF: dithering when mapping to the palette.")
    gif_optimize: bool = Field(
        False,
        description="GIF: store only the changed rectangle of each frame, unchanged pixels transparent (smaller files).",
    )
    even: EvenMode = Field(EvenMode.PAD, description="Odd sizes for MP4/WEBM: pad, crop or scale to even.")
    title: Optional[str] = Field(None, description="Title written into the file's metadata.")
    comment: Optional[str] = Field(None, description="Comment/description written into the file's metadata.")
    artist: Optional[str] = Field(None, description="Artist written into the file's metadata.")
    audio_from: Optional[str] = Field(
        None, description="A video whose audio track is added to the output (MP4/WEBM only)."
    )

    _fps = validator("fps", pre=True, allow_reuse=True)(parse_fps)

    @validator("preset")
    def _preset_not_blank(cls, value):
        if value is not None and not value.strip():
            return None
        return value


class ReadOptions(Params):
    """How a video file or a folder of images becomes frames (``lib_vidsd.video.read_video``)."""

    fps: Optional[float] = Field(
        None, gt=0, le=MAX_FPS, description="Resample to this rate; the source rate when not given."
    )
    every: int = Field(1, ge=1, le=10000, description="Keep every N-th frame (after resampling).")
    start: int = Field(0, ge=0, description="First frame to keep (index after resampling).")
    end: Optional[int] = Field(None, ge=1, description="Stop before this frame index (after resampling).")
    max_frames: Optional[int] = Field(None, ge=1, description="Keep at most this many frames.")
    size: Optional[Tuple[int, int]] = Field(None, description="Fit every frame to width × height.")
    fit: FitMode = Field(FitMode.CROP, description="How frames are fitted to `size`: crop, resize or pad.")

    _fps = validator("fps", pre=True, allow_reuse=True)(lambda v: None if v is None else parse_fps(v))

    @validator("size")
    def _size_in_range(cls, value):
        if value is not None:
            w, h = value
            if not (1 <= w <= MAX_SIDE and 1 <= h <= MAX_SIDE):
                raise ValueError(f"width and height between 1 and {MAX_SIDE}")
        return value

    @validator("end")
    def _end_after_start(cls, value, values):
        if value is not None and value <= values.get("start", 0):
            raise ValueError("greater than start")
        return value


# --- introspection shared by the CLI and the A1111 binding -----------------------------------


@dataclass(frozen=True)
class FieldInfo:
    name: str
    default: Any
    doc: str
    choices: tuple[str, ...] | None
    minimum: float | None
    maximum: float | None
    kind: type


def describe(model: Type[Params]) -> list[FieldInfo]:
    """Name, default, doc, choices and bounds of every field of ``model``, in declaration order."""
    out = []
    for name, f in model.__fields__.items():
        info = f.field_info
        lo = getattr(info, "ge", None)
        if lo is None:
            lo = getattr(info, "gt", None)
        hi = getattr(info, "le", None)
        if hi is None:
            hi = getattr(info, "lt", None)
        kind = f.outer_type_ if f.outer_type_ is not None else f.type_
        choices = tuple(f.type_.values()) if isinstance(f.type_, type) and issubclass(f.type_, Choice) else None
        default = f.default.value if isinstance(f.default, Choice) else f.default
        if isinstance(default, list):
            default = [d.value if isinstance(d, Choice) else d for d in default]
        out.append(FieldInfo(name, default, info.description or "", choices, lo, hi, kind))
    return out


def _allowed_text(model: Type[Params], field: str, message: str) -> str:
    for info in describe(model):
        if info.name != field:
            continue
        if info.choices:
            return ", ".join(info.choices)
        if info.minimum is not None or info.maximum is not None:
            lo = "" if info.minimum is None else f"{info.minimum:g}"
            hi = "" if info.maximum is None else f"{info.maximum:g}"
            return f"{lo}..{hi}"
    return message


def validate(model: Type[M], values: dict[str, Any] | None = None, **kwargs: Any) -> M:
    """Build ``model`` from ``values`` and keyword arguments; errors become :class:`ConfigError`."""
    data = dict(values or {})
    data.update(kwargs)
    try:
        return model(**data)
    except ValidationError as e:
        first = e.errors()[0]
        loc = first.get("loc") or ("?",)
        field = str(loc[0])
        if first.get("type") == "value_error.extra":
            known = ", ".join(model.__fields__)
            raise ConfigError(field, data.get(field), f"known fields: {known}", "unknown field") from e
        message = first.get("msg", "a valid value")
        # a validator's own ValueError says best what is allowed; otherwise derive it from the field
        allowed = message if first.get("type") == "value_error" else _allowed_text(model, field, message)
        raise ConfigError(field, data.get(field), allowed) from e


# --- AnimateDiff --------------------------------------------------------------------------------

MAX_FRAMES = 1024
MAX_CONTEXT = 64  # the longest positional table of any family (AnimateLCM)


class ClosedLoop(Choice):
    """How the ends of the clip relate (sd-webui-animatediff's names).

    N: no wrap-around windows at level 0 (an open clip); R-P: windows wrap, prompt travel does not;
    R+P: windows wrap and prompt travel blends from the last key back to the first; A: like R+P
    with extra wrapping windows (window starts run ``overlap`` frames further).
    """

    N = "N"
    R_MINUS_P = "R-P"
    R_PLUS_P = "R+P"
    A = "A"


class FuseMethod(Choice):
    """How overlapping windows' predictions are combined for a frame they share."""

    FLAT = "flat"  # plain average of every window that covered the frame
    PYRAMID = "pyramid"  # weights fall off towards a window's edges


class FreeInitFilter(Choice):
    BUTTERWORTH = "butterworth"
    GAUSSIAN = "gaussian"
    IDEAL = "ideal"
    BOX = "box"


class SaveFormat(Choice):
    """What an AnimateDiff job saves (sd-webui-animatediff's names; the API also takes lower case)."""

    GIF = "GIF"
    MP4 = "MP4"
    WEBP = "WEBP"
    WEBM = "WEBM"
    PNG = "PNG"  # the frames, each with the infotext
    TXT = "TXT"  # the infotext beside the video
    FRAME = "Frame"  # API only: return the frames too


class InterpMethod(Choice):
    """Frame interpolation of the result: a method of ``lib_vidsd.interpolate`` (FILM and RIFE
    need a weights file in the interpolation models folder)."""

    OFF = "Off"
    FILM = "FILM"
    RIFE = "RIFE"
    BLEND = "blend"
    FLOW = "flow"
    MCI = "mci"

    @property
    def method(self) -> str:
        """The name in ``lib_vidsd.interpolate.METHODS``."""
        return self.value.lower()


class DeflickerMode(Choice):
    """Patch-match deflicker (``lib_vidsd.consistency.deflicker``) blend scheme, or none."""

    NONE = "none"
    FAST = "fast"  # O(n log n) matches whatever the window (FastBlend's Fast, PySynth's fastest)
    BALANCED = "balanced"  # every window frame matched to the target (FastBlend's Balanced, PySynth's slowest)
    ACCURATE = "accurate"  # balanced with a joint, consensus-seeking match (about twice the cost)


def _save_formats(value):
    if value is None:
        return value
    if isinstance(value, str):
        value = [v for v in value.replace(";", ",").split(",") if v.strip()]
    by_lower = {f.value.lower(): f.value for f in SaveFormat}
    out = []
    for item in value:
        key = str(getattr(item, "value", item)).strip().lower()
        if key not in by_lower:
            raise ValueError(", ".join(SaveFormat.values()))
        if by_lower[key] not in out:
            out.append(by_lower[key])
    return out


class AnimateDiffParams(Params):
    """One AnimateDiff job. Names follow sd-webui-animatediff's API so its clients work unchanged."""

    enable: bool = Field(False, description="Render an animation instead of still images.")
    model: str = Field("mm_sd15_v3.safetensors", description="Motion module file (in the motion-module folder).")
    video_length: int = Field(0, ge=0, le=MAX_FRAMES, description="Number of frames; 0 uses the context batch size.")
    fps: float = Field(8.0, gt=0, le=MAX_FPS, description="Frames per second of the saved animation.")
    loop_number: int = Field(0, ge=0, le=65535, description="How many times the animation plays; 0 loops forever.")
    closed_loop: ClosedLoop = Field(
        ClosedLoop.R_MINUS_P,
        description="N: open clip; R-P: windows wrap around; R+P: also blend prompts across the wrap; "
        "A: more wrapping windows for a seamless loop.",
    )
    batch_size: int = Field(
        16,
        ge=1,
        le=MAX_CONTEXT,
        description="Context batch size: frames the motion module sees at once (16 suits most modules; "
        "at most the module's table length).",
    )
    stride: int = Field(1, ge=1, le=8, description="Also run windows over every 2nd, 4th, … frame (1 = off).")
    overlap: int = Field(
        -1,
        ge=-1,
        le=MAX_CONTEXT - 1,
        description="Frames shared by neighbouring windows; -1 = a quarter of the context batch size.",
    )
    fuse: FuseMethod = Field(
        FuseMethod.FLAT, description="How overlapping windows are combined: flat average or pyramid weights."
    )
    freeinit_enable: bool = Field(False, description="FreeInit: re-noise and re-sample to fix low-frequency flicker.")
    freeinit_filter: FreeInitFilter = Field(FreeInitFilter.BUTTERWORTH, description="FreeInit low-pass filter shape.")
    freeinit_ds: float = Field(0.25, ge=0, le=1, description="FreeInit spatial stop frequency (0-1).")
    freeinit_dt: float = Field(0.25, ge=0, le=1, description="FreeInit temporal stop frequency (0-1).")
    freeinit_iters: int = Field(3, ge=2, le=10, description="FreeInit sampling iterations (the first is plain).")
    latent_power: float = Field(
        1.0, ge=0, le=10, description="img2img: how fast the first frame's influence decays over the frames."
    )
    latent_scale: float = Field(
        32.0, gt=0, le=128, description="img2img: how strongly the first frame's latent is kept."
    )
    latent_power_last: float = Field(
        1.0, ge=0, le=10, description="img2img: decay of the last frame's influence, counted from the end."
    )
    latent_scale_last: float = Field(32.0, gt=0, le=128, description="img2img: strength of the last frame's latent.")
    motion_lora: str = Field(
        "", description="Motion LoRA file (in the motion-module folder, 'lora' in its name); empty for none."
    )
    motion_lora_strength: float = Field(1.0, ge=-2, le=2, description="How strongly the motion LoRA bends the motion.")
    format: List[SaveFormat] = Field(
        [SaveFormat.GIF, SaveFormat.PNG], description="What to save: GIF, MP4, WEBP, WEBM, PNG frames, TXT infotext."
    )
    interp: InterpMethod = Field(InterpMethod.OFF, description="Frame interpolation of the result.")
    interp_model: str = Field(
        "", description="FILM/RIFE weights file in the interpolation models folder; empty picks the default."
    )
    interp_x: int = Field(
        10,
        ge=2,
        le=64,
        description="Interpolation factor: each gap gets interp_x - 1 new frames; the video keeps its FPS, "
        "so it plays longer (raise FPS to keep the duration).",
    )
    last_frame: Optional[Any] = Field(None, description="img2img: an optional last frame (image; base64 in the API).")
    request_id: str = Field("", description="Tag added to the output file names (letters, digits, - and _ kept).")
    # accepted so sd-webui-animatediff clients keep working; video input is Multi-frame rendering's job
    video_source: Optional[Any] = Field(
        None, description="Not supported here: use Multi-frame rendering for video input."
    )
    video_path: str = Field("", description="Not supported here: use Multi-frame rendering for video input.")
    mask_path: str = Field("", description="Not supported here: use Multi-frame rendering for video input.")
    is_i2i_batch: bool = Field(False, description="Set by the WebUI for img2img batch jobs.")
    deflicker: DeflickerMode = Field(
        DeflickerMode.NONE,
        description="Patch-match deflicker of the animation (guided by its own frames): none, fast, balanced, "
        "accurate.",
    )
    deflicker_window: int = Field(
        15, ge=1, le=1000, description="Deflicker: frames on each side blended into each frame."
    )

    _formats = validator("format", pre=True, allow_reuse=True)(_save_formats)

    @validator("request_id")
    def _safe_request_id(cls, value):
        return "".join(ch for ch in value if ch.isascii() and (ch.isalnum() or ch in "-_"))[:64]

    @validator("video_source", "video_path", "mask_path")
    def _no_video_input(cls, value):
        if value:
            raise ValueError("empty (video input is handled by the Multi-frame rendering script)")
        return value

    @validator("overlap")
    def _overlap_below_context(cls, value, values):
        size = values.get("batch_size")
        if size is not None and value >= size:
            raise ValueError(f"-1 or 0..{size - 1} (less than the context batch size {size})")
        return value

    def effective_overlap(self) -> int:
        """``overlap`` with -1 resolved to a quarter of the context batch size."""
        return self.batch_size // 4 if self.overlap == -1 else self.overlap


# --- generation (the standalone CLI's counterpart of A1111's own fields) ------------------------


class SchedulerName(Choice):
    DDIM = "ddim"
    EULER = "euler"
    EULER_A = "euler_a"
    DPMPP_2M = "dpmpp_2m"
    LCM = "lcm"


class GenerationParams(Params):
    """What A1111 asks on its own page; the standalone pipeline needs the same."""

    prompt: str = Field("", description="Prompt; keyframe lines ('0: …', '8: …') make it travel.")
    negative_prompt: str = Field("", description="Negative prompt.")
    steps: int = Field(20, ge=1, le=150, description="Sampling steps.")
    cfg_scale: float = Field(7.5, ge=1, le=30, description="Classifier-free guidance scale (1 = no guidance).")
    seed: int = Field(-1, ge=-1, le=2**32 - 1, description="Seed; -1 picks one at random.")
    width: int = Field(512, ge=64, le=2048, description="Frame width in pixels (a multiple of 8).")
    height: int = Field(512, ge=64, le=2048, description="Frame height in pixels (a multiple of 8).")
    scheduler: SchedulerName = Field(SchedulerName.DDIM, description="Sampler.")
    denoising_strength: float = Field(
        0.75, ge=0, le=1, description="With an init image: how much of it is re-drawn (1 = all)."
    )

    @validator("width", "height")
    def _multiple_of_8(cls, value):
        if value % 8:
            raise ValueError(f"a multiple of 8 (e.g. {value - value % 8})")
        return value


# --- Steps animation ------------------------------------------------------------------------------

MAX_STEPS_DURATION = 600.0


class StepsInterpolation(Choice):
    """How the recorded steps are spread over the movie's duration: shown as they are, or with
    new frames made between them by a method of ``lib_vidsd.interpolate``."""

    NONE = "none"
    BLEND = "blend"
    MCI = "mci"
    FLOW = "flow"
    FILM = "film"
    RIFE = "rife"


class StepsCodec(Choice):
    H264 = "h264"
    H265 = "h265"
    VP9 = "vp9"
    AV1 = "av1"
    GIF = "gif"
    WEBP = "webp"


class StepsDecode(Choice):
    """How a recorded latent becomes a picture."""

    FULL = "full"  # the model's VAE: exact, costs about three UNet steps per frame at 512²
    FAST = "fast"  # a fixed linear map of the 4 latent channels to RGB, at latent resolution, then scaled up
    APPROX_NN = "approx_nn"  # WebUI only: A1111's "Approx NN" preview network, when its file is present
    TAESD = "taesd"  # WebUI only: A1111's TAESD preview decoder, when its file is present


class StepsResolution(Choice):
    FULL = "full"
    HALF = "half"
    QUARTER = "quarter"


class StepsCapture(Choice):
    DENOISED = "denoised"  # the model's estimate of the finished image at each step (like live previews)
    NOISY = "noisy"  # the sampler's current latent, noise included


class StepsAnimateDiffView(Choice):
    """With AnimateDiff, which picture of the animation each step shows."""

    FRAME0 = "frame0"
    GRID = "grid"


def _relative_folder(value: str) -> str:
    """A folder below the save location: relative, forward slashes, no ``..``, no drive."""
    text = str(value).strip().replace("\\", "/")
    parts = [p for p in text.split("/") if p not in ("", ".")]
    if text.startswith("/") or (parts and ":" in parts[0]) or any(p == ".." for p in parts):
        raise ValueError("a folder relative to the save location (no '..', no absolute path)")
    if any(ch in p for p in parts for ch in '<>:"|?*\0'):
        raise ValueError('a folder name without < > : " | ? * characters')
    return "/".join(parts)


class StepsAnimationParams(Params):
    """Steps animation: the sampler's intermediate steps of one generation as a movie."""

    enabled: bool = Field(False, description="Record the sampling steps and make a movie of them.")
    duration: float = Field(
        4.0, gt=0, le=MAX_STEPS_DURATION, description="Seconds the recorded steps take in the movie."
    )
    interpolation: StepsInterpolation = Field(
        StepsInterpolation.NONE,
        description="none: each step is shown for duration / steps; otherwise frames are made between the "
        "steps (blend, mci, flow, film, rife) for a smooth movie at the frame rate below.",
    )
    fps: float = Field(
        30.0, gt=0, le=MAX_FPS, description="Movie frame rate when interpolating (without: steps / duration)."
    )
    interp_model: str = Field(
        "", description="FILM/RIFE weights file in the interpolation models folder; empty picks the default."
    )
    codec: StepsCodec = Field(
        StepsCodec.H264, description="Movie codec: MP4 (h264, h265, av1), WEBM (vp9), GIF or WEBP."
    )
    skip_steps: int = Field(0, ge=0, le=1000, description="Leave out this many first (noisiest) steps.")
    hold: float = Field(0.0, ge=0, le=60, description="Seconds the final image stays on screen at the end.")
    decode: StepsDecode = Field(
        StepsDecode.FULL,
        description="full: the VAE (exact, slow); fast: a linear latent-to-RGB estimate; approx_nn/taesd: "
        "the WebUI's preview decoders when their files are present.",
    )
    resolution: StepsResolution = Field(StepsResolution.FULL, description="Movie size: full, half or quarter.")
    capture: StepsCapture = Field(
        StepsCapture.DENOISED,
        description="denoised: the model's estimate of the final image at each step; noisy: the latent as it is.",
    )
    hires_pass: bool = Field(True, description="With hires fix, record the second pass too (after the first).")
    run_incomplete: bool = Field(
        True, description="Make the movie also when the run was interrupted or the sampler stopped early."
    )
    delete_frames: bool = Field(True, description="Delete the intermediate frames once the movie is written.")
    create_movie: bool = Field(True, description="Make the movie; off keeps only the frames.")
    frames_folder: str = Field("steps/frames", description="Folder for the frames, relative to the save location.")
    movie_folder: str = Field("steps", description="Folder for the movie, relative to the save location.")
    title: str = Field("", description="Movie title metadata; empty uses the start of the prompt.")
    artist: str = Field("", description="Movie artist metadata.")
    animatediff_view: StepsAnimateDiffView = Field(
        StepsAnimateDiffView.FRAME0,
        description="With AnimateDiff: frame0 shows the first frame of the animation at each step, grid all frames.",
    )

    _fps = validator("fps", pre=True, allow_reuse=True)(parse_fps)
    _folders = validator("frames_folder", "movie_folder", allow_reuse=True)(_relative_folder)


# --- Multi-frame rendering ------------------------------------------------------------------------

MAX_MULTIFRAME_FRAMES = 5000  # frames one job renders (about 3 minutes at 30 fps)
MAX_UPLOAD_BYTES = 1 << 30  # a base64 video or all base64 frames together, decoded
MAX_INTERP_X = 16


class MultiFrameMode(Choice):
    """How each frame is tied to the frames before it."""

    FILMSTRIP = "filmstrip"  # an inpainted strip [loopback | current | third cell], the centre cropped out
    CROSS_FRAME = "cross_frame"  # one frame at a time; self-attention also sees the first and previous frames
    BOTH = "both"  # the strip, rendered with cross-frame attention

    @property
    def strip(self) -> bool:
        return self is not MultiFrameMode.CROSS_FRAME

    @property
    def cross_frame(self) -> bool:
        return self is not MultiFrameMode.FILMSTRIP


class ThirdFrame(Choice):
    """The right-hand cell of the strip (the reference script's names)."""

    NONE = "None"  # no third cell: the strip is two frames wide
    FIRST_GEN = "FirstGen"  # the first output
    ORIGINAL_IMG = "OriginalImg"  # the current input frame
    HISTORICAL = "Historical"  # the output two frames back (the first output for frame 1)


class LoopbackSource(Choice):
    """The left-hand cell of the strip."""

    PREVIOUS_FRAME = "PreviousFrame"
    INPUT_FRAME = "InputFrame"
    FIRST_GEN = "FirstGen"


class SeedMode(Choice):
    """The seed of frame k from the job's seed s: s; s + k; or drawn from a generator seeded with s
    (frame 0 always uses s, so a run is reproducible)."""

    FIXED = "fixed"
    INCREMENT = "increment"
    RANDOM = "random"


class MaskMatch(Choice):
    """How masks in ``mask_dir`` are paired with frames."""

    NAME = "name"  # same file stem (for video input: the frame number, ``12`` or ``0012``)
    ORDER = "order"  # the N-th mask in natural order belongs to source frame N


class FrameInterpolation(Choice):
    """Frames made between the rendered ones, by a method of ``lib_vidsd.interpolate``."""

    NONE = "none"
    BLEND = "blend"
    MCI = "mci"
    FLOW = "flow"
    FILM = "film"
    RIFE = "rife"


class MultiFrameVideo(Choice):
    """The videos a multi-frame job can write (the frames themselves are always PNG files);
    values are :class:`VideoFormat` names."""

    GIF = "gif"
    MP4 = "mp4"
    WEBM = "webm"
    WEBP = "webp"
    APNG = "apng"


def _video_formats(value):
    """A list (or a comma-separated string) of video formats, lower-cased, without repeats."""
    if value is None:
        return []
    if isinstance(value, str):
        value = [v for v in value.replace(";", ",").split(",") if v.strip()]
    out = []
    for item in value:
        key = str(getattr(item, "value", item)).strip().lower()
        if key not in MultiFrameVideo.values():
            raise ValueError(", ".join(MultiFrameVideo.values()) + " (the frames are always saved as PNG)")
        if key not in out:
            out.append(key)
    return out


def _base64_size(text: str) -> int:
    """Decoded bytes of a base64 text (a ``data:…;base64,`` prefix ignored), without decoding it."""
    return len(text.partition(",")[2] if text.startswith("data:") else text) * 3 // 4


def _folder_in_root(value: str) -> str:
    """A folder named relative to a configured root (resolved and checked against it when used)."""
    try:
        return _relative_folder(value)
    except ValueError:
        raise ValueError("a folder name inside a configured folder (no '..', no absolute path)") from None


def _base64_video(value):
    """A base64 video upload (empty text: none), at most MAX_UPLOAD_BYTES decoded."""
    if value is not None and not value.strip():
        return None
    if value is not None and _base64_size(value) > MAX_UPLOAD_BYTES:
        raise ValueError(f"a video of at most {MAX_UPLOAD_BYTES >> 20} MiB")
    return value


def _frames_alone(value, values):
    """Base64 frames: the only input when given, at most MAX_MULTIFRAME_FRAMES, MAX_UPLOAD_BYTES together."""
    if not value:
        return None
    if values.get("input_video"):
        raise ValueError("empty when input_video is given (one input only)")
    if len(value) > MAX_MULTIFRAME_FRAMES:
        raise ValueError(f"at most {MAX_MULTIFRAME_FRAMES} images")
    if sum(_base64_size(v) for v in value) > MAX_UPLOAD_BYTES:
        raise ValueError(f"images of at most {MAX_UPLOAD_BYTES >> 20} MiB together")
    return value


def _dir_alone(value, values):
    """A server folder: the only input when given."""
    if value and (values.get("input_video") or values.get("input_frames")):
        raise ValueError("empty when input_video or input_frames is given (one input only)")
    return value


def safe_folder_name(value: str, limit: int = 80) -> str:
    """Letters, digits, ``-``, ``_`` and ``.`` of ``value`` (spaces become ``_``); no dot or ``_`` at
    either end (no hidden folders, nothing Windows would trim)."""
    text = "".join(ch if ch != " " else "_" for ch in str(value).strip())
    text = "".join(ch for ch in text if ch.isascii() and (ch.isalnum() or ch in "-_."))
    return text.strip("._")[:limit].rstrip("._")


class MultiFrameParams(Params):
    """One Multi-frame rendering job (the img2img script; ``python -m lib_vidsd multiframe``).

    Exactly one input: ``input_video``, ``input_frames`` or ``input_dir`` (the WebUI may pass an
    uploaded video's path instead; see ``lib_vidsd.multiframe.sources.input_kind``). The frame size,
    prompt, seed and the later frames' denoising strength are the host's own (A1111's img2img fields).
    """

    input_video: Optional[str] = Field(
        None, description="API: the input video (any format ffmpeg reads, or GIF/WEBP/APNG) as base64."
    )
    input_frames: Optional[List[str]] = Field(
        None, description="API: the input frames as base64 images (PNG alpha kept with keep_alpha), in order."
    )
    input_dir: str = Field("", description="A folder of input frames: a name inside a configured input folder.")
    start: int = Field(0, ge=0, le=1_000_000, description="First source frame to use (0-based).")
    end: Optional[int] = Field(None, ge=1, le=1_000_000, description="Stop before this source frame; all when empty.")
    every: int = Field(1, ge=1, le=1000, description="Use every N-th source frame (from start).")
    max_frames: Optional[int] = Field(
        None, ge=1, le=MAX_MULTIFRAME_FRAMES, description="Render at most this many frames; all selected when empty."
    )
    fit: FitMode = Field(
        FitMode.CROP, description="How frames of another size fit the generation size: crop, resize or pad."
    )
    fps: Optional[float] = Field(
        None,
        gt=0,
        le=MAX_FPS,
        description="Frame rate of the output video; empty: the source's rate divided by every (same duration).",
    )
    mode: MultiFrameMode = Field(
        MultiFrameMode.FILMSTRIP,
        description="filmstrip: inpaint the frame in a strip beside earlier outputs; cross_frame: attention "
        "also sees the first and previous frames (no strip); both: the strip with cross-frame attention.",
    )
    first_denoise: float = Field(1.0, ge=0, le=1, description="Denoising strength of the first frame.")
    third_frame: ThirdFrame = Field(
        ThirdFrame.FIRST_GEN,
        description="Right cell of the strip: None (strip two frames wide), FirstGen (first output), "
        "OriginalImg (current input frame) or Historical (the output two frames back).",
    )
    loopback_source: LoopbackSource = Field(
        LoopbackSource.PREVIOUS_FRAME,
        description="Left cell of the strip: PreviousFrame (previous output), InputFrame or FirstGen.",
    )
    color_correction: bool = Field(False, description="Match each output's colours to the first output (LAB).")
    color_strength: float = Field(1.0, ge=0, le=1, description="How fully colour correction is applied (0-1).")
    seed_mode: SeedMode = Field(
        SeedMode.FIXED, description="Seed per frame: fixed (same seed), increment (seed + frame) or random."
    )
    frame_prompts: str = Field(
        "",
        description="Prompts per frame: one per line (the last one holds), or prompt-travel lines ('0: …', "
        "'8: …'); empty uses the prompt.",
    )
    mask_dir: str = Field("", description="A folder of masks (white = redraw): a name inside a configured folder.")
    mask_match: MaskMatch = Field(
        MaskMatch.NAME, description="Pair masks with frames by file name (name) or by position (order)."
    )
    keep_alpha: bool = Field(False, description="Give each output the transparency of its input frame.")
    output_name: str = Field(
        "", description="Name of the output folder (letters, digits, - _ . kept); empty picks one."
    )
    format: List[MultiFrameVideo] = Field(
        [MultiFrameVideo.MP4], description="Videos to write: gif, mp4, webm, webp, apng (frames are always PNG)."
    )
    loop: int = Field(0, ge=0, le=65535, description="How many times GIF/WEBP/APNG play; 0 loops forever.")
    interp: FrameInterpolation = Field(
        FrameInterpolation.NONE,
        description="Frames made between the rendered ones: none, blend, mci, flow, film, rife.",
    )
    interp_model: str = Field(
        "", description="FILM/RIFE weights file in the interpolation models folder; empty picks the default."
    )
    interp_x: int = Field(
        2,
        ge=2,
        le=MAX_INTERP_X,
        description="Interpolation factor: interp_x - 1 new frames per gap; the video's rate rises as much, "
        "so it keeps its duration.",
    )
    resume: bool = Field(False, description="Continue a stopped job in the same output folder from its last frame.")
    deflicker: DeflickerMode = Field(
        DeflickerMode.NONE,
        description="Patch-match deflicker of the rendered frames, guided by the source frames: none, fast, "
        "balanced, accurate.",
    )
    deflicker_window: int = Field(
        15, ge=1, le=1000, description="Deflicker: frames on each side blended into each frame."
    )

    _fps = validator("fps", pre=True, allow_reuse=True)(lambda v: None if v in (None, "") else parse_fps(v))
    _formats = validator("format", pre=True, allow_reuse=True)(_video_formats)
    _folders = validator("input_dir", "mask_dir", allow_reuse=True)(_folder_in_root)

    _video = validator("input_video", allow_reuse=True)(_base64_video)
    _frames = validator("input_frames", always=True, allow_reuse=True)(_frames_alone)
    _one_input = validator("input_dir", allow_reuse=True)(_dir_alone)

    @validator("end")
    def _end_after_start(cls, value, values):
        if value is not None and value <= values.get("start", 0):
            raise ValueError("greater than start")
        return value

    @validator("output_name")
    def _safe_output_name(cls, value):
        return safe_folder_name(value)


# --- Keyframe animation -------------------------------------------------------------------------

MAX_KEYFRAME_FRAMES = 5000


class KeyframeMode(Choice):
    """Where each frame of a keyframe animation starts from."""

    NONE = "none"  # noise (txt2img), or the init image for every frame (img2img tab); frames can batch
    MOTION_2D = "2d"  # the previous output moved by zoom/angle/translation, then img2img (loopback)
    VIDEO = "video"  # the frames of an input video as init images; frames can batch


class KeyframeCurve(Choice):
    """Slerp weights between two prompt keyframes (``lib_vidsd.schedule.curves``)."""

    LINEAR = "linear"
    SINE = "sine"  # interpolation_args: frequencies, "1" rises and falls back, "0.5" eases to the next key
    CURVE = "curve"  # interpolation_args: a curve "0: (0), 30: (1)" read at the absolute frame


class BorderMode(Choice):
    """What fills the area a 2D motion uncovers (``lib_vidsd.keyframe.BORDER_MODES``)."""

    REPLICATE = "replicate"
    REFLECT = "reflect"
    WRAP = "wrap"
    BLACK = "black"


class ColorMatchSpace(Choice):
    """Colour space of the histogram match to the first frame (``lib_vidsd.keyframe.match_colors``)."""

    LAB = "lab"
    LAB_FLOAT = "lab_float"
    HSV = "hsv"
    RGB = "rgb"


class AudioComponent(Choice):
    BOTH = "both"
    PERCUSSIVE = "percussive"
    HARMONIC = "harmonic"


class MelReduce(Choice):
    MAX = "max"
    MEAN = "mean"
    MEDIAN = "median"


class KeyframeParams(Params):
    """One keyframe animation (the ``Keyframe animation`` script; ``python -m lib_vidsd keyframes``).

    Prompt, negative prompt, seed, size, steps, sampler and the CFG scale are the host's own (A1111's
    fields); the schedules below are Deforum keyframe strings (``0: (1.0), 30: (1.2)``, expressions in
    ``t``, ``max_f``, ``s``) read over the animation's frames.
    """

    prompts: str = Field(
        "",
        description="Prompt keyframes: 'frame: prompt' lines or a JSON object {\"0\": …}; the prompt box "
        "is appended to each; empty animates the prompt box alone.",
    )
    max_frames: int = Field(
        0,
        ge=0,
        le=MAX_KEYFRAME_FRAMES,
        description="Frames to render; 0: the last prompt key + 1 (the video's or the audio's length when given).",
    )
    interpolation: KeyframeCurve = Field(
        KeyframeCurve.LINEAR, description="Slerp weights between prompt keys: linear, sine or curve."
    )
    interpolation_args: str = Field(
        "", description="sine: frequencies ('1', '0.5', '1, 3'); curve: '0: (0), 30: (1)'; unused for linear."
    )
    fixed_latent: bool = Field(False, description="The same starting noise for every frame (only the prompt travels).")
    seed_schedule: str = Field(
        "",
        description="Seed of each prompt keyframe, a schedule like '0: (42), 30: (7)' read at the key's frame; "
        "empty: the seed for the first key and seeds drawn from it for the others.",
    )
    mode: KeyframeMode = Field(
        KeyframeMode.NONE,
        description="none: every frame from noise (img2img: from the init image); 2d: the previous frame moved "
        "and redrawn (loopback); video: the input video's frames as init images.",
    )
    strength: str = Field(
        "0: (0.65)", description="Denoising strength per frame (img2img frames: 2d after frame 0, video, img2img)."
    )
    cfg_scale: str = Field("", description="CFG scale per frame; empty: the generation's CFG scale.")
    zoom: str = Field("0: (1.02)", description="2d: zoom factor per frame (1 = none, > 1 zooms in).")
    angle: str = Field("0: (0)", description="2d: rotation per frame in degrees (+ = counter-clockwise).")
    translation_x: str = Field("0: (0)", description="2d: horizontal move per frame in pixels (+ = right).")
    translation_y: str = Field("0: (0)", description="2d: vertical move per frame in pixels (+ = down).")
    pivot_x: str = Field("0: (0.5)", description="2d: centre of rotation and zoom, fraction of the width.")
    pivot_y: str = Field("0: (0.5)", description="2d: centre of rotation and zoom, fraction of the height.")
    border: BorderMode = Field(
        BorderMode.REPLICATE, description="2d: what fills uncovered borders: replicate, reflect, wrap or black."
    )
    coherence_scale: float = Field(
        0.0, ge=0, le=100000, description="Pull of each step's latent toward a running reference; 0 is off."
    )
    coherence_alpha: float = Field(1.0, ge=0, le=1, description="How fast the reference follows the latent (0-1).")
    coherence_every: int = Field(1, ge=1, le=1000, description="Apply coherence every N denoising steps.")
    coherence_noise: float = Field(0.0, ge=0, le=10, description="Noise added with each coherence step.")
    color_match: float = Field(
        0.0, ge=0, le=1, description="Match each frame's colours to the first frame's (0 off, 1 fully)."
    )
    color_space: ColorMatchSpace = Field(ColorMatchSpace.LAB, description="Colour space of the match.")
    audio: Optional[str] = Field(
        None, description="API: an audio file as base64 (the WebUI passes an uploaded file's path)."
    )
    audio_component: AudioComponent = Field(
        AudioComponent.BOTH, description="Onsets and loudness from both, the percussive or the harmonic part."
    )
    audio_reduce: MelReduce = Field(MelReduce.MAX, description="Loudness of a column of the mel spectrogram.")
    audio_keys: bool = Field(
        False, description="Put the prompt keys on the audio's onsets (prompts taken in turn, repeating)."
    )
    audio_weights: bool = Field(True, description="Between keys, follow the audio's accumulated loudness.")
    mux_audio: bool = Field(True, description="Put the audio into the MP4/WEBM videos.")
    video: Optional[str] = Field(
        None, description="API: the input video for mode 'video', as base64 (the WebUI passes a path)."
    )
    video_every: int = Field(1, ge=1, le=1000, description="Use every N-th frame of the input video.")
    fps: Optional[float] = Field(
        None, gt=0, le=MAX_FPS, description="Frame rate; empty: 10, or the input video's rate ÷ video_every."
    )
    format: List[MultiFrameVideo] = Field(
        [MultiFrameVideo.MP4], description="Videos to write: gif, mp4, webm, webp, apng (frames are always PNG)."
    )
    loop: int = Field(0, ge=0, le=65535, description="How many times GIF/WEBP/APNG play; 0 loops forever.")
    interp: FrameInterpolation = Field(
        FrameInterpolation.NONE,
        description="Frames made between the rendered ones: none, blend, mci, flow, film, rife.",
    )
    interp_model: str = Field(
        "", description="FILM/RIFE weights file in the interpolation models folder; empty picks the default."
    )
    interp_x: int = Field(2, ge=2, le=MAX_INTERP_X, description="Interpolation factor (the video keeps its duration).")
    output_name: str = Field(
        "", description="Name of the output folder (letters, digits, - _ . kept); empty picks one."
    )
    resume: bool = Field(False, description="Continue a stopped animation in the same output folder.")

    _fps = validator("fps", pre=True, allow_reuse=True)(lambda v: None if v in (None, "") else parse_fps(v))
    _formats = validator("format", pre=True, allow_reuse=True)(_video_formats)

    @validator("output_name")
    def _safe_name(cls, value):
        return safe_folder_name(value)

    @validator("audio", "video")
    def _upload_size(cls, value):
        if value is not None and not value.strip():
            return None
        if value is not None and _base64_size(value) > MAX_UPLOAD_BYTES:
            raise ValueError(f"a file of at most {MAX_UPLOAD_BYTES >> 20} MiB")
        return value


# --- Deflicker and video stylisation ------------------------------------------------------------

MAX_DEFLICKER_WINDOW = 1000


class DeflickerParams(Params):
    """A standalone deflicker pass (``POST /vidsd/v1/deflicker``; ``python -m lib_vidsd deflicker``).

    The input clip is blended, frame by frame, with its neighbours re-rendered in that frame's geometry
    by patch matching; the guide (the original footage when the input is a stylised render of it) carries
    the motion. Names and defaults follow FastBlend.
    """

    mode: DeflickerMode = Field(
        DeflickerMode.FAST,
        description="fast (cost independent of the window), balanced (every window frame matched directly) "
        "or accurate (joint match, about twice the cost of balanced).",
    )
    window: int = Field(15, ge=1, le=MAX_DEFLICKER_WINDOW, description="Frames on each side blended into each frame.")
    batch_size: int = Field(8, ge=1, le=128, description="Patch-match pairs per matcher call (memory against speed).")
    patch_size: int = Field(5, ge=1, le=63, description="Smallest patch side (odd); larger patches follow motion less.")
    iterations: int = Field(5, ge=1, le=10, description="Patch-match iterations per pyramid level.")
    guide_weight: float = Field(10.0, ge=0, le=100, description="Weight of the guide video against the style.")
    tracking: int = Field(0, ge=0, le=8, description="Accurate mode: neighbouring matches tried as candidates.")
    contrast: float = Field(1.0, ge=0, le=5, description="Contrast of the output (1 = unchanged).")
    sharpness: float = Field(1.0, ge=0, le=10, description="Sharpness of the output (1 = unchanged).")
    seed: int = Field(0, ge=0, le=2**32 - 1, description="Seed of the matcher's random search.")

    @validator("mode")
    def _not_none(cls, value):
        if value is DeflickerMode.NONE:
            raise ValueError("fast, balanced or accurate")
        return value

    @validator("patch_size")
    def _odd_patch(cls, value):
        if value % 2 == 0:
            raise ValueError(f"an odd number (e.g. {value + 1})")
        return value

    @validator("tracking")
    def _tracking_accurate(cls, value, values):
        if value and values.get("mode") not in (None, DeflickerMode.ACCURATE):
            raise ValueError("0 unless mode is accurate")
        return value


def _combine_pattern(value):
    """A combine pattern as text (``"-10000, reference_0, -1, 0, 1"``) or a list; kept as canonical text."""
    from .attention.combine import parse_combine_pattern  # lazy: the attention package imports torch

    if isinstance(value, (list, tuple)):
        value = ", ".join(str(v) for v in value)
    try:
        entries = parse_combine_pattern(str(value))
    except ConfigError as e:
        raise ValueError(e.allowed) from None
    return ", ".join(str(e) for e in entries)


class StylizeParams(Params):
    """One Video stylisation job (the img2img script; ``python -m lib_vidsd stylize``).

    Every source frame is re-rendered (img2img at the host's denoising strength; 1.0 renders from noise
    under ControlNet) with cross-frame attention over the frames the combine pattern names, the flicker
    that remains smoothed by patch-match inside the denoising loop and after it (DiffSynth). Exactly one
    input: ``input_video``, ``input_frames`` or ``input_dir``. Prompt, negative prompt, frame size, steps,
    CFG scale, seed and strength are the host's (A1111's img2img fields; the CLI's generation options).
    """

    input_video: Optional[str] = Field(
        None, description="API: the input video (any format ffmpeg reads, or GIF/WEBP/APNG) as base64."
    )
    input_frames: Optional[List[str]] = Field(None, description="API: the input frames as base64 images, in order.")
    input_dir: str = Field("", description="A folder of input frames: a name inside a configured input folder.")
    start: int = Field(0, ge=0, le=1_000_000, description="First source frame to use (0-based).")
    every: int = Field(1, ge=1, le=1000, description="Use every N-th source frame (DiffSynth's frame_interval).")
    max_frames: Optional[int] = Field(
        None,
        ge=1,
        le=MAX_MULTIFRAME_FRAMES,
        description="Render at most this many frames (DiffSynth's frame_maximum_count); all when empty.",
    )
    fit: FitMode = Field(
        FitMode.CROP, description="How frames of another size fit the generation size: crop, resize or pad."
    )
    fps: Optional[float] = Field(
        None,
        gt=0,
        le=MAX_FPS,
        description="Frame rate of the output video; empty: the source's rate divided by every (same duration).",
    )
    combine_pattern: str = Field(
        "-10000, -1, 0, 1",
        description="Frames each frame's self-attention also sees: offsets (-1 previous, 1 next, -10000 the "
        "first frame) and reference_k (the k-th reference image); must contain 0.",
    )
    reference_images: Optional[List[str]] = Field(
        None, description="Reference images (base64 in the API) for reference_k entries of the pattern."
    )
    chunk_size: int = Field(
        4, ge=1, le=64, description="Frames per UNet call; memory depends on this, not on the clip's length."
    )
    fixed_noise: bool = Field(
        True, description="Every frame starts from the same noise (DiffSynth's default); off: seed + frame index."
    )
    control_frames: bool = Field(
        True,
        description="ControlNet units (sd-webui-controlnet) without an image of their own get each frame's "
        "source image as control image.",
    )
    smoother: DeflickerMode = Field(
        DeflickerMode.FAST,
        description="Deflicker the predicted frames inside the denoising loop: none, fast, balanced, accurate.",
    )
    smoother_interval: int = Field(5, ge=1, le=150, description="Smooth every N-th sampling step (0, N, 2N, …).")
    smoother_ignore_last: int = Field(
        0, ge=0, le=150, description="Do not smooth in the last M sampling steps (DiffSynth's ignore_smoother_steps)."
    )
    smoother_window: int = Field(
        3, ge=1, le=MAX_DEFLICKER_WINDOW, description="Frames on each side blended by the in-loop smoother."
    )
    post_deflicker: DeflickerMode = Field(
        DeflickerMode.FAST, description="Deflicker the rendered frames after sampling: none, fast, balanced, accurate."
    )
    post_window: int = Field(
        15, ge=1, le=MAX_DEFLICKER_WINDOW, description="Frames on each side blended by the post deflicker."
    )
    patch_size: int = Field(5, ge=1, le=63, description="Deflicker: smallest patch side (odd).")
    guide_weight: float = Field(10.0, ge=0, le=100, description="Deflicker: weight of the source video as guide.")
    contrast: float = Field(1.0, ge=0, le=5, description="Contrast of the final frames (1 = unchanged).")
    sharpness: float = Field(1.0, ge=0, le=10, description="Sharpness of the final frames (1 = unchanged).")
    keep_audio: bool = Field(False, description="Copy the input video's audio track into MP4/WEBM outputs.")
    output_name: str = Field(
        "", description="Name of the output folder (letters, digits, - _ . kept); empty picks one."
    )
    format: List[MultiFrameVideo] = Field(
        [MultiFrameVideo.MP4], description="Videos to write: gif, mp4, webm, webp, apng (frames are always PNG)."
    )
    loop: int = Field(0, ge=0, le=65535, description="How many times GIF/WEBP/APNG play; 0 loops forever.")
    interp: FrameInterpolation = Field(
        FrameInterpolation.NONE,
        description="Frames made between the rendered ones: none, blend, mci, flow, film, rife.",
    )
    interp_model: str = Field(
        "", description="FILM/RIFE weights file in the interpolation models folder; empty picks the default."
    )
    interp_x: int = Field(2, ge=2, le=MAX_INTERP_X, description="Interpolation factor (the video keeps its duration).")

    _fps = validator("fps", pre=True, allow_reuse=True)(lambda v: None if v in (None, "") else parse_fps(v))
    _formats = validator("format", pre=True, allow_reuse=True)(_video_formats)
    _folders = validator("input_dir", allow_reuse=True)(_folder_in_root)
    _pattern = validator("combine_pattern", pre=True, allow_reuse=True)(_combine_pattern)

    _video = validator("input_video", allow_reuse=True)(_base64_video)
    _frames = validator("input_frames", always=True, allow_reuse=True)(_frames_alone)
    _one_input = validator("input_dir", allow_reuse=True)(_dir_alone)

    @validator("reference_images", always=True)
    def _references(cls, value, values):
        value = value or None
        pattern = values.get("combine_pattern") or ""
        wanted = [int(e.split("_")[1]) for e in pattern.replace(" ", "").split(",") if e.startswith("reference_")]
        have = len(value or [])
        if wanted and max(wanted) >= have:
            raise ValueError(f"at least {max(wanted) + 1} images: the combine pattern names reference_{max(wanted)}")
        if value and sum(_base64_size(v) for v in value) > MAX_UPLOAD_BYTES:
            raise ValueError(f"images of at most {MAX_UPLOAD_BYTES >> 20} MiB together")
        return value

    @validator("patch_size")
    def _odd_patch(cls, value):
        if value % 2 == 0:
            raise ValueError(f"an odd number (e.g. {value + 1})")
        return value

    @validator("output_name")
    def _safe_output_name(cls, value):
        return safe_folder_name(value)
