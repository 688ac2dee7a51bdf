"""A fast latent → RGB estimate: a fixed linear map of the 4 latent channels (no VAE).

Each output pixel is ``rgb = latent · F`` for a 4×3 matrix ``F`` per latent space, followed by
``(rgb + 1) / 2`` and a clamp to 0..1. The matrices are least-squares fits published by the
community (Hugging Face forum, "Decoding latents to RGB without upscaling") and used by the WebUI's
"Approx cheap" live preview. The picture has the latent's resolution (1/8 of the image); callers
scale it up. It costs a few multiply-adds per pixel, against about three UNet steps for the VAE.
"""

from __future__ import annotations

import torch

from ..errors import ConfigError

#: rows: latent channels 0..3; columns: R, G, B
LATENT_RGB_FACTORS: dict[str, tuple[tuple[float, float, float], ...]] = {
    "sd15": (
        (0.298, 0.207, 0.208),
        (0.187, 0.286, 0.173),
        (-0.158, 0.189, 0.264),
        (-0.184, -0.271, -0.473),
    ),
    "sdxl": (
        (0.3448, 0.4168, 0.4395),
        (-0.1953, -0.0290, 0.0250),
        (0.1074, 0.0886, -0.0163),
        (-0.3730, -0.2499, -0.2088),
    ),
}


def latents_to_rgb(latents: torch.Tensor, family: str = "sd15") -> torch.Tensor:
    """``[B, 4, h, w]`` latents (unscaled, as the sampler holds them) → ``[B, 3, h, w]`` float 0..1."""
    if family not in LATENT_RGB_FACTORS:
        raise ConfigError("family", family, list(LATENT_RGB_FACTORS))
    if latents.ndim != 4 or latents.shape[1] != 4:
        raise ConfigError("latents", tuple(latents.shape), "a [B, 4, h, w] tensor")
    factors = torch.tensor(LATENT_RGB_FACTORS[family], dtype=torch.float32, device=latents.device)
    rgb = torch.einsum("bchw,cr->brhw", latents.float(), factors)
    return ((rgb + 1) / 2).clamp(0, 1)
