"""Video stylisation in the WebUI: the img2img script's run, one ``process_images`` over the whole clip.

The source frames become one img2img batch (``init_images``, one per frame; the same seed for every
frame with ``fixed_noise``). For the job, ``sd_model.apply_model`` is wrapped so every evaluation of
the clip goes through :func:`lib_vidsd.stylize.chunked_unet_call`: the UNet sees ``chunk_size`` frames
at a time, under :class:`~lib_vidsd.attention.combine.CombineAttention` with the combine pattern and
the reference images' latents (noised per step). The wrapper sits outside the UNet's ``forward``, so
sd-webui-controlnet (which replaces that ``forward`` in its ``process`` hook) runs inside each chunk;
units without an image of their own get the source frames (ControlNet's per-frame batch input), and
their per-frame hints are cut to the chunk's frames before each chunk. The in-loop smoother replaces
the predicted clean latents (``on_cfg_after_cfg``) at the steps ``SmootherSchedule`` names. After
sampling, :class:`lib_vidsd.stylize.StylizeJob` deflickers, writes the PNG frames and the videos.
Everything the job changes is put back in a ``finally`` (also after an interrupt or an error).
"""

from __future__ import annotations

import base64
import datetime
import logging
import re
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from lib_vidsd.config import StylizeParams
from lib_vidsd.errors import ConfigError
from lib_vidsd.multiframe import job_folder

from . import binding, models
from .controlnet import controlnet_script, external_code, has_own_image
from .multiframe_job import input_roots

log = logging.getLogger("vidsd.a1111.stylize")

KEY = binding.STYLIZE.key
FRAMES_KEY = "Video stylisation frames"
UI_ZERO_IS_EMPTY = ("max_frames", "fps")
_AND = re.compile(r"\bAND\b")


# --- arguments -----------------------------------------------------------------------------------


def _upload_path(upload) -> str | None:
    path = getattr(upload, "name", upload) if upload else None
    return str(path) if path else None


def _b64_file(path: str) -> str:
    return base64.b64encode(Path(path).read_bytes()).decode("ascii")


def parse(args, *, is_api: bool = False) -> tuple[StylizeParams, str | None]:
    """The script's arguments → (params, uploaded video path).

    API: ``script_args: [{...}]`` (inputs as base64), or the list form, laid out like the UI's
    arguments (A1111 puts it into the script's argument slice as it is): ``[video upload, reference
    uploads, *widget values in binding order]``, the upload slots empty over HTTP (a video comes as
    base64 ``input_video``, never as a server path). The uploaded reference images go into
    ``reference_images``."""
    args = list(args or ())
    if args and isinstance(args[0], (dict, StylizeParams)):
        return binding.STYLIZE.parse_args([args[0]]), None
    fields = [b.field for b in binding.STYLIZE.widget_bindings()]
    upload, references, *values = args + [None] * max(0, 2 - len(args))
    if is_api and (_upload_path(upload) or references):
        raise ConfigError("script_args", "a file path", "the dict form [{...}] with base64 input_video")
    values = {f: v for f, v in zip(fields, values, strict=False)}
    for name in UI_ZERO_IS_EMPTY:  # gr.Number shows an empty value as 0 and sends 0 back
        if name in values and not values[name]:
            values[name] = None
    if references:
        files = references if isinstance(references, (list, tuple)) else [references]
        values["reference_images"] = [_b64_file(p) for p in map(_upload_path, files) if p]
    return binding.STYLIZE.parse_args([values]), _upload_path(upload)


def check(params: StylizeParams, video_path: str | None = None, body: dict | None = None) -> None:
    """What the API refuses before anything runs (422 naming the field): exactly one input, folders
    inside the roots, a frame range holding frames, every base64 frame and reference image decodable,
    the videos' frame rate and interpolation weights, and the img2img fields the job cannot honour
    (an inpainting mask, ``AND`` prompts). ``body`` is the request."""
    from lib_vidsd.stylize import decode_references

    from .multiframe_job import check_source, check_video_rate

    body = body or {}
    kind, _count, fps, size, _roots = check_source(params, video_path, body)
    decode_references(params, size)
    if params.keep_audio and kind not in ("input_video", "video_path"):
        raise ConfigError("keep_audio", True, "off unless the input is a video (input_video or an upload)")
    _check_request(body)
    check_video_rate(params, fps)


