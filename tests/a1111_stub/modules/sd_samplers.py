"""Stands in for ``modules/sd_samplers.py``. Whatever the sampler name, ``create_sampler`` gives
the stub's one sampler (Euler, see ``sd_samplers_kdiffusion``)."""

from modules import sd_samplers_kdiffusion


def create_sampler(name, model):
    return sd_samplers_kdiffusion.KDiffusionSampler(name or "Euler", model)
