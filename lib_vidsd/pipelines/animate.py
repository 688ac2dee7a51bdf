"""AnimateDiff on a diffusers Stable Diffusion model: what ``python -m lib_vidsd animate`` runs.

One job: encode the (travelling) prompt per frame, start from seeded noise (or from an init image
and an optional last frame, blended per ``latent_power``/``latent_scale``), inject the motion
module, denoise every step window by window (:func:`lib_vidsd.motion.windowed.denoise_windowed`)
with classifier-free guidance, optionally repeat with FreeInit, decode, deflicker when asked
(``ad.deflicker``: the frames as their own guide, ``ad.deflicker_window`` frames on each side), and
hand back frames plus an infotext. The UNet is restored in a ``finally``, also on interrupt.

Latents are ``(F, 4, H/8, W/8)``; a UNet call gets ``halves × F`` rows (conditional frames, then
unconditional frames), the layout the motion module and the window scheduler expect.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from ..config import AnimateDiffParams, DeflickerMode, GenerationParams, SchedulerName
from ..consistency.outputs import check_frame_size, option_settings, run_deflicker
from ..errors import ConfigError, IncompatibleModelError
from ..motion import MotionModule, build_motion_module, inject
from ..motion.freeinit import filter_for, freeinit_loop
from ..motion.latents import blend_for
from ..motion.windowed import denoise_windowed
from ..progress import ProgressSink, StopToken, check_stop, null_progress
from ..schedule.prompts import parse_prompt_travel, travel_is_closed
from .seeding import perturb_trivial_parameters, seeded_build

log = logging.getLogger("vidsd.pipelines.animate")

TINY_NAME = "tiny built-in (random weights)"
DECODE_CHUNK = 8  # frames per VAE decode call


@dataclass
class SDModel:
    """The parts of a Stable Diffusion 1.x model the job uses."""

    unet: torch.nn.Module
    vae: torch.nn.Module
    text_encoder: torch.nn.Module
    tokenizer: Any
    scheduler_config: dict
    name: str

    @property
    def device(self) -> torch.device:
        return next(self.unet.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.unet.parameters()).dtype

    @property
    def latent_scale(self) -> float:
        return float(getattr(self.vae.config, "scaling_factor", 0.18215))


def load_sd(model: str | None, *, device: str = "cpu", dtype: torch.dtype = torch.float32) -> SDModel:
    """A diffusers model folder or a single-file checkpoint; ``None`` gives the tiny built-in model.

    Everything is read from local files (``local_files_only``): nothing is downloaded.
    """
    if model is None:
        from .tiny import build_sd_components

        parts = build_sd_components(seed=0)
        log.warning("no model given: using the %s; the frames show noise-like patterns", TINY_NAME)
        sd = SDModel(
            parts["unet"],
            parts["vae"],
            parts["text_encoder"],
            parts["tokenizer"],
            dict(parts["scheduler"].config),
            TINY_NAME,
        )
    else:
        sd = _load_diffusers(Path(model))
    for part in (sd.unet, sd.vae, sd.text_encoder):
        if next(part.parameters()).dtype != dtype:
            part.to(dtype=dtype)
        part.to(device=device).eval().requires_grad_(False)
    return sd


def _load_diffusers(path: Path) -> SDModel:
    from diffusers import StableDiffusionPipeline

    if not path.exists():
        raise ConfigError("model", str(path), "a diffusers model folder or a .safetensors/.ckpt checkpoint")
    try:
        if path.is_dir():
            pipe = StableDiffusionPipeline.from_pretrained(str(path), local_files_only=True, safety_checker=None)
        else:
            pipe = StableDiffusionPipeline.from_single_file(str(path), local_files_only=True)
    except (OSError, ValueError, KeyError) as e:
        raise IncompatibleModelError(f"cannot load Stable Diffusion model {path}: {e}") from e
    return SDModel(pipe.unet, pipe.vae, pipe.text_encoder, pipe.tokenizer, dict(pipe.scheduler.config), path.name)


def tiny_motion_module(seed: int = 0) -> MotionModule:
    """A seeded v3-layout motion module for the tiny built-in model (32 channels at every level)."""
    module = seeded_build(seed, lambda: build_motion_module("v3", channels=(32, 32, 32, 32)))
    perturb_trivial_parameters(module, seed + 1)
    return module.requires_grad_(False)


# --- text ---------------------------------------------------------------------------------------


def encode_prompts(sd: SDModel, prompts: list[str]) -> torch.Tensor:
    """``(len(prompts), 77·k, C)``: each prompt in 75-token chunks (each with its own start and end
    token, as A1111 does), all padded with the empty prompt's chunk to the longest one's ``k``."""
    tok = sd.tokenizer
    per_prompt = [tok(p, add_special_tokens=False, truncation=False)["input_ids"] for p in prompts]
    chunks = max(1, *((len(ids) + 74) // 75 for ids in per_prompt))
    bos, eos = tok.bos_token_id, tok.eos_token_id
    pad = tok.pad_token_id if tok.pad_token_id is not None else eos
    rows = []
    for ids in per_prompt:
        for k in range(chunks):
            piece = ids[75 * k : 75 * (k + 1)]
            rows.append([bos, *piece, eos] + [pad] * (75 - len(piece)))
    ids = torch.tensor(rows, device=sd.device)
    with torch.no_grad():
        hidden = sd.text_encoder(ids)[0]  # (N·k, 77, C)
    return hidden.reshape(len(prompts), chunks * 77, -1).to(sd.dtype)


def frame_conditioning(sd: SDModel, prompt: str, negative: str, num_frames: int, closed: bool):
    """``(cond, uncond, travel)``: per-frame ``(F, T, C)`` tensors; ``travel`` is the parsed
    prompt travel or ``None``. Key frames' prompts are encoded once and slerped between keys."""
    travel = parse_prompt_travel(prompt, num_frames)
    if travel is None:
        both = encode_prompts(sd, [prompt, negative])
        return both[:1].expand(num_frames, -1, -1), both[1:].expand(num_frames, -1, -1), None
    texts = [text for _, text in travel.keyframes]
    encoded = encode_prompts(sd, [*texts, negative])
    cond = torch.zeros(num_frames, *encoded.shape[1:], dtype=encoded.dtype, device=encoded.device)
    for (frame, _), row in zip(travel.keyframes, encoded[:-1], strict=True):
        cond[frame] = row
    return travel.blend(cond, closed), encoded[-1:].expand(num_frames, -1, -1), travel