def _check_request(body: dict) -> None:
    if body.get("mask"):
        raise ConfigError("mask", "an image", "none: Video stylisation re-renders whole frames")
    for field in ("prompt", "negative_prompt"):
        if isinstance(body.get(field), str) and field == "prompt" and _AND.search(body[field]):
            raise ConfigError(field, body[field], "a prompt without AND (one conditioning per frame)")


def refuse_conflicts(p) -> None:
    """What would break the one-batch clip: an inpainting mask, ``AND`` prompts, AnimateDiff."""
    if getattr(p, "image_mask", None) is not None:
        raise ConfigError("mask", "an image", "none: Video stylisation re-renders whole frames")
    _check_request({"prompt": p.prompt if isinstance(p.prompt, str) else ""})
    runner, args = getattr(p, "scripts", None), getattr(p, "script_args", None) or ()
    for script in getattr(runner, "alwayson_scripts", ()):
        if script.title() != "AnimateDiff" or script.args_from is None:
            continue
        first = args[script.args_from] if script.args_from < len(args) else None
        if first.get("enable") if isinstance(first, dict) else first is True:
            raise ConfigError("AnimateDiff", "enabled", "off while Video stylisation renders its frames")


# --- ControlNet ----------------------------------------------------------------------------------


class ControlNetFrames:
    """sd-webui-controlnet for one job: units without an image get the source frames (written to a
    private folder as ControlNet's per-frame batch input), and before each chunk every per-frame hint
    is cut to the chunk's rows (``select``); :meth:`close` puts the hints back and removes the folder.
    Does nothing when ControlNet is not installed or no unit is enabled."""

    def __init__(self, p, frames: list[np.ndarray], follow: bool):
        self.n = len(frames)
        self.script = controlnet_script(p)
        self.folder: Path | None = None
        self.full: dict[int, tuple[Any, torch.Tensor]] = {}
        self.units = 0
        if self.script is None:
            log.info("Video stylisation: sd-webui-controlnet is not installed; rendering without ControlNet")
            return
        code = external_code(self.script)
        if code is None:
            log.warning("Video stylisation: ControlNet found but not its external_code API; units left as they are")
            return
        units = list(code.get_all_units_in_processing(p))
        enabled = [u for u in units if getattr(u, "enabled", False)]
        self.units = len(enabled)
        if not enabled:
            return
        followed = [u for u in enabled if not has_own_image(u)]
        if not follow or not followed:
            return
        self.folder = Path(tempfile.mkdtemp(prefix="vidsd_stylize_cn_"))
        for k, frame in enumerate(frames):
            Image.fromarray(frame).save(self.folder / f"{k:05d}.png")
        for unit in followed:  # ControlNet reads batch_images' first line as the folder of per-frame images
            unit.animatediff_batch = True
            unit.batch_images = str(self.folder)
        code.update_cn_script_in_processing(p, units)
        log.info("Video stylisation: %d ControlNet unit(s) follow the %d source frames", len(followed), self.n)

    def _params(self) -> list:
        network = getattr(self.script, "latest_network", None) if self.script is not None else None
        return list(getattr(network, "control_params", None) or [])

    def select(self, frames: list[int], references: int, halves: int, device) -> None:
        """Give every per-frame hint the rows of this chunk: per half, the reference rows (the first
        frame's hint, as ``chunked_unet_call`` gives them every per-row value) then the frames."""
        if self.n < 2:
            return
        for param in self._params():
            if id(param) not in self.full:
                hint = getattr(param, "hint_cond", None)
                if not isinstance(hint, torch.Tensor) or hint.ndim != 4 or hint.shape[0] not in (self.n, 2 * self.n):
                    continue  # one image for all frames: it broadcasts over any chunk
                self.full[id(param)] = (param, hint)
            _, hint = self.full[id(param)]
            rows = [frames[0]] * references + list(frames)
            part = hint[: self.n][torch.tensor(rows)]
            param.hint_cond = torch.cat([part] * halves).to(device)  # the setter drops ControlNet's cached copies

    def close(self) -> None:
        for param, hint in self.full.values():
            param.hint_cond = hint
        self.full.clear()
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None


