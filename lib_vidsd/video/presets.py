"""Output formats as data: container, encoder candidates, defaults and the encoder's argv.

A preset is chosen by format (and codec for MP4/WEBM). ``encoders`` lists the
ffmpeg encoders that can do the job, best first; the first one the binary has is
used. The PNG frame sequence needs no ffmpeg (PIL writes each frame).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..config import Codec, VideoFormat

X26X_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")
VP9_DEADLINES = ("good", "best", "realtime")


@dataclass(frozen=True)
class Preset:
    name: str
    format: VideoFormat
    codec: Codec | None
    suffix: str
    muxer: str | None  # ffmpeg -f; None for the PNG sequence
    encoders: tuple[str, ...] = ()
    crf_default: int | None = None
    crf_max: int | None = None
    preset_default: str | None = None
    presets: dict[str, tuple[str, ...]] = field(default_factory=dict)  # encoder -> allowed preset names
    yuv420: bool = False  # needs even width and height
    lossless: bool = False  # decodes back pixel-exact
    audio_codec: str | None = None
    animated_image: bool = False  # GIF/WEBP/APNG: loop count and metadata live in the file's own chunks


_AV1_SPEEDS = {
    "libsvtav1": tuple(str(i) for i in range(14)),
    "libaom-av1": tuple(str(i) for i in range(9)),
}

PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset("gif", VideoFormat.GIF, None, ".gif", "gif", ("gif",), animated_image=True),
        Preset(
            "mp4-h264",
            VideoFormat.MP4,
            Codec.H264,
            ".mp4",
            "mp4",
            ("libx264",),
            23,
            51,
            "medium",
            {"libx264": X26X_PRESETS},
            yuv420=True,
            audio_codec="aac",
        ),
        Preset(
            "mp4-h265",
            VideoFormat.MP4,
            Codec.H265,
            ".mp4",
            "mp4",
            ("libx265",),
            28,
            51,
            "medium",
            {"libx265": X26X_PRESETS},
            yuv420=True,
            audio_codec="aac",
        ),
        Preset(
            "mp4-av1",
            VideoFormat.MP4,
            Codec.AV1,
            ".mp4",
            "mp4",
            ("libsvtav1", "libaom-av1"),
            28,
            63,
            None,
            _AV1_SPEEDS,
            yuv420=True,
            audio_codec="aac",
        ),
        Preset(
            "webm-vp9",
            VideoFormat.WEBM,
            Codec.VP9,
            ".webm",
            "webm",
            ("libvpx-vp9",),
            34,
            63,
            "good",
            {"libvpx-vp9": VP9_DEADLINES},
            yuv420=True,
            audio_codec="libopus",
        ),
        Preset(
            "webm-av1",
            VideoFormat.WEBM,
            Codec.AV1,
            ".webm",
            "webm",
            ("libsvtav1", "libaom-av1"),
            28,
            63,
            None,
            _AV1_SPEEDS,
            yuv420=True,
            audio_codec="libopus",
        ),
        Preset("webp", VideoFormat.WEBP, None, ".webp", "webp", ("libwebp_anim",), animated_image=True),
        Preset("apng", VideoFormat.APNG, None, ".png", "apng", ("apng",), lossless=True, animated_image=True),
        Preset("png", VideoFormat.PNG, None, "", None, (), lossless=True),
    )
}

DEFAULT_CODEC = {VideoFormat.MP4: Codec.H264, VideoFormat.WEBM: Codec.VP9}

SUFFIX_FORMAT = {
    ".gif": VideoFormat.GIF,
    ".mp4": VideoFormat.MP4,
    ".m4v": VideoFormat.MP4,
    ".webm": VideoFormat.WEBM,
    ".webp": VideoFormat.WEBP,
    ".apng": VideoFormat.APNG,
    ".png": VideoFormat.APNG,
}

# the speed each AV1 encoder gets when no preset is given: fast enough for a CPU
AV1_DEFAULT_SPEED = {"libsvtav1": "8", "libaom-av1": "6"}


def preset_for(fmt: VideoFormat, codec: Codec | None) -> Preset | None:
    """The preset for a format and codec, or ``None`` when that pair does not exist."""
    if fmt in DEFAULT_CODEC:
        codec = codec or DEFAULT_CODEC[fmt]
        return PRESETS.get(f"{fmt.value}-{codec.value}")
    if codec is not None:
        return None
    return PRESETS.get(fmt.value)


def combinations() -> list[str]:
    """Every format/codec pair as ``format`` or ``format:codec`` text, for error messages."""
    out = []
    for p in PRESETS.values():
        out.append(p.format.value if p.codec is None else f"{p.format.value}:{p.codec.value}")
    return out