# --- sampling -----------------------------------------------------------------------------------


def _scheduler_registry() -> dict[str, tuple[str, dict]]:
    return {
        SchedulerName.DDIM.value: ("DDIMScheduler", {"clip_sample": False, "set_alpha_to_one": False}),
        SchedulerName.EULER.value: ("EulerDiscreteScheduler", {}),
        SchedulerName.EULER_A.value: ("EulerAncestralDiscreteScheduler", {}),
        SchedulerName.DPMPP_2M.value: ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++"}),
        SchedulerName.LCM.value: ("LCMScheduler", {}),
    }


def make_scheduler(name: str, base_config: dict, alphas_cumprod: torch.Tensor | None):
    """A diffusers scheduler by name, on the motion module's noise schedule when one is given
    (passed as ``trained_betas``: ``β_t = 1 − ᾱ_t / ᾱ_{t−1}``)."""
    import diffusers

    registry = _scheduler_registry()
    if str(name) not in registry:
        raise ConfigError("scheduler", name, list(registry))
    cls_name, extra = registry[str(name)]
    config = {k: v for k, v in base_config.items() if not k.startswith("_")}
    config.update(extra)
    if alphas_cumprod is not None:
        a = alphas_cumprod.double()
        betas = 1 - a / torch.cat([torch.ones(1, dtype=a.dtype), a[:-1]])
        config["trained_betas"] = betas.tolist()
        config["num_train_timesteps"] = len(betas)
    return getattr(diffusers, cls_name).from_config(config)


@dataclass
class AnimateResult:
    frames: list[np.ndarray]
    infotext: str
    seed: int
    prompts: list[str] = field(default_factory=list)