# --- the UNet wrapper and the smoother -----------------------------------------------------------


class _ChunkTracker:
    """Stands for the ``CombineAttention`` inside ``chunked_unet_call``: records the chunk's frames
    and reference rows (for the ControlNet hints) and hands on to the real one."""

    def __init__(self, attention):
        self.attention = attention
        self.frames: list[int] = []
        self.references = 0

    def begin_step(self) -> None:
        self.attention.begin_step()

    @contextmanager
    def batch(self, frames, references=()):
        self.frames, self.references = list(frames), len(list(references))
        with self.attention.batch(frames=frames, references=references):
            yield


class ChunkedModel:
    """``sd_model.apply_model`` for one job: each evaluation of the clip (``halves × n`` rows) runs in
    chunks of frames (:func:`lib_vidsd.stylize.chunked_unet_call`); interrupts are honoured between
    chunks. :meth:`restore` puts back whatever ``apply_model`` the instance had."""

    def __init__(self, sd_model, *, num_frames: int, chunk_size: int, attention, references, controlnet):
        self.sd_model = sd_model
        self.n, self.chunk_size = num_frames, chunk_size
        self.tracker = _ChunkTracker(attention)
        self.references = references
        self.controlnet = controlnet
        self._had = "apply_model" in vars(sd_model)
        self._previous = vars(sd_model).get("apply_model")
        self.original = sd_model.apply_model
        sd_model.apply_model = self

    def __call__(self, x, t, *args, **kwargs):
        from lib_vidsd.stylize import chunked_unet_call

        if x.shape[0] % self.n:  # not this clip's batch (another caller of apply_model)
            return self.original(x, t, *args, **kwargs)
        halves = x.shape[0] // self.n
        refs = self.references.to(x.device, x.dtype) if self.references is not None else None

        def forward(xc, tc, *a, **k):
            from modules import sd_samplers_common, shared

            if shared.state.interrupted or shared.state.skipped:
                raise sd_samplers_common.InterruptedException
            self.controlnet.select(self.tracker.frames, self.tracker.references, halves, xc.device)
            return self.original(xc, tc, *a, **k)

        return chunked_unet_call(
            forward, x, t, *args, num_frames=self.n, chunk_size=self.chunk_size,
            attention=self.tracker, references=refs, **kwargs,
        )  # fmt: skip

    def restore(self) -> None:
        if vars(self.sd_model).get("apply_model") is self:
            if self._had:
                self.sd_model.apply_model = self._previous
            else:
                del self.sd_model.apply_model


class _ActiveSmoother:
    """The in-loop smoother of the job being rendered; ``None`` outside a stylisation job."""

    smoother = None


ACTIVE = _ActiveSmoother()


def on_cfg_after_cfg(params) -> None:
    """``script_callbacks.on_cfg_after_cfg``: at the scheduled steps, the clip's predicted clean
    latents (``params.x``, one row per frame) are deflickered."""
    smoother = ACTIVE.smoother
    if smoother is not None:
        params.x = smoother(params.x)


