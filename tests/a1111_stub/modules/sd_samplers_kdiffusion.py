"""Stands in for ``modules/sd_samplers_kdiffusion.py``: one sampler, Euler, on the model's own
noise levels.

For an eps-prediction model with ``alphas_cumprod`` (1000 steps) the noise level of timestep
``t`` is ``sigma(t) = sqrt((1 - a_t) / a_t)``. ``n`` sampling steps walk ``t`` evenly from 999 down
to 0 (``log sigma`` interpolated between whole timesteps), then to ``sigma = 0``. The model is
called as the WebUI calls it: ``apply_model(x / sqrt(sigma^2 + 1), t, cond={"c_crossattn": [...],
"c_concat": [...]})`` with a fractional ``t`` found back from ``sigma``.
``state.sampling_steps`` is the number of steps; after each step the sampler calls
``callback_state`` with k-diffusion's dict (``x``, ``i``, ``sigma``, ``sigma_hat``, ``denoised``),
which sets ``state.sampling_step`` as the WebUI's ``Sampler.callback_state`` does.
"""

import numpy as np
import torch
from modules import sd_samplers_cfg_denoiser, sd_samplers_common, shared


class _EpsModelAtSigma(torch.nn.Module):
    """Turns the eps-prediction model into "given x at noise level sigma, estimate the clean x"."""

    def __init__(self, model):
        super().__init__()
        self.inner_model = model
        a = model.alphas_cumprod.double().cpu()
        self.log_sigma_at_t = (((1 - a) / a).sqrt().log()).numpy()  # increases with t

    def _t_for(self, sigma):
        t = np.interp(sigma.double().log().cpu().numpy(), self.log_sigma_at_t, np.arange(len(self.log_sigma_at_t)))
        return torch.from_numpy(t).to(sigma)

    def get_sigmas(self, n):
        ts = np.linspace(len(self.log_sigma_at_t) - 1, 0, n)
        sigmas = np.exp(np.interp(ts, np.arange(len(self.log_sigma_at_t)), self.log_sigma_at_t))
        return torch.tensor([*sigmas, 0.0], dtype=torch.float32)

    def forward(self, x, sigma, cond):
        per_row = sigma.reshape(-1, 1, 1, 1)
        eps = self.inner_model.apply_model(x / (per_row**2 + 1).sqrt(), self._t_for(sigma), cond=cond)
        return x - per_row * eps


class KDiffusionSampler:
    def __init__(self, funcname, sd_model, options=None):
        self.funcname = funcname
        self.options = options or {}
        self.model_wrap = _EpsModelAtSigma(sd_model)
        self.model_wrap_cfg = sd_samplers_cfg_denoiser.CFGDenoiser(self)
        self.last_latent = None
        self.p = None
        self.stop_at = None

    def callback_state(self, d):
        """The WebUI's per-step callback (``sd_samplers_common.Sampler.callback_state``)."""
        if self.stop_at is not None and d["i"] > self.stop_at:
            raise sd_samplers_common.InterruptedException
        shared.state.sampling_step = d["i"]
        shared.total_tqdm.update()

    def get_sigmas(self, p, steps):
        return self.model_wrap.get_sigmas(steps)

    def sample(self, p, x, conditioning, unconditional_conditioning, steps=None, image_conditioning=None):
        """txt2img: ``x`` is unit noise, scaled to the first noise level."""
        sigmas = self.get_sigmas(p, steps or p.steps)
        return self._euler(p, x * sigmas[0], sigmas, conditioning, unconditional_conditioning, image_conditioning)

    def sample_img2img(
        self, p, x, noise, conditioning, unconditional_conditioning, steps=None, image_conditioning=None
    ):
        """img2img: start from the init latent ``x`` noised to the level ``denoising_strength`` of
        the way up the schedule and run the remaining ``int(strength * steps) + 1`` steps."""
        steps = steps or p.steps
        kept = int(min(p.denoising_strength, 0.999) * steps) + 1
        sigmas = self.get_sigmas(p, steps)[-(kept + 1) :]
        return self._euler(
            p, x + noise * sigmas[0], sigmas, conditioning, unconditional_conditioning, image_conditioning
        )

    def _euler(self, p, x, sigmas, cond, uncond, image_cond):
        state, denoiser = shared.state, self.model_wrap_cfg
        self.p = denoiser.p = p
        denoiser.step = 0
        denoiser.steps = denoiser.total_steps = state.sampling_steps = len(sigmas) - 1
        state.sampling_step = 0
        self.last_latent = x
        try:
            for i in range(len(sigmas) - 1):
                sigma = sigmas[i].expand(x.shape[0])
                clean = denoiser(
                    x, sigma, uncond=uncond, cond=cond, cond_scale=p.cfg_scale, s_min_uncond=0.0, image_cond=image_cond
                )
                self.callback_state({"x": x, "i": i, "sigma": sigmas[i], "sigma_hat": sigmas[i], "denoised": clean})
                x = clean + (x - clean) * (sigmas[i + 1] / sigmas[i])  # Euler step of dx/dsigma = (x - clean)/sigma
        except sd_samplers_common.InterruptedException:
            return self.last_latent
        return x
