"""The demo job: the AnimateDiff chain end to end on any machine, written in every format.

With no weights to download, it renders on the tiny seeded built-in Stable Diffusion model and
motion module (so the frames show patterns, not pictures): prompt travel, context windows,
injection, sampling, decoding, then every output format the bundled ffmpeg can write.
:func:`moving_shapes` is a synthetic clip for benchmarks and tests.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from .progress import ProgressSink, null_progress
from .video import available_formats, probe, write_video
from .video.presets import PRESETS

log = logging.getLogger("vidsd.demo")


def moving_shapes(frames: int = 24, width: int = 256, height: int = 192, seed: int = 0) -> list[np.ndarray]:
    """A loopable clip: a ball on a circular path, a turning square and a drifting gradient.

    Deterministic for ``seed``; frames are ``uint8 (height, width, 3)``.
    """
    rng = np.random.default_rng(seed)
    colours = [tuple(int(c) for c in rng.integers(40, 255, 3)) for _ in range(3)]
    yy, xx = np.mgrid[0:height, 0:width]
    out = []
    for i in range(frames):
        phase = 2 * math.pi * i / frames
        base = np.empty((height, width, 3), np.uint8)
        base[..., 0] = (40 + 60 * (0.5 + 0.5 * np.sin(xx / width * 2 * math.pi + phase))).astype(np.uint8)
        base[..., 1] = (30 + 40 * yy / height).astype(np.uint8)
        base[..., 2] = 90
        img = Image.fromarray(base)
        draw = ImageDraw.Draw(img)
        cx = width / 2 + width * 0.3 * math.cos(phase)
        cy = height / 2 + height * 0.3 * math.sin(phase)
        r = min(width, height) * 0.1
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=colours[0])
        s = min(width, height) * 0.15
        pts = [
            (width * 0.5 + s * math.cos(phase + k * math.pi / 2), height * 0.5 + s * math.sin(phase + k * math.pi / 2))
            for k in range(4)
        ]
        draw.polygon(pts, fill=colours[1])
        bar_x = int((i / frames) * width)
        draw.rectangle((bar_x, height - 12, bar_x + width // 8, height - 4), fill=colours[2])
        out.append(np.asarray(img))
    return out


@dataclass
class Written:
    format: str
    path: Path
    bytes: int
    frames: int
    fps: float | None


def _demo_prompt(frames: int) -> str:
    if frames < 2:
        return "a cat, best quality, walking in the city"
    return f"a cat, best quality\n0: walking in the city\n{frames // 2}: running in the forest"


def run_demo(
    out_dir: Path, *, frames: int = 16, fps: float = 8.0, progress: ProgressSink = null_progress
) -> list[Written]:
    """Render an animation on the tiny built-in model and write it once per available format."""
    from .config import AnimateDiffParams, GenerationParams, validate
    from .pipelines.animate import AnimateJob, load_sd, tiny_motion_module

    gen = validate(
        GenerationParams,
        prompt=_demo_prompt(frames),
        negative_prompt="blurry, lowres",
        steps=4,
        width=128,
        height=96,
        seed=7,
    )
    ad = validate(AnimateDiffParams, enable=True, video_length=frames, batch_size=8, fps=fps)
    result = AnimateJob(load_sd(None), tiny_motion_module(), gen, ad, motion_name="tiny built-in").run()
    out_dir = Path(out_dir)
    names = available_formats()
    written = []
    for k, name in enumerate(names):
        preset = PRESETS[name]
        target = out_dir / (f"animatediff_{name}{preset.suffix}" if preset.suffix else f"animatediff_{name}")
        extra = {"format": preset.format.value}
        if preset.codec is not None:
            extra["codec"] = preset.codec.value
        texts = [result.infotext] * len(result.frames) if not preset.suffix else None
        path = write_video(
            result.frames,
            target,
            fps=fps,
            title="vidsd demo",
            artist="vidsd",
            comment=result.infotext,
            frame_texts=texts,
            **extra,
        )
        info = probe(path)
        size = sum(f.stat().st_size for f in path.iterdir()) if path.is_dir() else path.stat().st_size
        fps_read = None if info.kind == "folder" else info.fps  # a folder of frames has no rate
        written.append(Written(name, path, size, info.frame_count, fps_read))
        progress(k + 1, len(names), name)
    return written