class Smoother:
    """Decode → patch-match deflicker (source frames as guide) → encode, on the step's predicted
    latents; the step index is the sampler's evaluation count mapped to its sampling steps."""

    def __init__(self, p, params: StylizeParams, frames: list[np.ndarray], seed: int):
        from lib_vidsd.stylize import SmootherSchedule

        self.p, self.params, self.frames, self.seed = p, params, frames, seed
        self.schedule = SmootherSchedule(params.smoother_interval, params.smoother_ignore_last)
        self.calls = 0
        self.smoothed: list[int] = []

    def _step(self) -> tuple[int, int]:
        from modules import shared

        denoiser = getattr(getattr(self.p, "sampler", None), "model_wrap_cfg", None)
        total = int(getattr(shared.state, "sampling_steps", 0) or 0)
        step, evaluations = getattr(denoiser, "step", None), getattr(denoiser, "total_steps", None)
        if isinstance(step, int) and isinstance(evaluations, int) and evaluations > 0 and total > 0:
            return step * total // evaluations, total  # second-order samplers evaluate twice per step
        return self.calls, max(total, self.calls + 1)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        from lib_vidsd.stylize import smooth_predicted

        step, total = self._step()
        self.calls += 1
        if x.shape[0] != len(self.frames) or not self.schedule.applies(step, total):
            return x
        self.smoothed.append(step)
        log.info("Video stylisation: in-loop smoother at step %d of %d", step, total)
        params = self.params
        return smooth_predicted(
            x, decode=_decode, encode=_encode, guide=self.frames, mode=params.smoother, window=params.smoother_window,
            patch_size=params.patch_size, guide_weight=params.guide_weight, seed=self.seed,
            chunk_size=params.chunk_size, stop=_State(),
        )  # fmt: skip


def _vae_dtype():
    from modules import devices

    return getattr(devices, "dtype_vae", torch.float32)


def _decode(latents: torch.Tensor) -> list[np.ndarray]:
    from modules import shared

    pixels = shared.sd_model.decode_first_stage(latents.to(_vae_dtype())).float()
    pixels = ((pixels + 1) / 2).clamp(0, 1).mul(255).round().to(torch.uint8)
    return list(pixels.permute(0, 2, 3, 1).cpu().numpy())


def _encode(images: list[np.ndarray]) -> torch.Tensor:
    from modules import devices, shared

    model = shared.sd_model
    pixels = torch.from_numpy(np.stack([np.asarray(i, dtype=np.float32) for i in images])).permute(0, 3, 1, 2)
    pixels = (pixels / 127.5 - 1).to(getattr(devices, "device", "cpu"), _vae_dtype())
    posterior = model.encode_first_stage(pixels)
    # the posterior's mean: no draw from torch's global generator (A1111 seeds it per job, and the next
    # img2img job's own VAE sample would otherwise depend on what this job drew)
    mean = posterior if isinstance(posterior, torch.Tensor) else posterior.mode()
    return model.get_first_stage_encoding(mean)


class _State:
    """``shared.state`` as the core's stop token."""

    def stop_requested(self) -> bool:
        from modules import shared

        return bool(shared.state.interrupted)

    def skip_requested(self) -> bool:
        from modules import shared

        return bool(shared.state.skipped)


def _references(p, params: StylizeParams, size: tuple[int, int], seed: int):
    """The reference images' latents with the first frame's starting noise (``None`` without any)."""
    from modules import processing

    from lib_vidsd.stylize import ReferenceLatents, decode_references

    images = decode_references(params, size)
    if not images:
        return None
    model = p.sd_model
    latents = torch.cat([_encode([image]) for image in images])
    noise = processing.create_random_tensors(
        latents.shape[1:], [seed], subseeds=[p.subseed], subseed_strength=p.subseed_strength, p=p
    )[0].to(latents)
    return ReferenceLatents(latents, noise, model.alphas_cumprod)


# --- the job -------------------------------------------------------------------------------------


def run(p, params: StylizeParams, video_path: str | None):
    """The whole job; returns A1111's ``Processed`` (frames for the UI; videos and frames for the API)."""
    from modules import processing

    from lib_vidsd.patching import restore_all
    from lib_vidsd.stylize import read_stylize_input

    refuse_conflicts(p)
    unet = p.sd_model.model.diffusion_model
    restore_all(unet)  # whatever a crashed job left
    processing.fix_seed(p)
    seed = int(p.seed)
    size = (p.width, p.height)
    source = read_stylize_input(params, size=size, video_path=video_path, roots=input_roots())
    try:
        return _render(p, params, source, unet, seed)
    finally:
        source.cleanup()


