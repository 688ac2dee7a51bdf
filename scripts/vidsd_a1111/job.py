"""One AnimateDiff job on an A1111 processing object.

Lifecycle (A1111 v1.10 hook order):

- ``before_process``: parse and validate the arguments; the batch becomes the frame sequence
  (``p.batch_size = frames``); prompt travel turns the prompt into one prompt per frame.
- ``process``: load the motion module, refuse a family that does not fit the checkpoint, inject it,
  swap in its noise schedule, and give the UNet an instance-level ``forward`` that runs it window
  by window. All of it is one undo journal on the UNet; ``p.close`` (called by A1111 in a
  ``finally`` through ``contextlib.closing``) restores it, as do ``postprocess``, the next job's
  start, a model load and script unload.
- every sampling step (``on_cfg_denoiser``): count the step, blend the per-frame conditioning.
- ``postprocess``: deflicker the frames when asked (``output.deflicker_frames``: the animation's own
  frames as guide, before closed-loop playback and interpolation), write the animation(s), hand the
  gallery / API its files (the API's ``Frame`` images are the deflickered frames).

A hook's exception is swallowed by A1111, so a failure found in a hook is kept and raised from
the UNet's first call: the job fails with our message instead of silently rendering stills.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import torch

from lib_vidsd.config import AnimateDiffParams
from lib_vidsd.consistency.outputs import check_frame_size, option_settings
from lib_vidsd.errors import IncompatibleModelError, VidsdError
from lib_vidsd.motion import MotionPatch, inject, load_motion_module
from lib_vidsd.motion.latents import blend_for
from lib_vidsd.motion.windowed import denoise_windowed
from lib_vidsd.patching import restore_all
from lib_vidsd.schedule.prompts import PromptTravel, parse_prompt_travel, travel_is_closed

from . import binding, models

log = logging.getLogger("vidsd.a1111.animatediff")


def check_interp(params: AnimateDiffParams) -> None:
    """The chosen interpolation method must be available, with its weights file for FILM/RIFE
    (checked before the job, not after it)."""
    from lib_vidsd.errors import ConfigError
    from lib_vidsd.interpolate import METHODS

    if params.interp.value == "Off":
        return
    if params.interp.method not in METHODS:
        raise ConfigError("interp", params.interp.value, ["Off", *METHODS])
    models.load_vfi(params.interp.method, params.interp_model)


def unet_of(p) -> torch.nn.Module:
    return p.sd_model.model.diffusion_model


@dataclass
class _ModuleCache:
    """The last motion module loaded (path, mtime) → module: reloading 1.7 GB per job would hurt."""

    key: tuple | None = None
    module: Any = None

    def get(self, path):
        key = (str(path), path.stat().st_mtime_ns)
        if key != self.key:
            self.module, self.key = None, None
            self.module = load_motion_module(path)
            self.key = key
        return self.module


MODULE_CACHE = _ModuleCache()


@dataclass
class AnimateDiffJob:
    params: AnimateDiffParams
    frames: int
    is_img2img: bool
    travel: PromptTravel | None = None
    patch: MotionPatch | None = None
    error: Exception | None = None
    step: int = -1
    outputs: list = field(default_factory=list)
    _freeinit_base: Any = None
    _freeinit_noise: Any = None

    # --- before_process ----------------------------------------------------------------------

    @classmethod
    def start(cls, p, params: AnimateDiffParams, is_img2img: bool) -> AnimateDiffJob:
        restore_all(unet_of(p))  # whatever a crashed job left behind
        check_interp(params)
        check_frame_size(option_settings(params.deflicker, params.deflicker_window), p.width, p.height)
        frames = params.video_length or params.batch_size
        job = cls(params, frames, is_img2img)
        p.batch_size = frames
        prompt = p.prompt if isinstance(p.prompt, str) else None
        if prompt is not None:
            job.travel = parse_prompt_travel(prompt, frames)
            if job.travel is not None:
                p.prompt = job.travel.batch_prompts(p.n_iter)
        p.extra_generation_params[binding.INFOTEXT_KEY] = binding.infotext(params, is_img2img=is_img2img)
        return job

    # --- process --------------------------------------------------------------------------------

    def attach(self, p, on_close=None) -> None:
        """Inject the motion module and take over the UNet's forward; failures are kept for later.
        ``on_close`` runs when A1111 closes ``p`` (its ``finally``), e.g. to forget the job."""
        unet = unet_of(p)
        try:
            path = models.resolve(self.params.model)
            module = MODULE_CACHE.get(path)
            model_is_sdxl = bool(getattr(p.sd_model, "is_sdxl", False))
            if module.is_sdxl != model_is_sdxl:
                kind = "an SDXL" if model_is_sdxl else "an SD1.x"
                raise IncompatibleModelError(
                    f"model: {self.params.model} is a {module.family} motion module; the loaded checkpoint is {kind} model"
                )
            loras = []
            if self.params.motion_lora:
                loras.append(
                    (models.resolve(self.params.motion_lora, field="motion_lora"), self.params.motion_lora_strength)
                )
            self.patch = inject(unet, module, frames=min(self.params.batch_size, self.frames), loras=loras)
            handle = self.patch.handle
            schedule = self.patch.alphas_cumprod
            if schedule is not None and hasattr(p.sd_model, "alphas_cumprod"):
                current = p.sd_model.alphas_cumprod
                handle.set_attr(p.sd_model, "alphas_cumprod", schedule.to(current.device, current.dtype))
            handle.override_forward(unet, self._windowed_forward(unet))
            if self.params.freeinit_enable:
                self._wire_freeinit(p)
            original_close = p.close
            handle.set_attr(p, "close", lambda: (self.finish(), on_close and on_close(), original_close()))
        except (VidsdError, OSError) as e:
            self.error = e
            self._fail_on_first_call(p, unet)

    def _fail_on_first_call(self, p, unet) -> None:
        from lib_vidsd.patching import open_patch

        handle = open_patch(unet, "animatediff-error")
        error = self.error

        def raise_error(module, *args, **kwargs):
            handle.restore()
            raise error

        handle.override_forward(unet, raise_error)
        original_close = p.close
        handle.set_attr(p, "close", lambda: (handle.restore(), original_close()))

    def _windowed_forward(self, unet):
        frames, params, patch = self.frames, self.params, self.patch
        original = unet.__dict__.get("forward")  # another instance-level forward, if any, stays in the chain

        def call(x, timesteps=None, context=None, **kwargs):
            if original is not None:
                return original(x, timesteps, context, **kwargs)
            return type(unet).forward(unet, x, timesteps, context, **kwargs)

        def forward(module, x, timesteps=None, context=None, **kwargs):
            rows = x.shape[0]
            if rows % frames:
                raise VidsdError(f"AnimateDiff: the UNet got {rows} rows, not a multiple of {frames} frames")
            per_row = {"timesteps": timesteps, "context": context}
            extra = {k: v for k, v in kwargs.items() if torch.is_tensor(v) and v.shape[:1] == (rows,)}
            rest = {k: v for k, v in kwargs.items() if k not in extra}
            per_row.update(extra)
            per_row = {k: v for k, v in per_row.items() if v is not None}

            def model_fn(xw, **row_values):
                return call(
                    xw, row_values.pop("timesteps", None), row_values.pop("context", None), **row_values, **rest
                )

            return denoise_windowed(
                model_fn,
                x,
                num_frames=frames,
                context_size=params.batch_size,
                stride=params.stride,
                overlap=params.overlap,
                closed_loop=params.closed_loop,
                step=max(self.step, 0),
                fuse=params.fuse,
                set_frames=patch.set_frames,
                per_row=per_row,
            )  # no stop token: A1111's sampler stops between steps and returns what it has

        return forward

    # --- FreeInit -----------------------------------------------------------------------------

    def _wire_freeinit(self, p) -> None:
        """Sample ``freeinit_iters`` times: each later run starts from the previous result taken back
        to the last timestep, low frequencies kept, high ones from the first run's noise
        (:func:`lib_vidsd.motion.freeinit.renoise`). Hires fix runs only in the last iteration. The
        sampler's first-pass noise is swapped in :meth:`before_sampling` (A1111's
        ``process_before_every_sampling``), so A1111's own sampling code runs unchanged."""
        from lib_vidsd.motion.freeinit import filter_for, renoise

        original = p.sample
        iters = self.params.freeinit_iters

        def sample(*args, **kwargs):
            hires = getattr(p, "enable_hr", None)
            self._freeinit_base = self._freeinit_noise = None
            samples = None
            try:
                for i in range(iters):
                    if hires is not None:
                        p.enable_hr = hires if i == iters - 1 else False
                    if i > 0:
                        lpf = filter_for(
                            self.params, self.frames, samples.shape[-2], samples.shape[-1], device=samples.device
                        )
                        self._freeinit_noise = renoise(samples, self._freeinit_base, lpf, p.sd_model.alphas_cumprod)
                    samples = original(*args, **kwargs)
            finally:
                if hires is not None:
                    p.enable_hr = hires
                self._freeinit_noise = None
            return samples

        self.patch.handle.set_attr(p, "sample", sample)

    def before_sampling(self, p, noise) -> None:
        if not self.params.freeinit_enable or getattr(p, "is_hr_pass", False) or noise is None:
            return
        if self._freeinit_noise is None:
            self._freeinit_base = noise.clone()  # the first iteration's noise, as A1111 drew it
        else:
            noise.copy_(self._freeinit_noise)

    # --- per step -----------------------------------------------------------------------------

    def on_cfg_denoiser(self, params) -> None:
        self.step += 1
        if self.travel is None or self.error is not None:
            return
        closed = travel_is_closed(self.frames, self.params.batch_size, self.params.closed_loop)
        cond = params.text_cond
        rows = (cond["crossattn"] if isinstance(cond, dict) else cond).shape[0]
        if rows == self.frames:  # one conditioning row per frame (AND-prompts give more: left alone)
            params.text_cond = self.travel.blend(cond, closed)

    # --- img2img ------------------------------------------------------------------------------

    def blend_init_latent(self, p) -> None:
        """img2img: fade the first (and optional last) frame's latent into noise along the frames."""
        if not self.is_img2img or getattr(p, "init_latent", None) is None or self.params.is_i2i_batch:
            return
        init = p.init_latent
        generator = torch.Generator().manual_seed(int(p.seeds[0]) if getattr(p, "seeds", None) else 0)
        noise = torch.randn(init.shape, generator=generator).to(init.device, init.dtype)
        last = None
        if self.params.last_frame is not None:
            last = _encode(p, self.params.last_frame)
        p.init_latent = blend_for(self.params, init[:1], noise, last).to(init.dtype)

    # --- end ----------------------------------------------------------------------------------

    def finish(self) -> None:
        if self.patch is not None and self.patch.active:
            self.patch.restore()


def _encode(p, image) -> torch.Tensor:
    import numpy as np

    img = image.convert("RGB").resize((p.width, p.height))
    x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 127.5 - 1.0).permute(2, 0, 1)[None]
    model = p.sd_model
    x = x.to(next(model.parameters()).device)
    with torch.no_grad():
        return model.get_first_stage_encoding(model.encode_first_stage(x))
