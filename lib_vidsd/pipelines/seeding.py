"""Seeded construction of tiny models.

Freshly initialised diffusion models are partly trivial: zero-initialised output layers (ldm's
``zero_module`` convs, ``out``, ``proj_out``) turn whole blocks into identities, and norms start as
scale 1 / shift 0. A test on such a model can pass while the code under test ignores those layers,
so every builder here gives each constant parameter seeded random values.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TypeVar

import torch

M = TypeVar("M", bound=torch.nn.Module)


def seeded_build(seed: int, factory: Callable[[], M]) -> M:
    """Call ``factory()`` with torch's global RNG seeded, leaving the caller's RNG state untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return factory()


def perturb_trivial_parameters(module: torch.nn.Module, seed: int) -> int:
    """Replace every constant parameter (all elements equal) with seeded noise; returns how many.

    1-D parameters (norm scales and shifts, biases) become ``value + 0.1 * N(0, 1)``; others (zeroed
    weights) get ``N(0, 1) / sqrt(3 * fan_in)``, the spread of PyTorch's default Linear/Conv init.
    Parameters are visited in registration order, so the result depends on ``seed`` only.
    """
    generator = torch.Generator().manual_seed(seed)
    changed = 0
    with torch.no_grad():
        for param in module.parameters():
            flat = param.detach().reshape(-1)
            if flat.numel() > 1 and not bool((flat == flat[0]).all()):
                continue
            noise = torch.randn(param.shape, generator=generator, dtype=torch.float32)
            if param.dim() <= 1:
                value = flat[0].float() + 0.1 * noise
            else:
                value = noise / math.sqrt(3 * param[0].numel())
            param.copy_(value.to(param.dtype))
            changed += 1
    return changed
