"""Stands in for ``modules/rng.py``: ``ImageRNG``, the per-image noise of one batch.

As in the WebUI, each seed gets its own generator; the first ``next()`` gives one ``randn(shape)``
per seed (the starting noise), later calls draw further from the same generators (the noise that
ancestral samplers add at each step). Left out: variation seeds (``subseeds``,
``subseed_strength``), seed resizing and ``eta_noise_seed_delta`` are accepted and ignored; the
generators are CPU ones (the WebUI's ``randn_source = "CPU"``).
"""

import torch
from modules import devices


class ImageRNG:
    def __init__(self, shape, seeds, subseeds=None, subseed_strength=0.0, seed_resize_from_h=0, seed_resize_from_w=0):
        self.shape = tuple(map(int, shape))
        self.seeds = seeds
        self.subseeds = subseeds
        self.subseed_strength = subseed_strength
        self.seed_resize_from_h = seed_resize_from_h
        self.seed_resize_from_w = seed_resize_from_w
        self.generators = [torch.Generator("cpu").manual_seed(int(seed)) for seed in seeds]
        self.is_first = True

    def first(self):
        return self._draw()

    def next(self):
        if self.is_first:
            self.is_first = False
            return self.first()
        return self._draw()

    def _draw(self):
        return torch.stack([torch.randn(self.shape, generator=g) for g in self.generators]).to(devices.device)
