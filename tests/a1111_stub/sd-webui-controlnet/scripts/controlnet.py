"""Fake of sd-webui-controlnet's ``scripts/controlnet.py`` (the ``ControlNet`` AlwaysVisible script); see README."""

import os
import re

import numpy as np
import torch
from internal_controlnet import external_code
from modules import scripts, shared
from PIL import Image


class ControlParams:
    def __init__(self, hint_cond, weight):
        self._hint_cond = hint_cond
        self.weight = weight
        self.used_hint_cond = None

    @property
    def hint_cond(self):
        return self._hint_cond

    @hint_cond.setter
    def hint_cond(self, value):
        self._hint_cond = value
        self.used_hint_cond = None


class UnetHook:
    def __init__(self, params):
        self.control_params = params
        self.calls = []  # (rows, [hint rows' means] per param)
        self.model = None

    def hook(self, unet):
        self.model = unet
        original = unet.forward
        outer = self

        def forward(x, timesteps=None, context=None, **kwargs):
            out = original(x, timesteps=timesteps, context=context, **kwargs)
            seen = []
            for param in outer.control_params:
                if param.used_hint_cond is None:
                    param.used_hint_cond = param.hint_cond
                hint = param.used_hint_cond
                if hint.shape[0] not in (1, x.shape[0]):
                    raise RuntimeError(f"hint of {hint.shape[0]} rows for a batch of {x.shape[0]}")
                means = hint.mean(dim=(1, 2, 3))
                seen.append(means.tolist())
                out = out + param.weight * means.reshape(-1, 1, 1, 1).to(out)
            outer.calls.append((x.shape[0], seen))
            return out

        unet._original_forward = original
        unet.forward = forward

    def restore(self):
        if self.model is not None and hasattr(self.model, "_original_forward"):
            self.model.forward = self.model._original_forward
            del self.model._original_forward


def _image_tensor(path_or_array):
    array = np.asarray(Image.open(path_or_array).convert("RGB") if isinstance(path_or_array, str) else path_or_array)
    return torch.from_numpy(array.astype(np.float32) / 255).permute(2, 0, 1)[None]


def _natural(name):
    return [int(t) if t.isdigit() else t.lower() for t in re.split("([0-9]+)", name)]


class Script(scripts.Script):
    def __init__(self):
        super().__init__()
        self.latest_network = None

    def title(self):
        return "ControlNet"

    def show(self, is_img2img):
        return scripts.AlwaysVisible

    def process(self, p, *args):
        units = [u for u in external_code.get_all_units_in_processing(p) if u.enabled]
        if not units:
            self.latest_network = None
            return
        params = []
        for unit in units:
            if unit.is_animate_diff_batch:
                folder = str(unit.batch_images).split("\n")[0]
                files = sorted((f for f in os.listdir(folder) if not f.startswith(".")), key=_natural)
                hint = torch.cat([_image_tensor(os.path.join(folder, f)) for f in files])
                if shared.opts.data.get("batch_cond_uncond", True):
                    hint = torch.cat([hint, hint])
            elif unit.image is not None:
                hint = _image_tensor(unit.image)
            else:
                hint = _image_tensor(np.asarray(p.init_images[0].convert("RGB")))
            params.append(ControlParams(hint, unit.weight))
        self.latest_network = UnetHook(params)
        self.latest_network.hook(p.sd_model.model.diffusion_model)

    def postprocess(self, p, processed, *args):
        if self.latest_network is not None:
            self.latest_network.restore()
