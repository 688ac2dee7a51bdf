"""Command line: ``python -m lib_vidsd {demo,animate,steps,multiframe,keyframes,deflicker,stylize,audio-keys,frames,encode,interpolate,probe,formats} …``."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from pathlib import Path
from typing import Any, Sequence

from . import __version__
from .config import AnimateDiffParams, EncodeOptions, FieldInfo, GenerationParams, ReadOptions, describe
from .errors import ConfigError, VidsdError
from .progress import TextBar

log = logging.getLogger("vidsd.cli")


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = text.lower().split("x")
        return int(w), int(h)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, got {text!r}") from None


def _add_fields(
    parser: argparse.ArgumentParser,
    fields: list[FieldInfo],
    skip: Sequence[str] = (),
    aliases: dict[str, str] | None = None,
) -> None:
    """One option per config field: the config's doc, choices and default, nothing retyped here.
    ``aliases`` give a field a second, friendlier flag (``video_length`` → ``--frames``)."""
    for f in fields:
        if f.name in skip:
            continue
        flags = ["--" + f.name.replace("_", "-")]
        if aliases and f.name in aliases:
            flags.insert(0, aliases[f.name])
        flag = flags[0]
        doc = f.doc + (f" (default: {f.default})" if f.default not in (None, False) else "")
        if isinstance(f.default, bool):
            parser.add_argument(*flags, dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=doc)
        elif f.name == "size":
            parser.add_argument(*flags, dest=f.name, type=_size, default=None, metavar="WxH", help=doc)
        elif f.choices:
            parser.add_argument(*flags, dest=f.name, choices=f.choices, default=None, help=doc)
        else:
            parser.add_argument(*flags, dest=f.name, default=None, metavar=flag.lstrip("-").upper(), help=doc)


def _picked(args: argparse.Namespace, fields: list[FieldInfo]) -> dict[str, Any]:
    """Options the user gave (the rest take the config's defaults during validation)."""
    return {f.name: getattr(args, f.name) for f in fields if getattr(args, f.name, None) is not None}


def _cmd_frames(args) -> int:
    from .video import read_video, write_video

    read_fields = describe(ReadOptions)
    reader = read_video(args.source, **_picked(args, read_fields))
    out = write_video(
        reader, args.output, format="png", fps=reader.fps, total=reader.expected_frames, progress=TextBar("frames")
    )
    count = len(list(Path(out).glob("*.png")))
    print(f"wrote {count} frames at {reader.fps:g} fps to {out}")
    return 0


def _cmd_encode(args) -> int:
    from .video import read_video, write_video

    reader = read_video(args.source, every=args.every or 1, max_frames=args.max_frames)
    options = _picked(args, describe(EncodeOptions))
    options.setdefault("fps", reader.fps)
    out = write_video(reader, args.output, total=reader.expected_frames, progress=TextBar("encode"), **options)
    print(f"wrote {out}")
    return 0


_AUDIO_SUFFIXES = (".mp4", ".webm")


def _cmd_interpolate(args) -> int:
    """Read, interpolate, write. ``-x N``: N frames per input gap, written at fps × N. ``--fps F``: the
    clip retimed to exactly F frames per second (same duration; new frames where F needs them)."""
    from .interpolate import METHODS, interpolate, interpolate_at, retime_positions
    from .video import read_video, write_video

    if args.method not in METHODS:
        raise ConfigError("method", args.method, list(METHODS))
    model = _vfi_model(args.method, args.weights, args.vfi_dir)
    options = {"scale": args.scale} if args.method == "rife" and args.scale is not None else {}
    reader = read_video(args.source)
    frames = list(reader)
    common = {"loop": args.loop, "scene_threshold": args.scene_threshold, "tile": args.tile, **options}
    if args.fps is not None:
        positions = retime_positions(len(frames), reader.fps, args.fps, loop=args.loop)
        bar = TextBar(f"interpolate to {args.fps:g} fps")
        result = interpolate_at(frames, positions, args.method, model, progress=bar, **common)
        out_fps = args.fps
    else:
        bar = TextBar(f"interpolate x{args.factor}")
        result = interpolate(frames, args.factor, args.method, model, progress=bar, **common)
        out_fps = reader.fps * args.factor
    extra = {}
    target = Path(args.output)
    if target.suffix.lower() in _AUDIO_SUFFIXES and reader.info.kind == "video" and reader.info.has_audio:
        extra["audio_from"] = str(reader.path)
    out = write_video(result, target, fps=out_fps, progress=TextBar("encode"), **extra)
    print(f"wrote {len(result)} frames at {out_fps:g} fps to {out}")
    return 0


def _vfi_model(method: str, weights: str | None, folder: str | None):
    """The FILM/RIFE network for ``method`` from ``folder`` (``None`` for methods without weights)."""
    from .interpolate.weights import NETWORK_METHODS, find_weights, load_network

    if method not in NETWORK_METHODS:
        return None
    import torch

    path = find_weights(method, weights or "", [folder or _default_vfi_dir()], field="weights")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    return load_network(method, path, device=device, half=device == "cuda")


def _default_vfi_dir() -> str:
    import os

    return os.environ.get("VIDSD_VFI_DIR") or "models/VFI"


def _cmd_probe(args) -> int:
    from .video import probe

    info = probe(args.source)
    for key, value in info.__dict__.items():
        print(f"{key}: {value}")
    return 0


def _cmd_formats(args) -> int:
    from .video import available_formats, ffmpeg_exe

    print(f"ffmpeg: {ffmpeg_exe()}")
    for name in available_formats():
        print(name)
    return 0


def _cmd_demo(args) -> int:
    from .demo import run_demo

    written = run_demo(Path(args.output), frames=args.frames, fps=float(args.fps), progress=TextBar("demo"))
    for w in written:
        rate = f"{w.fps:6.2f} fps" if w.fps else "  (frames)"
        print(f"{w.format:9s} {w.frames:3d} frames {rate} {w.bytes:9d} bytes  {w.path}")
    return 0


# WebUI/API-only fields; the CLI has its own --format, --last-image and --motion-module
_ANIMATE_SKIP = (
    "enable",
    "model",
    "format",
    "interp",
    "interp_x",
    "last_frame",
    "request_id",
    "video_source",
    "motion_lora",
    "motion_lora_strength",
    "video_path",
    "mask_path",
    "is_i2i_batch",
)
_ANIMATE_ALIASES = {"video_length": "--frames", "batch_size": "--context"}


def _lora(text: str) -> tuple[str, float]:
    path, sep, weight = text.rpartition(":")
    if not sep or not path:
        return text, 1.0
    try:
        return path, float(weight)
    except ValueError:
        return text, 1.0


def _cmd_animate(args) -> int:
    from PIL import Image

    from .config import validate
    from .motion import load_motion_module
    from .pipelines.animate import AnimateJob, load_sd, save_animation, tiny_motion_module

    gen = validate(GenerationParams, _picked(args, describe(GenerationParams)))
    ad_fields = [f for f in describe(AnimateDiffParams) if f.name not in _ANIMATE_SKIP]
    ad = validate(AnimateDiffParams, _picked(args, ad_fields), enable=True)
    if args.model is None and args.motion_module is not None:
        print(
            "note: a real motion module needs a real model (--model); the tiny model has 32 channels", file=sys.stderr
        )
    sd = load_sd(args.model)
    if args.motion_module:
        mm, mm_name = load_motion_module(args.motion_module), Path(args.motion_module).name
    else:
        mm, mm_name = tiny_motion_module(), "tiny built-in (random weights)"
        print(f"using the {mm_name} motion module (give --motion-module for a real one)", file=sys.stderr)
    job = AnimateJob(
        sd,
        mm,
        gen,
        ad,
        init_image=Image.open(args.init_image) if args.init_image else None,
        last_image=Image.open(args.last_image) if args.last_image else None,
        loras=[_lora(t) for t in args.motion_lora],
        motion_name=mm_name,
        progress=TextBar("animate"),
    )
    result = job.run()
    formats = [f.strip() for f in args.format.split(",") if f.strip()]
    for path in save_animation(result, args.output, formats, fps=ad.fps, loop=ad.loop_number):
        print(f"wrote {path}")
    return 0


_STEPS_SKIP = ("enabled", "hires_pass", "animatediff_view")


def _cmd_steps(args) -> int:
    from .config import StepsAnimationParams, validate
    from .pipelines.animate import load_sd
    from .pipelines.steps import run_steps_animation

    gen = validate(GenerationParams, _picked(args, describe(GenerationParams)))
    fields = [f for f in describe(StepsAnimationParams) if f.name not in _STEPS_SKIP]
    params = validate(StepsAnimationParams, _picked(args, fields), enabled=True)
    model = _vfi_model(params.interpolation.value, params.interp_model, args.vfi_dir) if params.create_movie else None
    sd = load_sd(args.model)
    run, result = run_steps_animation(sd, gen, params, args.output, interp_model=model, progress=TextBar("steps"))
    if run is None:
        print("interrupted: the movie shows the steps made so far", file=sys.stderr)
    if result.movie is not None:
        print(f"wrote {result.movie} ({result.movie_frames} frames at {result.fps:g} fps from {result.steps} steps)")
    if result.frames_dir is not None:
        print(f"frames in {result.frames_dir}")
    return 0


# API-only inputs and the WebUI's folder naming: the CLI takes paths (SOURCE, --masks, -o) instead;
# its --format takes a comma list
_MULTIFRAME_SKIP = ("input_video", "input_frames", "input_dir", "mask_dir", "output_name", "format")


def _cmd_multiframe(args) -> int:
    from .config import MultiFrameParams, validate
    from .pipelines.animate import load_sd
    from .pipelines.multiframe import run_multiframe

    gen = validate(GenerationParams, _picked(args, describe(GenerationParams)))
    fields = [f for f in describe(MultiFrameParams) if f.name not in _MULTIFRAME_SKIP]
    picked = _picked(args, fields)
    if args.format is not None:
        picked["format"] = args.format
    if args.frame_prompts_file:
        picked["frame_prompts"] = Path(args.frame_prompts_file).read_text(encoding="utf-8")
    params = validate(MultiFrameParams, picked)
    model = _vfi_model(params.interp.value, params.interp_model, args.vfi_dir) if params.format else None
    sd = load_sd(args.model)
    try:
        result = run_multiframe(
            sd,
            gen,
            params,
            args.source,
            args.output,
            mask_dir=args.masks,
            interp_model=model,
            progress=TextBar("multiframe"),
        )
    except KeyboardInterrupt:
        print(f"the finished frames are in {args.output}; add --resume to continue", file=sys.stderr)
        raise
    resumed = result.frame_count - result.rendered
    note = f" ({resumed} from an earlier run)" if resumed else ""
    print(f"wrote {result.frame_count} frames{note} to {result.out_dir}")
    for video in result.videos:
        print(f"wrote {video} at {result.fps:g} fps")
    return 0


# API-only uploads and the WebUI's folder naming: the CLI takes paths (--video, --audio, -o) instead
# (cfg_scale: the schedule is --cfg-schedule here, --cfg-scale being the generation's own)
_KEYFRAMES_SKIP = ("audio", "video", "output_name", "format", "cfg_scale")


def _cmd_keyframes(args) -> int:
    from .config import KeyframeParams, validate
    from .pipelines.animate import load_sd
    from .pipelines.keyframes import run_keyframes

    gen = validate(GenerationParams, _picked(args, describe(GenerationParams)))
    fields = [f for f in describe(KeyframeParams) if f.name not in _KEYFRAMES_SKIP]
    picked = _picked(args, fields)
    if args.format is not None:
        picked["format"] = args.format
    if args.cfg_schedule is not None:
        picked["cfg_scale"] = args.cfg_schedule
    if args.prompts_file:
        picked["prompts"] = Path(args.prompts_file).read_text(encoding="utf-8")
    params = validate(KeyframeParams, picked)
    if args.batch_size < 1:
        raise ConfigError("batch_size", args.batch_size, "1 or more")
    model = _vfi_model(params.interp.value, params.interp_model, args.vfi_dir) if params.format else None
    sd = load_sd(args.model)
    try:
        result = run_keyframes(
            sd,
            gen,
            params,
            args.output,
            init_image=args.init_image,
            video_path=args.video,
            audio_path=args.audio,
            batch_size=args.batch_size,
            interp_model=model,
            progress=TextBar("keyframes"),
        )
    except KeyboardInterrupt:
        print(f"the finished frames are in {args.output}; add --resume to continue", file=sys.stderr)
        raise
    resumed = len(result.frames) - result.rendered
    note = f" ({resumed} from an earlier run)" if resumed else ""
    print(f"wrote {len(result.frames)} frames{note} to {result.out_dir}")
    for video in result.videos:
        print(f"wrote {video} at {result.fps:g} fps")
    return 0


def _cmd_deflicker(args) -> int:
    """Read the clip (and the guide, fitted to the clip's size), deflicker, write at the clip's rate;
    an MP4/WEBM output keeps a video input's audio track."""
    from .config import DeflickerParams, validate
    from .consistency.outputs import check_frame_size, run_deflicker
    from .video import read_video, write_video

    settings = validate(DeflickerParams, _picked(args, describe(DeflickerParams)))
    reader = read_video(args.source)
    frames = list(reader)
    if not frames:
        raise ConfigError("source", str(args.source), "a video or folder with at least one frame")
    height, width = frames[0].shape[:2]
    check_frame_size(settings, width, height, field="patch_size")
    guide = None
    if args.guide:
        guide_reader = read_video(args.guide)
        if tuple(guide_reader.size) != (width, height):
            guide_reader = read_video(args.guide, size=(width, height))
        guide = list(guide_reader)
    bar = TextBar(f"deflicker ({settings.mode.value})")
    result = run_deflicker(frames, settings, guide=guide, progress=bar, device=args.device)
    extra = {}
    target = Path(args.output)
    if target.suffix.lower() in _AUDIO_SUFFIXES and reader.info.kind == "video" and reader.info.has_audio:
        extra["audio_from"] = str(reader.path)
    out = write_video(result, target, fps=reader.fps, progress=TextBar("encode"), **extra)
    print(f"wrote {len(result)} frames at {reader.fps:g} fps to {out}")
    return 0


def _cmd_stylize(args) -> int:
    """DiffSynth's JSON config (local model paths only) → frames, videos and the effective config."""
    from .pipelines.stylize import run_stylize_config

    result, out_dir = run_stylize_config(
        args.config,
        output=args.output,
        device=args.device,
        half=args.half,
        vfi_dir=args.vfi_dir or _default_vfi_dir(),
        progress=TextBar("stylize"),
    )
    print(f"wrote {len(result.frame_paths)} frames to {out_dir}")
    for video in result.videos:
        print(f"wrote {video} at {result.fps:g} fps")
    return 0


def _cmd_audio_keys(args) -> int:
    from .keyframe.audio import audio_keyframes

    keys = audio_keyframes(args.audio, args.fps, args.component)
    print(keys.text())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m lib_vidsd", description="vidsd: video tools for Stable Diffusion")
    parser.add_argument("--version", action="version", version=f"vidsd {__version__}")
    parser.add_argument("--ffmpeg", help="ffmpeg binary to use (default: VIDSD_FFMPEG, then imageio-ffmpeg's)")
    parser.add_argument("--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="AnimateDiff on the tiny built-in model, written in every available format")
    p.add_argument("-o", "--output", default="out/demo", help="folder for the files (default: out/demo)")
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--fps", default="8")
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("animate", help="render an animation with AnimateDiff on a diffusers SD model")
    p.add_argument("--model", help="diffusers model folder or .safetensors/.ckpt (default: tiny built-in model)")
    p.add_argument("--motion-module", help="motion module file (default: tiny built-in module)")
    p.add_argument(
        "--motion-lora",
        action="append",
        default=[],
        metavar="FILE[:WEIGHT]",
        help="motion LoRA, repeatable (weight default 1.0)",
    )
    p.add_argument("--init-image", help="img2img: the first frame")
    p.add_argument("--last-image", help="img2img: the last frame (with --init-image)")
    p.add_argument("-o", "--output", default="out/animate", help="folder for the outputs (default: out/animate)")
    p.add_argument(
        "--format", default="gif,mp4", help="comma list: gif, mp4, mp4-h265, webm, webm-av1, webp, apng, png"
    )
    _add_fields(p, describe(GenerationParams))
    _add_fields(p, describe(AnimateDiffParams), skip=_ANIMATE_SKIP, aliases=_ANIMATE_ALIASES)
    p.set_defaults(func=_cmd_animate)

    p = sub.add_parser("steps", help="Steps animation: a movie of the denoising steps of one txt2img generation")
    p.add_argument("--model", help="diffusers model folder or .safetensors/.ckpt (default: tiny built-in model)")
    p.add_argument("-o", "--output", default="out/steps", help="save location (default: out/steps)")
    p.add_argument("--vfi-dir", help="folder of FILM/RIFE weights (default: $VIDSD_VFI_DIR, else models/VFI)")
    _add_fields(p, describe(GenerationParams))
    from .config import StepsAnimationParams

    _add_fields(p, describe(StepsAnimationParams), skip=_STEPS_SKIP)
    p.set_defaults(func=_cmd_steps)

    p = sub.add_parser(
        "multiframe", help="Multi-frame rendering: a video or folder of frames re-rendered frame by frame (img2img)"
    )
    p.add_argument("source", help="video file, GIF/WEBP/APNG, or folder of images")
    p.add_argument("--model", help="diffusers model folder or .safetensors/.ckpt (default: tiny built-in model)")
    p.add_argument(
        "-o", "--output", default="out/multiframe", help="folder for the frames and videos (default: out/multiframe)"
    )
    p.add_argument("--masks", help="folder of masks (white = redraw), paired by --mask-match")
    p.add_argument("--frame-prompts-file", help="text file for --frame-prompts (one prompt per line, or keyframes)")
    p.add_argument("--vfi-dir", help="folder of FILM/RIFE weights (default: $VIDSD_VFI_DIR, else models/VFI)")
    p.add_argument(
        "--format", help="comma list of videos to write: gif, mp4, webm, webp, apng; '' for none (default: mp4)"
    )
    _add_fields(p, describe(GenerationParams))
    from .config import MultiFrameParams

    _add_fields(p, describe(MultiFrameParams), skip=_MULTIFRAME_SKIP)
    p.set_defaults(func=_cmd_multiframe)

    p = sub.add_parser(
        "keyframes", help="Keyframe animation: prompt keys slerped, schedules, 2D motion loopback, audio keys"
    )
    p.add_argument("--model", help="diffusers model folder or .safetensors/.ckpt (default: tiny built-in model)")
    p.add_argument(
        "-o", "--output", default="out/keyframes", help="folder for the frames and videos (default: out/keyframes)"
    )
    p.add_argument("--init-image", help="img2img: the init image of the frames that do not loop back")
    p.add_argument("--video", help="mode video: the input video (its frames are the init images)")
    p.add_argument("--audio", help="audio file: onsets (--audio-keys), loudness weights, muxed into MP4/WEBM")
    p.add_argument("--prompts-file", help="text file for --prompts ('frame: prompt' lines or JSON)")
    p.add_argument("--batch-size", type=int, default=1, help="frames per UNet batch where the animation allows it")
    p.add_argument(
        "--cfg-schedule", help="CFG scale per frame, a schedule like '0: (7), 20: (4)' (default: --cfg-scale)"
    )
    p.add_argument("--vfi-dir", help="folder of FILM/RIFE weights (default: $VIDSD_VFI_DIR, else models/VFI)")
    p.add_argument(
        "--format", help="comma list of videos to write: gif, mp4, webm, webp, apng; '' for none (default: mp4)"
    )
    _add_fields(p, describe(GenerationParams))
    from .config import KeyframeParams

    _add_fields(p, describe(KeyframeParams), skip=_KEYFRAMES_SKIP)
    p.set_defaults(func=_cmd_keyframes)

    p = sub.add_parser(
        "deflicker", help="patch-match deflicker of a video or folder of frames (optionally guided by the footage)"
    )
    p.add_argument("source", help="the flickering clip: video file, GIF/WEBP/APNG, or folder of images")
    p.add_argument("-o", "--output", required=True, help="output file (.mp4 .webm .gif .webp .png) or folder")
    p.add_argument(
        "--guide",
        help="the original footage the clip was made from (same frame count; fitted to the clip's size); "
        "default: the clip itself",
    )
    p.add_argument("--device", help="torch device for the matcher (default: cuda when available, else cpu)")
    from .config import DeflickerParams

    fields = describe(DeflickerParams)  # "none" is a choice of the output options, not of this command
    fields = [dataclasses.replace(f, choices=tuple(c for c in f.choices if c != "none")) if f.name == "mode" else f
              for f in fields]  # fmt: skip
    _add_fields(p, fields)
    p.set_defaults(func=_cmd_deflicker)

    p = sub.add_parser(
        "stylize", help="Video stylisation (DiffSynth): a video re-rendered with cross-frame attention and deflicker"
    )
    p.add_argument(
        "config", help="DiffSynth's JSON config (model_id, input_video, prompt, combine_pattern, smoother, …)"
    )
    p.add_argument("-o", "--output", help="folder for the frames and videos (default: the config's output_path)")
    p.add_argument("--device", help="torch device (default: cuda when available, else cpu)")
    p.add_argument("--half", action="store_true", help="float16 weights (CUDA only)")
    p.add_argument("--vfi-dir", help="folder of FILM/RIFE weights (default: $VIDSD_VFI_DIR, else models/VFI)")
    p.set_defaults(func=_cmd_stylize)

    p = sub.add_parser("audio-keys", help="key frames at an audio file's onsets (frame: timestamp), at a frame rate")
    p.add_argument("audio", help="audio file (wav, mp3, flac, ogg, m4a, or a video with sound)")
    p.add_argument("--fps", type=float, default=10.0, help="frame rate of the animation (default: 10)")
    p.add_argument("--component", default="both", choices=["both", "percussive", "harmonic"])
    p.set_defaults(func=_cmd_audio_keys)

    p = sub.add_parser("frames", help="extract the frames of a video (or animation, or folder) as PNG files")
    p.add_argument("source", help="video file, GIF/WEBP/APNG, or folder of images")
    p.add_argument("-o", "--output", required=True, help="folder for the PNG frames")
    _add_fields(p, describe(ReadOptions))
    p.set_defaults(func=_cmd_frames)

    p = sub.add_parser("encode", help="encode a folder of images (or a video) into a video file")
    p.add_argument("source", help="folder of images, or a video/animation to re-encode")
    p.add_argument("-o", "--output", required=True, help="output file (.mp4 .webm .gif .webp .png) or folder")
    p.add_argument("--every", type=int, default=None, help="use every N-th input frame")
    p.add_argument("--max-frames", type=int, default=None, help="use at most this many input frames")
    _add_fields(p, describe(EncodeOptions))
    p.set_defaults(func=_cmd_encode)

    p = sub.add_parser("interpolate", help="raise a video's frame rate by inserting interpolated frames")
    p.add_argument("source", help="video file, GIF/WEBP/APNG, or folder of images")
    p.add_argument("-o", "--output", required=True, help="output file (.mp4 .webm .gif .webp .png) or folder")
    p.add_argument("-x", "--factor", type=int, default=2, help="frames per input gap (default: 2)")
    p.add_argument("--method", default="blend", help="blend, flow, mci, film or rife (default: blend)")
    p.add_argument(
        "--fps",
        type=float,
        default=None,
        help="target frame rate instead of -x: the clip keeps its duration, frames are made where needed",
    )
    p.add_argument("--weights", help="FILM/RIFE weights file name in --vfi-dir (default: the usual names)")
    p.add_argument("--vfi-dir", help="folder of FILM/RIFE weights (default: $VIDSD_VFI_DIR, else models/VFI)")
    p.add_argument("--scale", type=float, default=None, help="RIFE: scale factor (0.5 for 4K; default 1)")
    p.add_argument(
        "--tile", type=int, default=None, metavar="PX", help="work on overlapping squares of PX pixels (bounded memory)"
    )
    p.add_argument("--loop", action="store_true", help="also fill the gap from the last frame back to the first")
    p.add_argument(
        "--scene-threshold",
        type=float,
        default=None,
        metavar="T",
        help="mean abs difference (0..255) above which a gap is a cut and is not interpolated",
    )
    p.set_defaults(func=_cmd_interpolate)

    p = sub.add_parser("probe", help="print frame rate, frame count, size, duration, audio and metadata")
    p.add_argument("source")
    p.set_defaults(func=_cmd_probe)

    p = sub.add_parser("formats", help="list the output formats this ffmpeg can write")
    p.set_defaults(func=_cmd_formats)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=getattr(logging, args.log_level), format="%(levelname)s %(name)s: %(message)s")
    if args.ffmpeg:
        from .video import set_ffmpeg_path

        set_ffmpeg_path(args.ffmpeg)
    try:
        return args.func(args)
    except VidsdError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
