"""Keyframe animation in the WebUI: the txt2img/img2img script's run, one ``process_images`` per batch.

The plan (prompt keys, slerp weights, key seeds, schedules), the frame loop, 2D loopback, video
input, colour match, resume and the videos are ``lib_vidsd.keyframe``'s; this file supplies the
renderer on A1111's own processing:

* txt2img frames on a copy of the tab's ``p``; img2img frames (2D loopback, video input, the img2img
  tab) on a ``StableDiffusionProcessingImg2Img`` (a copy of the img2img tab's ``p``, or one built
  from the txt2img tab's fields) with the request's init images and strength;
* prompt travel: after the batch's own ``setup_conds``, ``p.c`` is replaced by a new
  ``MulticondLearnedConditioning`` whose conds are ``slerp(cond_a, cond_b, w)`` per row (the
  cached object is never changed); noise travel: ``p.rng``'s first ``next()`` gives
  ``slerp(noise(seed_a), noise(seed_b), w)`` per row, later ones (ancestral step noise) come from
  the original. Each row renders the frame's ``prompt_a`` / ``seed_a`` (weight 0 leaves it alone,
  weight 1 takes key b's cond and noise as they are), so a frame on a key is exactly a plain
  generation with that key's prompt and seed;
* latent coherence through ``on_cfg_after_cfg`` while a request asks for it (cleared in a ``finally``);
* uploads (API base64 audio/video) in private temporary files, removed after the job; outputs in
  ``<tab outdir>/keyframes/<name>``; progress and interrupt through ``shared.state``.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime
import logging
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from lib_vidsd.config import MAX_FPS, KeyframeMode, KeyframeParams, MultiFrameParams
from lib_vidsd.errors import ConfigError, Interrupted, VidsdError
from lib_vidsd.keyframe import slerp
from lib_vidsd.keyframe.job import KeyframeJob, KeyframeRequest, KeyframeResult
from lib_vidsd.keyframe.plan import FramePlan, animation_fps, audio_inputs, plan_animation
from lib_vidsd.multiframe import finished_frames, frame_path, job_folder

from . import binding, models

log = logging.getLogger("vidsd.a1111.keyframes")

KEY = binding.KEYFRAMES.key
FRAMES_KEY = "Keyframe frames"
SCHEDULE_FIELDS = ("strength", "cfg_scale", "zoom", "angle", "translation_x", "translation_y", "pivot_x", "pivot_y")
_AUDIO_MAGIC = ((0, b"fLaC", ".flac"), (0, b"OggS", ".ogg"), (0, b"ID3", ".mp3"), (4, b"ftyp", ".m4a"))


# --- arguments ----------------------------------------------------------------------------------


def parse(args, *, is_api: bool = False) -> tuple[KeyframeParams, str | None, str | None]:
    """The script's arguments → ``(params, audio path, video path)``. API: ``script_args: [{...}]``
    (uploads as base64 in ``audio`` / ``video``); UI: ``(audio upload, video upload, *widgets in
    binding order)``. Over HTTP an upload slot never names a server file."""
    bnd = binding.KEYFRAMES
    if args and isinstance(args[0], dict):
        return bnd.parse_args([args[0]]), None, None
    audio, video, *values = [*args[:2], None, None][:2] + list(args[2:])
    paths = [_upload_path(u) for u in (audio, video)]
    if is_api and any(paths):
        raise ConfigError("script_args", "a file path", "the dict form [{...}] with base64 audio/video")
    fields = [b.field for b in bnd.widget_bindings()]
    for name in binding.KEYFRAMES_ZERO_IS_EMPTY:  # gr.Number shows an empty value as 0 and may send 0
        i = fields.index(name)
        if i < len(values) and not values[i]:
            values[i] = None
    return bnd.parse_args(values), paths[0], paths[1]


def _upload_path(upload) -> str | None:
    path = getattr(upload, "name", upload) if upload else None
    return str(path) if path else None


def check(
    params: KeyframeParams,
    audio_path: str | None = None,
    video_path: str | None = None,
    body: dict | None = None,
    *,
    is_img2img: bool = False,
) -> None:
    """What the API refuses before anything runs (422 naming the field): hires fix, every
    schedule and the prompt keys over the animation's frames, the audio and video decodable (with
    librosa there when audio is given), mode ``video`` without a video, the videos' frame rate
    with interpolation, the interpolation weights. ``body`` is the request (prompt, seed, size)."""
    body = body or {}
    if not is_img2img and body.get("enable_hr"):
        raise ConfigError("enable_hr", True, "false: Keyframe animation renders frames at the generation size")
    seed = body.get("seed") if isinstance(body.get("seed"), int) and body.get("seed", -1) >= 0 else 0
    size = (_int(body.get("width"), 512), _int(body.get("height"), 512))
    with Inputs(params, audio_path, video_path, size) as inputs:
        if inputs.video is not None and inputs.video.count == 0:
            raise ConfigError("video", "…", "a video with at least one frame")
        fps = animation_fps(params, inputs.video_fps)
        plan = plan_animation(
            params,
            prompt=str(body.get("prompt") or ""),
            seed=seed,
            fps=fps,
            video_frames=inputs.video_count,
            img2img=is_img2img,
            **_audio(params, inputs.audio_path, fps),
        )
    check_schedules(params, plan.num_frames, seed)
    if params.format and params.interp.value != "none":
        if fps * params.interp_x > MAX_FPS:
            top = int(MAX_FPS // fps)
            allowed = f"2..{top}" if top >= 2 else "none: even ×2 goes over the limit (lower fps or interp none)"
            raise ConfigError("interp_x", params.interp_x, f"{allowed} at {fps:g} fps (videos at most {MAX_FPS:g} fps)")
        models.load_vfi(params.interp.value, params.interp_model)


def check_schedules(params: KeyframeParams, num_frames: int, seed: int) -> None:
    """Every schedule must parse, also those the mode does not read (the error names the field)."""
    from lib_vidsd.schedule.keyframes import parse_series

    for name in SCHEDULE_FIELDS:
        text = getattr(params, name)
        if text.strip():
            parse_series(text, num_frames, seed=seed, field=name)


def _audio(params: KeyframeParams, audio_path: str | None, fps: float) -> dict:
    try:
        return audio_inputs(params, audio_path, fps)
    except ConfigError as e:
        raise _scrubbed(e) from e
    except VidsdError as e:  # librosa missing, or a file it cannot read
        raise ConfigError("audio", "…", "an audio file librosa can analyse", _TEMP.sub("", str(e))) from e


_TEMP = re.compile(r"[^\s'\"]*vidsd-(?:keyframes|multiframe|audio)-[^/\s]+/")


def _scrubbed(e: ConfigError) -> ConfigError:
    """``e`` without the private temporary folder an API upload was written to (the client sent
    base64: the server's paths are none of its business)."""
    value = _TEMP.sub("", e.value) if isinstance(e.value, str) else e.value
    hint = _TEMP.sub("", e.hint) if isinstance(e.hint, str) else e.hint
    return e if (value, hint) == (e.value, e.hint) else ConfigError(e.field, value, e.allowed, hint)


def _int(value, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else default


# --- uploads ------------------------------------------------------------------------------------


class Inputs:
    """The job's audio file and (mode ``video``) input video: WebUI uploads as they are, API
    base64 in a private temporary folder removed on close."""

    def __init__(self, params: KeyframeParams, audio_path: str | None, video_path: str | None, size: tuple[int, int]):
        self.params, self.size = params, size
        self.audio_path = audio_path
        self._video_path = video_path
        self.video = None  # a lib_vidsd.multiframe.FrameSource
        self._temp: Path | None = None

    def __enter__(self) -> Inputs:
        try:
            if self.params.audio:
                self.audio_path = str(self._write_audio(self.params.audio))
            if self.params.mode is KeyframeMode.VIDEO:
                self.video = self._open_video()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _folder(self) -> Path:
        if self._temp is None:
            self._temp = Path(tempfile.mkdtemp(prefix="vidsd-keyframes-"))
        return self._temp

    def _write_audio(self, text: str) -> Path:
        from lib_vidsd.multiframe.sources import decode_base64

        data = decode_base64(text, field="audio")
        path = self._folder() / f"audio{_audio_suffix(data[:12])}"
        path.write_bytes(data)
        return path

    def _open_video(self):
        from lib_vidsd.multiframe.sources import open_base64_video, open_video

        selection = MultiFrameParams(every=self.params.video_every, max_frames=self.params.max_frames or None)
        if self._video_path:
            return open_video(self._video_path, selection, self.size, field="video")
        if not self.params.video:
            return None
        try:
            return open_base64_video(self.params.video, selection, self.size)
        except ConfigError as e:  # the multi-frame reader names its own field
            raise _scrubbed(ConfigError("video", e.value, e.allowed, e.hint)) from e

    @property
    def video_count(self) -> int | None:
        return None if self.video is None else self.video.count

    @property
    def video_fps(self) -> float | None:
        """The input video's own rate (``animation_fps`` divides by ``video_every``)."""
        return None if self.video is None else self.video.fps * self.params.video_every

    def video_frames(self):
        return None if self.video is None else (frame.image for frame in self.video)

    def close(self) -> None:
        if self.video is not None:
            self.video.close()
            self.video = None
        if self._temp is not None:
            shutil.rmtree(self._temp, ignore_errors=True)
            self._temp = None


def _audio_suffix(head: bytes) -> str:
    """A suffix from the leading bytes: soundfile reads WAV/FLAC/OGG, ffmpeg the rest."""
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return ".wav"
    for offset, magic, suffix in _AUDIO_MAGIC:
        if head[offset : offset + len(magic)] == magic:
            return suffix
    return ".audio"


def analyse_audio(upload, fps, component) -> str:
    """The "Analyse audio" button: ``frame: timestamp: seconds`` per onset at ``fps`` (10 when empty)."""
    from lib_vidsd.keyframe.audio import audio_keyframes

    path = _upload_path(upload)
    if not path:
        return "Upload an audio file first."
    try:
        keys = audio_keyframes(path, float(fps) if fps else 10.0, str(component or "both"))
    except VidsdError as e:
        return f"Error: {e}"
    return keys.text()


def audio_keyframes_request(body: Any) -> dict:
    """``POST /vidsd/v1/audio_keyframes``: ``{"audio": base64, "fps": 10, "component": "both"}`` →
    ``{"frames", "times", "duration", "fps", "text"}``. Raises ``ConfigError`` naming the field."""
    from lib_vidsd.config import MAX_UPLOAD_BYTES, AudioComponent, parse_fps
    from lib_vidsd.keyframe.audio import audio_keyframes
    from lib_vidsd.multiframe.sources import decode_base64

    if not isinstance(body, dict):
        raise ConfigError("body", type(body).__name__, "a JSON object")
    unknown = set(body) - {"audio", "fps", "component"}
    if unknown:
        raise ConfigError(sorted(unknown)[0], "…", "audio, fps, component", "unknown field")
    text = body.get("audio")
    if not isinstance(text, str) or not text.strip():
        raise ConfigError("audio", None, "an audio file as base64")
    try:
        fps = parse_fps(body.get("fps", 10))
    except ValueError as e:
        raise ConfigError("fps", body.get("fps"), f"a number > 0, at most {MAX_FPS:g}") from e
    if not 0 < fps <= MAX_FPS:
        raise ConfigError("fps", fps, f"a number > 0, at most {MAX_FPS:g}")
    component = str(body.get("component") or "both")
    if component not in AudioComponent.values():
        raise ConfigError("audio_component", component, AudioComponent.values())
    data = decode_base64(text, field="audio")
    if len(data) > MAX_UPLOAD_BYTES:
        raise ConfigError("audio", f"{len(data)} bytes", f"a file of at most {MAX_UPLOAD_BYTES >> 20} MiB")
    folder = Path(tempfile.mkdtemp(prefix="vidsd-audio-"))
    try:
        path = folder / f"audio{_audio_suffix(data[:12])}"
        path.write_bytes(data)
        try:
            keys = audio_keyframes(path, fps, component)
        except ConfigError as e:
            raise _scrubbed(e) from e
        except VidsdError as e:
            raise ConfigError("audio", "…", "an audio file librosa can analyse", _TEMP.sub("", str(e))) from e
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return {"frames": keys.frames, "times": keys.times, "duration": keys.duration, "fps": keys.fps, "text": keys.text()}


# --- prompt and noise travel --------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One batch row: it renders the frame's ``prompt_a`` / ``seed_a``; ``blend_cond`` /
    ``blend_noise``: slerp toward ``prompt_b`` / ``seed_b`` by ``weight`` (1 gives exactly b)."""

    weight: float
    prompt_b: str
    seed_b: int
    blend_cond: bool
    blend_noise: bool

    @classmethod
    def of(cls, frame: FramePlan) -> Row:
        moves = frame.weight != 0.0
        return cls(
            frame.weight,
            frame.prompt_b,
            frame.seed_b,
            moves and frame.prompt_a != frame.prompt_b,
            moves and frame.seed_a != frame.seed_b,
        )


def slerp_cond(a, b, weight: float):
    """``slerp(a, b, weight)`` of one cond: a ``(tokens, dim)`` tensor (the shorter one padded with
    its last token, as ``stack_conds`` does) or a dict of them (SDXL: each tensor on its own).
    Weight 1 gives ``b`` itself, so a frame on the next key is exactly that key."""
    if weight == 1.0:
        return b
    if isinstance(a, dict):
        return {k: slerp_cond(v, b[k], weight) if k in b else v for k, v in a.items()}
    if a.dim() == 2 and b.dim() == 2 and a.shape[0] != b.shape[0]:
        count = max(a.shape[0], b.shape[0])
        a, b = (torch.vstack([x, x[-1:].repeat(count - x.shape[0], 1)]) for x in (a, b))
    return slerp(a, b.to(a.device), weight)


def _active(schedules, step: int):
    for entry in schedules:
        if step <= entry.end_at_step:
            return entry
    return schedules[0]  # what reconstruct_cond_batch does when no entry reaches the step


def blend_schedules(a, b, weight: float) -> list:
    """Two ``ScheduledPromptConditioning`` lists → one: at every step where either changes, the slerp
    of the entries each has active there."""
    from modules import prompt_parser

    ends = sorted({e.end_at_step for e in a} | {e.end_at_step for e in b})
    return [
        prompt_parser.ScheduledPromptConditioning(end, slerp_cond(_active(a, end).cond, _active(b, end).cond, weight))
        for end in ends
    ]


def blend_multicond(c, others: dict[int, list], rows: list[Row]):
    """A new ``MulticondLearnedConditioning``: row ``i`` in ``others`` (key b's composable parts)
    slerped from its own (key a's) by its weight, part ``k`` with b's part ``k`` (or b's last); other
    rows keep their lists. ``c`` and everything in it are left as they are (they may be the cache's)."""
    from modules import prompt_parser

    batch = []
    for i, parts in enumerate(c.batch):
        if i not in others:
            batch.append(parts)
            continue
        theirs = others[i]
        new = []
        for k, part in enumerate(parts):
            b = theirs[min(k, len(theirs) - 1)].schedules
            schedules = blend_schedules(part.schedules, b, rows[i].weight)
            new.append(prompt_parser.ComposableScheduledPromptConditioning(schedules, part.weight))
        batch.append(new)
    return prompt_parser.MulticondLearnedConditioning(shape=c.shape, batch=batch)


class TravelRNG:
    """``p.rng`` for a batch with noise travel: the first ``next()`` is, per travelling row,
    ``slerp(noise(seed_a), noise(seed_b), w)`` with each noise what ``ImageRNG`` gives that seed
    (seed_a's from the original, which advances as usual; weight 1 gives seed_b's exactly); later
    calls (ancestral samplers' step noise) are the original's."""

    def __init__(self, rng, rows: list[Row]):
        self.rng, self.rows = rng, rows
        self.is_first = True

    def __getattr__(self, name):
        if name == "rng":
            raise AttributeError(name)
        return getattr(self.rng, name)

    def next(self):
        if not self.is_first:
            return self.rng.next()
        self.is_first = False
        own = self.rng.next()
        from modules import rng as rng_module

        seeds = [r.seed_b if r.blend_noise else s for r, s in zip(self.rows, self.rng.seeds, strict=True)]
        g = self.rng
        other = rng_module.ImageRNG(
            g.shape, seeds, subseeds=g.subseeds, subseed_strength=g.subseed_strength,
            seed_resize_from_h=g.seed_resize_from_h, seed_resize_from_w=g.seed_resize_from_w,
        ).next()  # fmt: skip
        out = []
        for i, row in enumerate(self.rows):
            if not row.blend_noise:
                out.append(own[i])
                continue
            out.append(other[i] if row.weight == 1.0 else slerp(own[i], other[i], row.weight))
        return torch.stack(out)


def other_conds(p, prompts: list[str]):
    """The multicond conditioning of ``prompts`` as ``p.setup_conds`` makes its own: styles applied,
    extra-network tags taken out, the same steps; not through the cond cache."""
    from modules import devices, extra_networks, prompt_parser, shared

    styled = [shared.prompt_styles.apply_styles_to_prompt(x, p.styles) for x in prompts]
    stripped, _ = extra_networks.parse_prompts(styled)
    texts = prompt_parser.SdConditioning(stripped, width=p.width, height=p.height)
    steps = getattr(p, "firstpass_steps", None) or p.steps
    with devices.autocast():
        return prompt_parser.get_multicond_learned_conditioning(
            shared.sd_model, texts, steps, None, shared.opts.use_old_scheduling
        )


def add_travel(p, rows: list[Row]) -> None:
    """Wrap ``p.setup_conds`` (on this object only): after it, ``p.c`` and ``p.rng`` travel."""
    original = p.setup_conds

    def setup_conds():
        original()
        wanted = [i for i, row in enumerate(rows) if row.blend_cond]
        if wanted:
            other = other_conds(p, [rows[i].prompt_b for i in wanted])
            p.c = blend_multicond(p.c, dict(zip(wanted, other.batch, strict=True)), rows)
        if any(row.blend_noise for row in rows) and not isinstance(p.rng, TravelRNG):
            p.rng = TravelRNG(p.rng, rows)  # a refiner's second setup_conds keeps the running one

    p.setup_conds = setup_conds


# --- coherence ----------------------------------------------------------------------------------


class _ActiveCoherence:
    """The latent coherence of the request being rendered; ``None`` outside a keyframe job."""

    coherence = None


ACTIVE = _ActiveCoherence()


def on_cfg_after_cfg(params) -> None:
    """``script_callbacks.on_cfg_after_cfg``: pull the step's denoised latent toward the reference."""
    coherence = ACTIVE.coherence
    if coherence is not None:
        params.x = coherence(params.sampling_step, params.x)


# --- the renderer -------------------------------------------------------------------------------


class _State:
    """``shared.state`` as the core's stop token."""

    def stop_requested(self) -> bool:
        from modules import shared

        return bool(shared.state.interrupted)

    def skip_requested(self) -> bool:
        from modules import shared

        return bool(shared.state.skipped)


def _progress(done: int, total: int | None, text: str = "") -> None:
    from modules import shared

    shared.state.job_no = done
    shared.state.textinfo = text


class Renderer:
    """One ``process_images`` per request, on a fresh processing object built from the tab's ``p``."""

    def __init__(self, p, params: KeyframeParams, is_img2img: bool):
        self.p, self.params, self.is_img2img = p, params, is_img2img
        self.infos: dict[int, str] = {}  # frame index → its infotext
        self.run_extra = {"base_prompt": p.prompt, "base_seed": int(p.seed)}
        self.total = 0  # frames of the animation, for the progress text

    def entry(self, frame: FramePlan) -> str:
        extra: dict[str, Any] = {"frame": frame.index}
        if frame.travels:
            extra.update({"weight": f"{frame.weight:.4f}", "from": frame.prompt_a, "to": frame.prompt_b})
            extra["seeds"] = f"{frame.seed_a}+{frame.seed_b}"
        return binding.KEYFRAMES.infotext(self.params, extra={**extra, **self.run_extra})

    def infotext(self, frame: FramePlan) -> str:
        return self.infos.get(frame.index, "")

    def __call__(self, req: KeyframeRequest) -> list:
        from modules import processing, shared

        frames = list(req.frames)
        pb = self._processing(req)
        pb.prompt = [f.prompt_a for f in frames]
        pb.seed = [f.seed_a for f in frames]
        pb.batch_size, pb.n_iter = len(frames), 1
        pb.width, pb.height = req.width, req.height
        pb.cfg_scale = self.p.cfg_scale if req.cfg_scale is None else req.cfg_scale
        pb.do_not_save_samples = pb.do_not_save_grid = True  # the job saves the (colour-matched) frames
        pb.extra_generation_params[KEY] = [self.entry(f) for f in frames]
        rows = [Row.of(f) for f in frames]
        if any(r.blend_cond or r.blend_noise for r in rows):
            add_travel(pb, rows)
        first, last = frames[0].index + 1, frames[-1].index + 1
        shared.state.job = f"frame {first}" + (f"-{last}" if last != first else "") + f"/{self.total}"
        if req.init_images is not None:
            # A1111 encodes init images with a sample of the VAE posterior drawn from torch's global
            # RNG, i.e. from whatever seed ran last: seeding it with the frame's makes a frame the same
            # on every run, resumed or not
            torch.manual_seed(int(frames[0].seed_a))
        ACTIVE.coherence = req.coherence
        try:
            processed = processing.process_images(pb)
        finally:
            ACTIVE.coherence = None
        if shared.state.interrupted:
            raise Interrupted(f"interrupted at frame {first}")
        start = processed.index_of_first_image  # a grid, when A1111 returns one, comes first
        images = processed.images[start : start + len(frames)]
        if len(images) < len(frames):
            if shared.state.skipped:  # the job ends here; these are not saved
                return [np.zeros((req.height, req.width, 3), np.uint8)] * len(frames)
            raise VidsdError(f"A1111 returned {len(images)} images for frames {first}-{last}")
        for i, frame in enumerate(frames):
            texts = processed.infotexts
            self.infos[frame.index] = texts[start + i] if start + i < len(texts) else processed.info
        return images

    def _processing(self, req: KeyframeRequest):
        if req.init_images is None:
            return _fresh_copy(self.p)
        pb = _fresh_copy(self.p) if self.is_img2img else _img2img_from(self.p)
        pb.init_images = [Image.fromarray(np.ascontiguousarray(x)) for x in req.init_images]
        pb.denoising_strength = round(req.strength, 6)  # a ramp's 0.39999999999999997 reads 0.4
        return pb


def _fresh_copy(p):
    """A shallow copy of ``p`` with its own per-run dicts (what ``process_images`` fills is reset)."""
    pb = copy.copy(p)
    pb.extra_generation_params = dict(p.extra_generation_params)
    pb.override_settings = dict(p.override_settings)
    pb.comments = {}
    pb.styles = list(p.styles or [])
    pb.sampler = pb.c = pb.uc = pb.rng = None
    return pb


def _img2img_from(p):
    """An img2img processing object with the txt2img tab's fields (sampler, steps, CFG, size, seeds,
    outputs, override settings) and its scripts (2D loopback from the txt2img tab)."""
    from modules import processing

    names = [f.name for f in dataclasses.fields(processing.StableDiffusionProcessing) if f.init]
    fields = {name: getattr(p, name) for name in names if hasattr(p, name)}
    fields.update(
        extra_generation_params=dict(p.extra_generation_params),
        override_settings=dict(p.override_settings),
        styles=list(p.styles or []),
        comments=None,
        sampler_index=None,
    )
    pb = processing.StableDiffusionProcessingImg2Img(**fields, resize_mode=0)
    pb.is_api = getattr(p, "is_api", False)
    if p.scripts is not None:
        pb.scripts = p.scripts
        pb.script_args = p.script_args
    return pb


# --- the job ------------------------------------------------------------------------------------


def refuse_conflicts(p, is_img2img: bool) -> None:
    """Hires fix and AnimateDiff would act on every batch of frames: refuse them with a clear word."""
    if not is_img2img and getattr(p, "enable_hr", False):
        raise ConfigError("enable_hr", True, "off: Keyframe animation renders frames at the generation size")
    runner, args = getattr(p, "scripts", None), getattr(p, "script_args", None) or ()
    for script in getattr(runner, "alwayson_scripts", ()):
        if script.title() != "AnimateDiff" or script.args_from is None:
            continue
        first = args[script.args_from] if script.args_from < len(args) else None
        enabled = first.get("enable") if isinstance(first, dict) else first is True
        if enabled:
            raise ConfigError("AnimateDiff", "enabled", "off while Keyframe animation renders its frames")


def _resumed_seed(p, out_dir: Path) -> None:
    """Resuming with a random seed (-1) takes the run's seed from the first frame's infotext."""
    from modules import infotext_utils

    if str(p.seed).strip() not in ("-1", "", "None") or not frame_path(out_dir, 0).is_file():
        return
    with Image.open(frame_path(out_dir, 0)) as img:
        text = img.info.get("parameters", "")
    entry = infotext_utils.parse_generation_parameters(text).get(KEY)
    seed = binding.KEYFRAMES.parse_infotext(entry).get("base_seed") if isinstance(entry, str) else None
    try:
        p.seed = int(seed) if seed is not None else p.seed
    except ValueError:
        log.warning("could not read the run's seed from %s", frame_path(out_dir, 0))


def run(p, params: KeyframeParams, audio_path: str | None = None, video_path: str | None = None):
    """The whole animation; returns A1111's ``Processed`` (frames and GIF/WEBP for the gallery;
    videos and frames for the API)."""
    from modules import processing, shared

    from lib_vidsd.patching import restore_all

    is_img2img = isinstance(p, processing.StableDiffusionProcessingImg2Img)
    refuse_conflicts(p, is_img2img)
    restore_all(shared.sd_model.model.diffusion_model)  # whatever a crashed job left
    name = params.output_name or datetime.datetime.now().strftime("%Y%m%d-%H%M%S")  # already made safe
    out_dir = job_folder(Path(p.outpath_samples) / "keyframes", name, resume=params.resume)
    if params.resume:
        _resumed_seed(p, out_dir)
    processing.fix_seed(p)
    size = (p.width, p.height)
    renderer = Renderer(p, params, is_img2img)
    p.extra_generation_params[KEY] = binding.KEYFRAMES.infotext(params, extra=renderer.run_extra)
    with Inputs(params, audio_path, video_path, size) as inputs:
        fps = animation_fps(params, inputs.video_fps)
        plan = plan_animation(
            params, prompt=p.prompt, seed=int(p.seed), fps=fps, video_frames=inputs.video_count,
            img2img=is_img2img, **_audio(params, inputs.audio_path, fps),
        )  # fmt: skip
        check_schedules(params, plan.num_frames, int(p.seed))
        interp_model = models.load_vfi(params.interp.value, params.interp_model) if params.format else None
        init = np.asarray(p.init_images[0].convert("RGB")) if is_img2img and p.init_images else None
        renderer.total = plan.num_frames
        shared.state.job_count = plan.num_frames
        try:
            job = KeyframeJob(
                params, plan, renderer, out_dir=out_dir, size=size, init_image=init,
                video=inputs.video_frames(), audio_path=inputs.audio_path, batch_size=max(1, int(p.batch_size)),
                seed=int(p.seed), infotext=renderer.infotext, interp_model=interp_model,
                progress=_progress, stop=_State(),
            )  # fmt: skip
            result = job.run()
        except Interrupted as e:  # like A1111's own scripts: the finished frames come back, no video
            log.info("keyframe animation stopped: %s", e)
            done = [frame_path(out_dir, k) for k in range(finished_frames(out_dir))]
            result = KeyframeResult(out_dir, done, fps=plan.fps, complete=False)
        finally:
            ACTIVE.coherence = None
            if out_dir.is_dir() and not any(out_dir.iterdir()):
                out_dir.rmdir()  # failed before its first frame: no empty folder left behind
    return _processed(p, result, renderer)


def _processed(p, result: KeyframeResult, renderer: Renderer):
    from modules import processing

    from .output import encode_files

    count = len(result.frames)
    state = "" if result.complete else " (stopped early)"
    p.extra_generation_params[FRAMES_KEY] = f"{count}{state}" if state else count
    for video in result.videos:
        p.comment(f"{KEY}: {video}")
    from modules import infotext_utils

    entry = infotext_utils.quote(p.extra_generation_params[KEY])
    info = f"{p.prompt}\n{FRAMES_KEY}: {count}{state}, folder: {result.out_dir.name}, {KEY}: {entry}"
    texts = [_frame_text(path, renderer, k, info) for k, path in enumerate(result.frames)]
    if getattr(p, "is_api", False):
        frames = []
        for path, text in zip(result.frames, texts, strict=True):
            with Image.open(path) as img:
                frame = img.convert("RGB")
            frame.info["parameters"] = text
            frames.append(frame)
        images = [*encode_files(result.videos), *frames]
        infotexts = [info] * len(result.videos) + texts
    else:
        shown = [v for v in result.videos if v.suffix in (".gif", ".webp")]
        images = [str(v) for v in shown] + [str(path) for path in result.frames]
        infotexts = [info] * len(shown) + texts
    return processing.Processed(p, images, seed=p.seed, info=info, infotexts=infotexts)


def _frame_text(path: Path, renderer: Renderer, index: int, fallback: str) -> str:
    """A frame's infotext: from this run, else (resumed frames) from its PNG."""
    if index in renderer.infos:
        return renderer.infos[index]
    try:
        with Image.open(path) as img:
            return img.info.get("parameters") or fallback
    except OSError:
        return fallback
