"""Multi-frame rendering on a diffusers Stable Diffusion model: what ``python -m lib_vidsd multiframe`` runs.

:class:`DiffusersRenderer` answers a :class:`~lib_vidsd.multiframe.RenderRequest` with masked
img2img on any SD 1.x model (the tiny built-in one by default): the init image is encoded, noised to
the request's strength and denoised by a diffusers scheduler with classifier-free guidance; after
every step the unmasked region is put back from the init latent noised to the next step's level
(latent-space inpainting, as A1111 does for models without inpainting channels), and after decoding
the unmasked pixels are pasted back from the init image (A1111's overlay). With ``cross_frame`` the
UNet's self-attention is patched by :class:`lib_vidsd.attention.CrossFrameAttention` for the
whole job, and every frame is bracketed by ``begin_frame``/``end_frame``. Deflicker
(``params.deflicker``) is the job's: after the last frame, guided by the source frames.

Latents are ``(1, 4, H/8, W/8)`` for an image ``W × H`` (a strip is 2 or 3 frames wide).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from ..config import GenerationParams, MultiFrameParams
from ..multiframe import (
    MultiFrameJob,
    MultiFrameResult,
    RenderRequest,
    multiframe_infotext,
    open_masks,
    open_path,
)
from ..progress import ProgressSink, StopToken, check_stop
from .animate import SDModel, encode_prompts, make_scheduler

log = logging.getLogger("vidsd.pipelines.multiframe")


def latent_mask(mask: Image.Image, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """A pixel mask (``L``, white = redraw, sides multiples of 8) → ``(1, 1, H/8, W/8)`` of 0/1: each
    latent cell is redrawn when at least half of its 8×8 pixels are (A1111 rounds the same way)."""
    arr = np.asarray(mask.convert("L"), dtype=np.float32) / 255.0
    h, w = arr.shape
    cells = arr.reshape(h // 8, 8, w // 8, 8).mean(axis=(1, 3))
    return torch.from_numpy(np.round(cells))[None, None].to(device, dtype)


def _image_tensor(image: Image.Image, sd: SDModel) -> torch.Tensor:
    """RGB image → ``(1, 3, H, W)`` in [-1, 1] on the model's device."""
    x = torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.float32) / 127.5 - 1.0).permute(2, 0, 1)[None]
    return x.to(sd.device, sd.dtype)