class AnimateJob:
    """One animation: parameters, model, motion module, and what the run produced."""

    def __init__(
        self,
        sd: SDModel,
        motion_module: MotionModule,
        gen: GenerationParams,
        ad: AnimateDiffParams,
        *,
        init_image: Image.Image | None = None,
        last_image: Image.Image | None = None,
        loras: list[tuple[Any, float]] | None = None,
        motion_name: str = "",
        progress: ProgressSink = null_progress,
        stop: StopToken | None = None,
    ):
        self.sd, self.mm, self.gen, self.ad = sd, motion_module, gen, ad
        self.init_image, self.last_image = init_image, last_image
        self.loras = loras or []
        self.motion_name = motion_name or motion_module.family
        self.progress, self.stop = progress, stop
        self.num_frames = ad.video_length or ad.batch_size
        if ad.batch_size > motion_module.context_limit:
            raise ConfigError(
                "batch_size", ad.batch_size, f"1..{motion_module.context_limit} for this {motion_module.family} module"
            )
        if last_image is not None and init_image is None:
            raise ConfigError("last_frame", "an image", "only together with an init image")
        self.deflicker = option_settings(ad.deflicker, ad.deflicker_window)
        check_frame_size(self.deflicker, gen.width, gen.height)
        self.seed = gen.seed if gen.seed != -1 else random.randrange(2**32)
        self._done = 0

    def run(self) -> AnimateResult:
        gen, ad = self.gen, self.ad
        closed = travel_is_closed(self.num_frames, ad.batch_size, ad.closed_loop)
        cond, uncond, travel = frame_conditioning(self.sd, gen.prompt, gen.negative_prompt, self.num_frames, closed)
        context = torch.cat([cond, uncond]) if gen.cfg_scale > 1 else cond
        generator = torch.Generator().manual_seed(self.seed)
        shape = (self.num_frames, 4, gen.height // 8, gen.width // 8)
        noise = torch.randn(shape, generator=generator).to(self.sd.device, self.sd.dtype)
        init = self._init_latents(noise)
        iters = ad.freeinit_iters if ad.freeinit_enable else 1
        self._total = gen.steps * iters
        with (
            torch.no_grad(),
            inject(self.sd.unet, self.mm, frames=min(ad.batch_size, self.num_frames), loras=self.loras) as patch,
        ):

            def sample(start_noise: torch.Tensor) -> torch.Tensor:
                return self._sample(patch, start_noise, init, context)

            if ad.freeinit_enable:
                lpf = filter_for(ad, *shape[0:1], *shape[2:], device=self.sd.device)
                latents = freeinit_loop(
                    sample, noise, iters, lpf=lpf, alphas_cumprod=patch.alphas_cumprod, stop=self.stop
                )
            else:
                latents = sample(noise)
        frames = self._decode(latents)
        if self.deflicker is not None:

            def progress(done: int, total: int | None, text: str = "") -> None:
                self.progress(done, total, "deflicker (patch matches)")

            frames = run_deflicker(frames, self.deflicker, progress=progress, stop=self.stop)
        prompts = travel.per_frame_prompts() if travel else [gen.prompt] * self.num_frames
        return AnimateResult(frames, self.infotext(), self.seed, prompts)

    def _init_latents(self, noise: torch.Tensor) -> torch.Tensor | None:
        if self.init_image is None:
            return None
        first = self._encode_image(self.init_image)
        last = self._encode_image(self.last_image) if self.last_image is not None else None
        return blend_for(self.ad, first, noise, last)

    def _encode_image(self, image: Image.Image) -> torch.Tensor:
        gen = self.gen
        img = image.convert("RGB").resize((gen.width, gen.height), Image.LANCZOS)
        x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 127.5 - 1.0).permute(2, 0, 1)[None]
        with torch.no_grad():
            dist = self.sd.vae.encode(x.to(self.sd.device, self.sd.dtype)).latent_dist
        return dist.mean * self.sd.latent_scale  # (1, 4, H/8, W/8): the mean, so a seed fixes the result

    def _sample(self, patch, noise: torch.Tensor, init: torch.Tensor | None, context: torch.Tensor) -> torch.Tensor:
        gen, ad = self.gen, self.ad
        scheduler = make_scheduler(gen.scheduler, self.sd.scheduler_config, patch.alphas_cumprod)
        scheduler.set_timesteps(gen.steps, device=self.sd.device)
        timesteps = scheduler.timesteps
        if init is None:
            latents = noise * scheduler.init_noise_sigma
        else:
            keep = min(gen.steps, max(1, round(gen.steps * gen.denoising_strength)))
            timesteps = timesteps[gen.steps - keep :]
            latents = scheduler.add_noise(init, noise, timesteps[:1])
        step_generator = torch.Generator().manual_seed(self.seed + 1)
        halves = context.shape[0] // self.num_frames
        for i, t in enumerate(timesteps):
            check_stop(self.stop, f"at step {i + 1}")
            x = scheduler.scale_model_input(latents, t)
            rows = x.repeat(halves, 1, 1, 1)
            eps = denoise_windowed(
                self._unet_fn(t),
                rows,
                num_frames=self.num_frames,
                context_size=ad.batch_size,
                stride=ad.stride,
                overlap=ad.overlap,
                closed_loop=ad.closed_loop,
                step=i,
                fuse=ad.fuse,
                set_frames=patch.set_frames,
                per_row={"context": context},
                stop=self.stop,
            )
            if halves == 2:
                eps_c, eps_u = eps.chunk(2)
                eps = eps_u + gen.cfg_scale * (eps_c - eps_u)
            latents = scheduler.step(eps, t, latents, generator=step_generator).prev_sample
            self._done += 1
            self.progress(self._done, self._total, f"step {i + 1}/{len(timesteps)}")
        return latents

    def _unet_fn(self, t):
        unet = self.sd.unet

        def call(x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
            return unet(x, t, encoder_hidden_states=context).sample

        return call

    def _decode(self, latents: torch.Tensor) -> list[np.ndarray]:
        frames = []
        with torch.no_grad():
            for start in range(0, latents.shape[0], DECODE_CHUNK):
                check_stop(self.stop, "while decoding")
                chunk = latents[start : start + DECODE_CHUNK] / self.sd.latent_scale
                images = self.sd.vae.decode(chunk).sample.float()
                images = ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1)
                frames += [np.ascontiguousarray(img.cpu().numpy()) for img in images]
        return frames

    def infotext(self) -> str:
        """A1111-style parameters text: prompt, negative prompt, then ``key: value`` pairs."""
        gen, ad = self.gen, self.ad
        pairs = {
            "Steps": gen.steps,
            "Sampler": gen.scheduler.value,
            "CFG scale": gen.cfg_scale,
            "Seed": self.seed,
            "Size": f"{gen.width}x{gen.height}",
            "Model": self.sd.name,
        }
        if self.init_image is not None:
            pairs["Denoising strength"] = gen.denoising_strength
        animatediff = {
            "model": self.motion_name,
            "video_length": self.num_frames,
            "fps": ad.fps,
            "loop_number": ad.loop_number,
            "closed_loop": ad.closed_loop.value,
            "batch_size": ad.batch_size,
            "stride": ad.stride,
            "overlap": ad.overlap,
            "fuse": ad.fuse.value,
        }
        if ad.freeinit_enable:
            animatediff.update(
                freeinit_filter=ad.freeinit_filter.value,
                freeinit_ds=ad.freeinit_ds,
                freeinit_dt=ad.freeinit_dt,
                freeinit_iters=ad.freeinit_iters,
            )
        if ad.deflicker is not DeflickerMode.NONE:
            animatediff.update(deflicker=ad.deflicker.value, deflicker_window=ad.deflicker_window)
        if self.init_image is not None:
            animatediff.update(latent_power=ad.latent_power, latent_scale=ad.latent_scale)
            if self.last_image is not None:
                animatediff.update(latent_power_last=ad.latent_power_last, latent_scale_last=ad.latent_scale_last)
        pairs["AnimateDiff"] = '"' + ", ".join(f"{k}: {v}" for k, v in animatediff.items()) + '"'
        lines = [gen.prompt]
        if gen.negative_prompt:
            lines.append(f"Negative prompt: {gen.negative_prompt}")
        lines.append(", ".join(f"{k}: {v}" for k, v in pairs.items()))
        return "\n".join(lines)