def _render(p, params: StylizeParams, source, unet, seed: int):
    from modules import processing, shared

    from lib_vidsd.attention.combine import CombineAttention
    from lib_vidsd.stylize import StylizeJob

    size = (p.width, p.height)
    frames, n = source.frames, len(source.frames)
    name = params.output_name or datetime.datetime.now().strftime("%Y%m%d-%H%M%S")  # already made safe
    out_dir = job_folder(Path(p.outpath_samples) / "stylize", name, resume=False)
    job = StylizeJob(  # refuses what cannot work (interpolation weights, frame rate) before rendering
        params, out_dir=out_dir, source=frames, fps=source.fps, audio_from=source.audio_source,
        interp_model_dir=models.vfi_folders()[0], progress=_progress, stop=_State(), seed=seed,
    )  # fmt: skip
    p.extra_generation_params[KEY] = binding.STYLIZE.infotext(params)
    p.init_images = [Image.fromarray(f) for f in frames]
    p.batch_size, p.n_iter = n, 1
    p.seed = [seed] * n if params.fixed_noise else [seed + k for k in range(n)]
    p.do_not_save_samples = p.do_not_save_grid = True  # the job saves the frames
    shared.state.job = f"Video stylisation: {n} frames"
    controlnet = wrapper = attention = None
    try:
        references = _references(p, params, size, seed)
        controlnet = ControlNetFrames(p, frames, params.control_frames)
        attention = CombineAttention(unet, params.combine_pattern, num_frames=n)
        wrapper = ChunkedModel(
            p.sd_model, num_frames=n, chunk_size=params.chunk_size, attention=attention,
            references=references, controlnet=controlnet,
        )  # fmt: skip
        ACTIVE.smoother = Smoother(p, params, frames, seed) if params.smoother.value != "none" else None
        processed = processing.process_images(p)
    finally:
        ACTIVE.smoother = None
        if wrapper is not None:
            wrapper.restore()
        if attention is not None:
            attention.restore()
        if controlnet is not None:
            controlnet.close()
        p.seed = seed
    if shared.state.interrupted or len(processed.images) < n:
        log.info("Video stylisation stopped before the frames were finished; nothing saved")
        processed.info = f"{processed.info}\n{FRAMES_KEY}: 0 (stopped early)"
        return processed
    rendered = [np.asarray(img.convert("RGB")) for img in processed.images[:n]]
    job.infotext = infotext = processed.infotexts[0] if processed.infotexts else processed.info
    result = job.finish(rendered)
    return _processed(p, result, out_dir, infotext, controlnet.units)


def _progress(done: int, total: int, text: str) -> None:
    from modules import shared

    shared.state.textinfo = text


def _processed(p, result, out_dir: Path, frame_text: str, units: int):
    from modules import infotext_utils, processing

    from .output import encode_files

    count = len(result.frame_paths)
    p.extra_generation_params[FRAMES_KEY] = count
    entry = infotext_utils.quote(p.extra_generation_params[KEY])
    info = f"{p.prompt}\n{FRAMES_KEY}: {count}, folder: {out_dir.name}, {KEY}: {entry}"
    if units:
        info += f", ControlNet units: {units}"
    if getattr(p, "is_api", False):
        frames = []
        for path in result.frame_paths:
            with Image.open(path) as img:
                frame = img.convert("RGB")
            frame.info["parameters"] = frame_text
            frames.append(frame)
        images = [*encode_files(result.videos), *frames]
        texts = [info] * len(result.videos) + [frame_text] * len(frames)
    else:
        shown = [v for v in result.videos if v.suffix in (".gif", ".webp")]
        images = [str(v) for v in shown] + [str(path) for path in result.frame_paths]
        texts = [info] * len(shown) + [frame_text] * len(result.frame_paths)
    return processing.Processed(p, images, seed=p.seed, info=info, infotexts=texts)
