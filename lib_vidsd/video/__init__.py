"""Video in and out through ffmpeg (from imageio-ffmpeg unless overridden): see writer and reader."""

from .ffmpeg import encoders, ffmpeg_exe, set_ffmpeg_path
from .frames import fit_frame, to_rgb
from .presets import PRESETS, Preset
from .reader import FrameReader, VideoInfo, list_images, probe, read_video
from .writer import available_formats, write_video

__all__ = [
    "PRESETS",
    "FrameReader",
    "Preset",
    "VideoInfo",
    "available_formats",
    "encoders",
    "ffmpeg_exe",
    "fit_frame",
    "list_images",
    "probe",
    "read_video",
    "set_ffmpeg_path",
    "to_rgb",
    "write_video",
]