class DiffusersRenderer:
    """The renderer of a :class:`~lib_vidsd.multiframe.MultiFrameJob` on a diffusers SD model.

    ``gen`` gives steps, sampler, CFG scale and the negative prompt (prompt, seed, size and strength
    come with each request). ``cross_frame``: patch the UNet with cross-frame attention (first and
    previous frame) for requests that ask for it; the patch is removed by :meth:`close` (or leaving
    the ``with`` block). ``stop`` is checked at every step.
    """

    def __init__(self, sd: SDModel, gen: GenerationParams, *, cross_frame: bool = False, stop: StopToken | None = None):
        self.sd, self.gen, self.stop = sd, gen, stop
        self._cond: dict[str, torch.Tensor] = {}
        self._attention = self._cross_frame_attention() if cross_frame else None

    def _cross_frame_attention(self):
        from ..attention import CrossFrameAttention

        return CrossFrameAttention(self.sd.unet, references=("first", "previous"), storage_dtype=self.sd.dtype)

    def close(self) -> None:
        if self._attention is not None:
            self._attention.restore()
            self._attention = None

    def __enter__(self) -> DiffusersRenderer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __call__(self, request: RenderRequest) -> Image.Image:
        if request.denoising_strength <= 0:
            return request.image.copy()
        attention = self._attention if request.cross_frame else None
        if attention is not None:
            if request.first:
                attention.reset()  # a new clip (or a resumed one) starts from its first frame
            attention.begin_frame(request.index)
        with torch.no_grad():
            init = self._encode(request.image)
            latents = self._sample(request, init)
            decoded = self._decode(latents)
        if attention is not None:
            attention.end_frame()
        if request.mask is None:
            return decoded
        return Image.composite(decoded, request.image.convert("RGB"), request.mask.convert("L"))

    def _conditioning(self, prompt: str) -> torch.Tensor:
        if prompt not in self._cond:
            self._cond[prompt] = encode_prompts(self.sd, [prompt, self.gen.negative_prompt])
        return self._cond[prompt]

    def _encode(self, image: Image.Image) -> torch.Tensor:
        dist = self.sd.vae.encode(_image_tensor(image, self.sd)).latent_dist
        return dist.mean * self.sd.latent_scale  # the mean: the seed alone fixes the result

    def _decode(self, latents: torch.Tensor) -> Image.Image:
        images = self.sd.vae.decode(latents / self.sd.latent_scale).sample.float()
        pixels = ((images[0].clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0)
        return Image.fromarray(np.ascontiguousarray(pixels.cpu().numpy()))

    def _sample(self, request: RenderRequest, init: torch.Tensor) -> torch.Tensor:
        gen, sd = self.gen, self.sd
        scheduler = make_scheduler(gen.scheduler, sd.scheduler_config, None)
        scheduler.set_timesteps(gen.steps, device=sd.device)
        keep = min(gen.steps, max(1, round(gen.steps * request.denoising_strength)))
        timesteps = scheduler.timesteps[gen.steps - keep :]
        noise = torch.randn(init.shape, generator=torch.Generator().manual_seed(request.seed)).to(sd.device, sd.dtype)
        mask = None if request.mask is None else latent_mask(request.mask, sd.device, sd.dtype)
        latents = scheduler.add_noise(init, noise, timesteps[:1])
        cond = self._conditioning(request.prompt)
        step_generator = torch.Generator().manual_seed(request.seed + 1)
        for i, t in enumerate(timesteps):
            check_stop(self.stop, f"at step {i + 1} of frame {request.index + 1}")
            eps = self._noise_prediction(scheduler.scale_model_input(latents, t), t, cond)
            latents = scheduler.step(eps, t, latents, generator=step_generator).prev_sample
            if mask is not None:
                known = scheduler.add_noise(init, noise, timesteps[i + 1 : i + 2]) if i + 1 < len(timesteps) else init
                latents = mask * latents + (1 - mask) * known
        return latents

    def _noise_prediction(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        unet, scale = self.sd.unet, self.gen.cfg_scale
        if scale <= 1:
            return unet(x, t, encoder_hidden_states=cond[:1]).sample
        eps_c, eps_u = unet(x.repeat(2, 1, 1, 1), t, encoder_hidden_states=cond).sample.chunk(2)
        return eps_u + scale * (eps_c - eps_u)


def infotext_for(gen: GenerationParams, params: MultiFrameParams, model_name: str) -> Callable[[RenderRequest], str]:
    """A1111-style parameters text of each frame: its prompt, the negative prompt, then settings."""

    def text(request: RenderRequest) -> str:
        pairs = {
            "Steps": gen.steps,
            "Sampler": gen.scheduler.value,
            "CFG scale": gen.cfg_scale,
            "Seed": request.seed,
            "Size": f"{request.frame_width}x{request.height}",
            "Model": model_name,
            "Denoising strength": request.denoising_strength,
            "Multi-frame": f'"{multiframe_infotext(params)}, frame: {request.index}"',
        }
        lines = [request.prompt]
        if gen.negative_prompt:
            lines.append(f"Negative prompt: {gen.negative_prompt}")
        lines.append(", ".join(f"{k}: {v}" for k, v in pairs.items()))
        return "\n".join(lines)

    return text


def run_multiframe(
    sd: SDModel,
    gen: GenerationParams,
    params: MultiFrameParams,
    source_path: str | Path,
    out_dir: str | Path,
    *,
    mask_dir: str | Path | None = None,
    interp_model: Any = None,
    progress: ProgressSink | None = None,
    stop: StopToken | None = None,
) -> MultiFrameResult:
    """A whole job from a local video file or folder into ``out_dir`` (the CLI's path: no roots)."""
    if gen.seed == -1:
        gen = gen.copy(update={"seed": random.randrange(2**32)})
    size = (gen.width, gen.height)
    masks = open_masks(params, size=size, folder=mask_dir) if mask_dir is not None else None
    with (
        open_path(source_path, params, size) as source,
        DiffusersRenderer(sd, gen, cross_frame=params.mode.cross_frame, stop=stop) as renderer,
    ):
        job = MultiFrameJob(
            params,
            renderer,
            source=source,
            out_dir=out_dir,
            prompt=gen.prompt,
            seed=gen.seed,
            denoise=gen.denoising_strength,
            masks=masks,
            infotext=infotext_for(gen, params, sd.name),
            interp_model=interp_model,
            progress=progress,
            stop=stop,
        )
        return job.run()