def save_animation(
    result: AnimateResult,
    out_dir: str | Path,
    formats: list[str],
    *,
    fps: float,
    loop: int = 0,
    prefix: str = "animatediff",
) -> list[Path]:
    """Write ``result`` once per format (preset names: ``gif``, ``mp4``, ``mp4-h265``, ``webm``,
    ``webm-av1``, ``webp``, ``apng``, ``png``) plus the infotext as ``.txt``; returns the paths."""
    from ..video import write_video
    from ..video.presets import PRESETS
    from ..video.writer import write_text

    out_dir = Path(out_dir)
    stem = f"{prefix}-{result.seed}"
    written = []
    for name in formats:
        key = name if name in PRESETS else {"mp4": "mp4-h264", "webm": "webm-vp9"}.get(name, name)
        if key not in PRESETS:
            raise ConfigError("format", name, sorted({*PRESETS, "mp4", "webm"}))
        preset = PRESETS[key]
        target = out_dir / (f"{stem}-frames" if preset.format.value == "png" else f"{stem}{preset.suffix}")
        options = {"format": preset.format.value, "codec": preset.codec.value if preset.codec else None}
        texts = [result.infotext] * len(result.frames) if preset.format.value == "png" else None
        written.append(
            write_video(
                result.frames, target, fps=fps, loop=loop, comment=result.infotext, frame_texts=texts, **options
            )
        )
    written.append(write_text(out_dir / f"{stem}.txt", result.infotext + "\n"))
    return written
