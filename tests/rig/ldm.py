"""The ldm ``UNetModel`` that A1111 runs for SD1.x, small and seeded.

Source: the PyPI package ``stable-diffusion-sdkit`` (installed ``--no-deps``), a copy of the
Stability-AI ``ldm`` package; ``ldm/modules/diffusionmodules/openaimodel.py`` builds the same module
tree as the commit A1111 pins (the shared injection fixture reproduces bit for bit with it). Without
xformers its ``CrossAttention`` runs plain softmax attention in float32; A1111 would have swapped
``CrossAttention.forward`` on the class for its chosen optimisation, which this rig does not do.
"""

from __future__ import annotations

from typing import Any

import torch

from .fixtures import require_fixture
from .seeding import perturb_trivial_parameters, seeded_build

#: Exactly ``unet_constructor.kwargs`` of ``fixtures/animatediff/tiny/inject/inject.json``: the SD1.5
#: block layout (12 input blocks, middle block, 12 output blocks; attention at the three upper levels)
#: with 32 channels at every level, 8 heads, context dim 32. About 1.1 M parameters.
LDM_TINY_KWARGS: dict[str, Any] = {
    "image_size": 32,
    "in_channels": 4,
    "out_channels": 4,
    "model_channels": 32,
    "attention_resolutions": [4, 2, 1],
    "num_res_blocks": 2,
    "channel_mult": [1, 1, 1, 1],
    "num_heads": 8,
    "use_spatial_transformer": True,
    "transformer_depth": 1,
    "context_dim": 32,
    "use_checkpoint": False,
    "legacy": False,
}

INJECT_DIR = "animatediff/tiny/inject"


def build_ldm_unet(seed: int = 0, *, perturb: bool = True, **overrides: Any) -> torch.nn.Module:
    """A tiny ldm ``UNetModel`` in eval mode, float32, deterministic for ``seed``.

    ``overrides`` replace entries of :data:`LDM_TINY_KWARGS`. With ``perturb`` (default) the
    zero-initialised output layers and the trivial norms get seeded noise (see
    :func:`tests.rig.seeding.perturb_trivial_parameters`), so no block is an identity.
    Forward: ``unet(x, timesteps=t, context=c)`` with ``x (B, 4, H, W)`` (H, W multiples of 8),
    ``t (B,)`` (may be fractional, as A1111 passes it) and ``c (B, T, 32)``.
    """
    from ldm.modules.diffusionmodules.openaimodel import UNetModel

    kwargs = {**LDM_TINY_KWARGS, **overrides}
    unet = seeded_build(seed, lambda: UNetModel(**kwargs))
    if perturb:
        perturb_trivial_parameters(unet, seed + 1)
    return unet.eval()


def load_fixture_ldm_unet() -> torch.nn.Module:
    """The tiny UNet of the shared injection fixture (``unet_tiny.fp16.safetensors``), float32.

    The stored float16 values were rounded before the fixture was computed, so loading them into a
    float32 model reproduces ``io.safetensors``' ``expected_plain_unet``. Skips the calling test when
    ``../shared/fixtures`` is absent.
    """
    from safetensors.torch import load_file

    path = require_fixture(f"{INJECT_DIR}/unet_tiny.fp16.safetensors")
    unet = build_ldm_unet(perturb=False)
    unet.load_state_dict(load_file(str(path)), strict=True)
    return unet.float().eval()


def load_fixture_inject_io() -> dict[str, torch.Tensor]:
    """``io.safetensors`` of the injection fixture: ``x`` (16, 4, 16, 16) = 2 halves x 8 frames,
    ``timesteps`` (16,), ``context`` (16, 8, 32), ``expected_plain_unet`` and ``expected_v1/v2/v3``.
    Skips the calling test when the fixture is absent."""
    from safetensors.torch import load_file

    return load_file(str(require_fixture(f"{INJECT_DIR}/io.safetensors")))


def ldm_inputs(
    batch: int = 2, size: int = 16, tokens: int = 8, seed: int = 0, timestep: float = 481.25
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Seeded ``(x (B, 4, size, size), timesteps (B,), context (B, tokens, 32))`` for the tiny UNet."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 4, size, size, generator=generator)
    context = torch.randn(batch, tokens, LDM_TINY_KWARGS["context_dim"], generator=generator)
    return x, torch.full((batch,), float(timestep)), context
