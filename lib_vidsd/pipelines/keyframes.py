"""Keyframe animation on a diffusers Stable Diffusion model: what ``python -m lib_vidsd keyframes`` runs.

:class:`DiffusersKeyframeRenderer` answers a :class:`~lib_vidsd.keyframe.job.KeyframeRequest`: per
frame, the text embeddings of the two prompt keys are slerped with the frame's weight, and so are
the two keys' starting noises (``torch.randn`` on a CPU generator seeded with the key's seed, as
Giffusion draws them); txt2img frames start from that noise, img2img frames (2D loopback, video
input, an init image) from the encoded init image noised to the frame's strength with it. With a
coherence object the latent is pulled toward its running reference after every scheduler step
(Giffusion's callback). Frames of one request run as one batch through the UNet.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from ..config import GenerationParams, KeyframeMode, KeyframeParams, MultiFrameParams
from ..keyframe.job import KeyframeJob, KeyframeRequest, KeyframeResult
from ..keyframe.latents import slerp
from ..keyframe.plan import FramePlan, animation_fps, audio_inputs, plan_animation
from ..progress import ProgressSink, StopToken, check_stop
from .animate import SDModel, encode_prompts, make_scheduler

log = logging.getLogger("vidsd.pipelines.keyframes")


def key_noise(seed: int, shape: Sequence[int]) -> torch.Tensor:
    """A keyframe's starting noise: ``randn(shape)`` from a CPU generator seeded with ``seed``."""
    return torch.randn(tuple(shape), generator=torch.Generator().manual_seed(int(seed)))


def frame_noise(frame: FramePlan, shape: Sequence[int]) -> torch.Tensor:
    """The frame's noise: the slerp of its two keys' noises (one key's noise when it blends nothing)."""
    a = key_noise(frame.seed_a, shape)
    if frame.seed_b == frame.seed_a or frame.weight == 0.0:
        return a
    return slerp(a, key_noise(frame.seed_b, shape), frame.weight)


