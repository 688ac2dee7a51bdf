"""Stands in for ``modules/sd_samplers_cfg_denoiser.py``: classifier-free guidance around the model.

As in the WebUI, the conds of the current step are rebuilt from the scheduled conditioning
(``prompt_parser.reconstruct_multicond_batch`` / ``reconstruct_cond_batch`` at ``self.step``); one
model call takes the cond rows (one per image) followed by the uncond rows; ``cfg_denoiser`` may
change the inputs before it and ``cfg_denoised`` sees the output after it; the result is
``uncond + cond_scale * (cond - uncond)``, which ``cfg_after_cfg`` may replace; an interrupted or
skipped job raises ``InterruptedException`` at the next call. Not modelled: ``AND`` prompts (one
cond row per image), cond/uncond padding, ``s_min_uncond`` skipping, masks.
"""

import torch
from modules import prompt_parser, script_callbacks, sd_samplers_common, shared


class CFGDenoiser(torch.nn.Module):
    def __init__(self, sampler):
        super().__init__()
        self.sampler = sampler
        self.p = None
        self.step = 0
        self.steps = self.total_steps = None
        self.mask = self.nmask = self.init_latent = None
        self.image_cfg_scale = None

    @property
    def inner_model(self):
        return self.sampler.model_wrap

    def forward(self, x, sigma, uncond, cond, cond_scale, s_min_uncond, image_cond):
        state = shared.state
        if state.interrupted or state.skipped:
            raise sd_samplers_common.InterruptedException
        _conds_list, cond = prompt_parser.reconstruct_multicond_batch(cond, self.step)
        uncond = prompt_parser.reconstruct_cond_batch(uncond, self.step)
        params = script_callbacks.CFGDenoiserParams(
            x=torch.cat([x, x]),
            image_cond=torch.cat([image_cond, image_cond]),
            sigma=torch.cat([sigma, sigma]),
            sampling_step=state.sampling_step,
            total_sampling_steps=state.sampling_steps,
            text_cond=cond,
            text_uncond=uncond,
            denoiser=self,
        )
        script_callbacks.cfg_denoiser_callback(params)
        both = {"c_crossattn": [torch.cat([params.text_cond, params.text_uncond])], "c_concat": [params.image_cond]}
        out = self.inner_model(params.x, params.sigma, cond=both)
        script_callbacks.cfg_denoised_callback(
            script_callbacks.CFGDenoisedParams(out, state.sampling_step, state.sampling_steps, self.inner_model)
        )
        half = params.text_uncond.shape[0]
        on_cond, on_uncond = out[:-half], out[-half:]
        guided = on_uncond + cond_scale * (on_cond - on_uncond)
        self.sampler.last_latent = guided
        after = script_callbacks.AfterCFGCallbackParams(guided, state.sampling_step, state.sampling_steps)
        script_callbacks.cfg_after_cfg_callback(after)
        guided = after.x
        self.step += 1
        return guided
