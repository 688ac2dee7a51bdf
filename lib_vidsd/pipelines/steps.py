"""Steps animation on a diffusers Stable Diffusion model: what ``python -m lib_vidsd steps`` runs.

A plain txt2img loop (classifier-free guidance, a diffusers scheduler) that hands the latent of
every step to a :class:`~lib_vidsd.steps.StepRecorder`; :func:`~lib_vidsd.steps.render_steps`
then writes the frames and the movie.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import GenerationParams, StepsAnimationParams, StepsDecode
from ..errors import ConfigError
from ..progress import ProgressSink, StopToken, check_stop, null_progress
from ..steps import StepRecorder, StepsResult, latents_to_rgb, render_steps
from .animate import SDModel, encode_prompts, make_scheduler


@dataclass
class StepsRun:
    image: np.ndarray  # the finished image, uint8 (H, W, 3)
    recorder: StepRecorder
    seed: int
    infotext: str


def vae_decoder(sd: SDModel):
    """Latents as the sampler holds them → ``[B, 3, H, W]`` floats 0..1 through the model's VAE."""

    def decode(latents: torch.Tensor) -> torch.Tensor:
        x = latents.to(sd.device, sd.dtype) / sd.latent_scale
        return ((sd.vae.decode(x).sample.float() + 1) / 2).clamp(0, 1)

    return decode


def decoder_for(sd: SDModel, mode: StepsDecode):
    if mode is StepsDecode.FULL:
        return vae_decoder(sd)
    if mode is StepsDecode.FAST:
        return lambda latents: latents_to_rgb(latents, "sd15")
    raise ConfigError("decode", mode.value, "full or fast (approx_nn and taesd exist only in the WebUI)")


def generate_with_steps(
    sd: SDModel,
    gen: GenerationParams,
    recorder: StepRecorder | None,
    *,
    progress: ProgressSink = null_progress,
    stop: StopToken | None = None,
) -> StepsRun:
    """txt2img of one image, every scheduler step recorded (``denoised`` where the scheduler
    reports its estimate of the clean latent, else the current latent; ``recorder=None`` records
    nothing). An interrupt (:class:`~lib_vidsd.errors.Interrupted`) propagates; what was
    recorded stays in ``recorder``."""
    seed = gen.seed if gen.seed != -1 else random.randrange(2**32)
    cond = encode_prompts(sd, [gen.prompt, gen.negative_prompt])
    scheduler = make_scheduler(gen.scheduler, sd.scheduler_config, None)
    scheduler.set_timesteps(gen.steps, device=sd.device)
    generator = torch.Generator().manual_seed(seed)
    shape = (1, 4, gen.height // 8, gen.width // 8)
    latents = torch.randn(shape, generator=generator).to(sd.device, sd.dtype) * scheduler.init_noise_sigma
    step_generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for i, t in enumerate(scheduler.timesteps):
            check_stop(stop, f"at step {i + 1}")
            x = scheduler.scale_model_input(latents, t)
            if gen.cfg_scale > 1:
                eps_c, eps_u = sd.unet(x.repeat(2, 1, 1, 1), t, encoder_hidden_states=cond).sample.chunk(2)
                eps = eps_u + gen.cfg_scale * (eps_c - eps_u)
            else:
                eps = sd.unet(x, t, encoder_hidden_states=cond[:1]).sample
            out = scheduler.step(eps, t, latents, generator=step_generator)
            latents = out.prev_sample
            if recorder is not None:
                recorder.record(latents, getattr(out, "pred_original_sample", None))
            progress(i + 1, len(scheduler.timesteps), f"step {i + 1}/{len(scheduler.timesteps)}")
        image = vae_decoder(sd)(latents)[0]
    array = (image * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    info = (
        f"{gen.prompt}\nNegative prompt: {gen.negative_prompt}\n"
        f"Steps: {gen.steps}, Sampler: {gen.scheduler.value}, CFG scale: {gen.cfg_scale}, Seed: {seed}, "
        f"Size: {gen.width}x{gen.height}, Model: {sd.name}"
    )
    return StepsRun(array, recorder, seed, info)


def run_steps_animation(
    sd: SDModel,
    gen: GenerationParams,
    params: StepsAnimationParams,
    output: str | Path,
    *,
    interp_model: Any = None,
    progress: ProgressSink = null_progress,
    stop: StopToken | None = None,
) -> tuple[StepsRun, StepsResult | None]:
    """Generate, then write the steps movie below ``output``. An interrupted generation still
    gives a movie of the steps so far when ``params.run_incomplete`` is set, else none."""
    from ..errors import Interrupted
    from ..video.writer import write_png

    if gen.seed == -1:
        gen = gen.copy(update={"seed": random.randrange(2**32)})
    recorder = StepRecorder(capture=params.capture.value)
    try:
        run = generate_with_steps(sd, gen, recorder, progress=progress, stop=stop)
    except Interrupted:
        if not params.run_incomplete or not recorder.callbacks:
            raise
        run = None
    stem = f"{gen.seed}"
    info = run.infotext if run is not None else f"{gen.prompt}\n(interrupted after {recorder.callbacks} steps)"
    if run is not None:
        write_png(Path(output) / f"{stem}.png", run.image, info)
    result = render_steps(
        recorder.sequence(0),
        decoder_for(sd, params.decode),
        params,
        root=output,
        stem=stem,
        size=(gen.width, gen.height),
        comment=info,
        prompt=gen.prompt,
        interp_model=interp_model,
        progress=progress,
    )
    return run, result