class DiffusersKeyframeRenderer:
    """The renderer of a :class:`~lib_vidsd.keyframe.job.KeyframeJob` on a diffusers SD model.

    ``gen`` gives steps, sampler, the CFG scale (unless the request has one) and the negative prompt.
    ``stop`` is checked at every step.
    """

    def __init__(self, sd: SDModel, gen: GenerationParams, *, stop: StopToken | None = None):
        self.sd, self.gen, self.stop = sd, gen, stop
        self._encoded: dict[tuple[str, ...], torch.Tensor] = {}  # the last batches' prompts (a segment repeats them)

    def __call__(self, request: KeyframeRequest) -> list[Image.Image]:
        sd = self.sd
        shape = (1, 4, request.height // 8, request.width // 8)
        with torch.no_grad():
            cond, uncond = self._conditioning(request.frames)
            noise = torch.cat([frame_noise(f, shape) for f in request.frames]).to(sd.device, sd.dtype)
            init = None if request.init_images is None else self._encode(request.init_images)
            latents = self._sample(request, noise, init, cond, uncond)
            return self._decode(latents)

    def _conditioning(self, frames: Sequence[FramePlan]) -> tuple[torch.Tensor, torch.Tensor]:
        """Per frame the slerp of its two prompts' embeddings; all encoded together, so they share one length."""
        prompts = sorted({p for f in frames for p in (f.prompt_a, f.prompt_b)})
        key = (*prompts, self.gen.negative_prompt)
        if key not in self._encoded:
            if len(self._encoded) >= 8:
                self._encoded.pop(next(iter(self._encoded)))
            self._encoded[key] = encode_prompts(self.sd, list(key))
        encoded = self._encoded[key]
        table = dict(zip(prompts, encoded[:-1], strict=True))
        rows = []
        for f in frames:
            a = table[f.prompt_a]
            rows.append(a if f.prompt_b == f.prompt_a or f.weight == 0.0 else slerp(a, table[f.prompt_b], f.weight))
        cond = torch.stack(rows)
        return cond, encoded[-1:].expand_as(cond)

    def _encode(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        sd = self.sd
        x = torch.from_numpy(np.stack(images).astype(np.float32) / 127.5 - 1.0).permute(0, 3, 1, 2)
        dist = sd.vae.encode(x.to(sd.device, sd.dtype)).latent_dist
        return dist.mean * sd.latent_scale

    def _decode(self, latents: torch.Tensor) -> list[Image.Image]:
        images = self.sd.vae.decode(latents / self.sd.latent_scale).sample.float()
        pixels = ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
        return [Image.fromarray(np.ascontiguousarray(p)) for p in pixels]

    def _sample(
        self,
        request: KeyframeRequest,
        noise: torch.Tensor,
        init: torch.Tensor | None,
        cond: torch.Tensor,
        uncond: torch.Tensor,
    ) -> torch.Tensor:
        gen, sd = self.gen, self.sd
        scheduler = make_scheduler(gen.scheduler, sd.scheduler_config, None)
        scheduler.set_timesteps(gen.steps, device=sd.device)
        timesteps = scheduler.timesteps
        if init is None:
            latents = noise * scheduler.init_noise_sigma
        else:
            keep = min(gen.steps, max(1, round(gen.steps * request.strength)))
            timesteps = timesteps[gen.steps - keep :]
            latents = scheduler.add_noise(init, noise, timesteps[:1])
        scale = request.cfg_scale if request.cfg_scale is not None else gen.cfg_scale
        step_generator = torch.Generator().manual_seed(int(request.frames[0].seed_a) % 2**63 + 1)
        first = request.frames[0].index + 1
        for i, t in enumerate(timesteps):
            check_stop(self.stop, f"at step {i + 1} of frame {first}")
            x = scheduler.scale_model_input(latents, t)
            if scale <= 1:
                eps = sd.unet(x, t, encoder_hidden_states=cond).sample
            else:
                both = sd.unet(torch.cat([x, x]), t, encoder_hidden_states=torch.cat([cond, uncond])).sample
                eps_c, eps_u = both.chunk(2)
                eps = eps_u + scale * (eps_c - eps_u)
            latents = scheduler.step(eps, t, latents, generator=step_generator).prev_sample
            if request.coherence is not None:
                latents = request.coherence(i, latents)
        return latents


def run_keyframes(
    sd: SDModel,
    gen: GenerationParams,
    params: KeyframeParams,
    out_dir: str | Path,
    *,
    init_image: str | Path | None = None,
    video_path: str | Path | None = None,
    audio_path: str | Path | None = None,
    batch_size: int = 1,
    interp_model: Any = None,
    progress: ProgressSink | None = None,
    stop: StopToken | None = None,
) -> KeyframeResult:
    """A whole animation into ``out_dir`` from local files (the CLI's path: no roots)."""
    from ..multiframe.sources import open_video
    from ..video import fit_frame

    seed = gen.seed if gen.seed != -1 else random.randrange(2**32)
    size = (gen.width, gen.height)
    init = None
    if init_image is not None:
        with Image.open(init_image) as img:
            init = fit_frame(np.asarray(img.convert("RGB")), size, "crop")
    source = None
    if params.mode is KeyframeMode.VIDEO:
        if video_path is None:
            from ..errors import ConfigError

            raise ConfigError("video", None, "an input video for mode 'video' (--video FILE)")
        picks = MultiFrameParams(every=params.video_every, max_frames=params.max_frames or None)
        source = open_video(video_path, picks, size, field="video")
    try:
        fps = animation_fps(params, source.fps * params.video_every if source is not None else None)
        plan = plan_animation(
            params,
            prompt=gen.prompt,
            seed=seed,
            cfg_scale=gen.cfg_scale,
            fps=fps,
            video_frames=source.count if source is not None else None,
            img2img=init is not None,
            **audio_inputs(params, None if audio_path is None else str(audio_path), fps),
        )
        renderer = DiffusersKeyframeRenderer(sd, gen, stop=stop)
        job = KeyframeJob(
            params,
            plan,
            renderer,
            out_dir=out_dir,
            size=size,
            init_image=init,
            video=None if source is None else (frame.image for frame in source),
            audio_path=audio_path,
            batch_size=batch_size,
            seed=seed,
            interp_model=interp_model,
            progress=progress,
            stop=stop,
        )
        return job.run()
    finally:
        if source is not None:
            source.close()
