"""Tiny seeded diffusers / transformers parts of a Stable Diffusion 1.5-shaped pipeline.

What the CLI and the demo run when no model is given (so the whole chain works on any machine,
with no download), and what the tests build. The UNet mirrors the ldm UNet of the shared
injection fixture (``tests.rig.ldm.LDM_TINY_KWARGS``): SD1.5 block types, 32 channels at every
level, 32 GroupNorm groups (ldm's ``normalization()`` always uses 32), 8 heads, cross-attention dim
32, conv (not linear) transformer projections. So the shared tiny motion module
(``mm_tiny_v2.fp16.safetensors``, 32 channels everywhere) fits both UNet kinds.
Nothing here touches the network: the tokenizer is built from files the rig writes.
"""

from __future__ import annotations

from typing import Any

import torch

from ..errors import ConfigError
from .seeding import perturb_trivial_parameters, seeded_build
from .tokenizer import build_tokenizer, clip_vocab

#: ``UNet2DConditionModel`` config: SD1.5 block types, tiny channels.
DIFFUSERS_UNET_TINY_CONFIG: dict[str, Any] = {
    "sample_size": 8,
    "in_channels": 4,
    "out_channels": 4,
    "layers_per_block": 2,
    "block_out_channels": (32, 32, 32, 32),
    "down_block_types": ("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    "mid_block_type": "UNetMidBlock2DCrossAttn",
    "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    "norm_num_groups": 32,
    "cross_attention_dim": 32,
    "attention_head_dim": 8,  # SD1.5's config name for the number of heads
    "use_linear_projection": False,
}

#: ``AutoencoderKL`` config: 4 levels, so latents are 1/8 of the image size as in SD.
VAE_TINY_CONFIG: dict[str, Any] = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ("DownEncoderBlock2D",) * 4,
    "up_block_types": ("UpDecoderBlock2D",) * 4,
    "block_out_channels": (8, 16, 16, 16),
    "layers_per_block": 1,
    "latent_channels": 4,
    "norm_num_groups": 8,
    "sample_size": 64,
}

#: SD1.5's noise schedule (``scaled_linear`` = linear in sqrt(beta)), as in its scheduler config.
SD15_SCHEDULER_CONFIG: dict[str, Any] = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "steps_offset": 1,
}


def build_diffusers_unet(seed: int = 0, **overrides: Any):
    """A tiny ``UNet2DConditionModel`` in eval mode (float32, default attention processors).

    Forward: ``unet(sample (B, 4, H, W), timestep, encoder_hidden_states=(B, T, 32)).sample``; H and W
    multiples of 8.
    """
    from diffusers import UNet2DConditionModel

    config = {**DIFFUSERS_UNET_TINY_CONFIG, **overrides}
    unet = seeded_build(seed, lambda: UNet2DConditionModel(**config))
    perturb_trivial_parameters(unet, seed + 1)
    return unet.eval()


def build_vae(seed: int = 0, **overrides: Any):
    """A tiny ``AutoencoderKL``: images (B, 3, H, W) in [-1, 1] ↔ latents (B, 4, H/8, W/8)."""
    from diffusers import AutoencoderKL

    config = {**VAE_TINY_CONFIG, **overrides}
    vae = seeded_build(seed, lambda: AutoencoderKL(**config))
    perturb_trivial_parameters(vae, seed + 1)
    return vae.eval()


def build_text_encoder(seed: int = 0, **overrides: Any):
    """A tiny ``CLIPTextModel`` (hidden 32, 2 layers, 4 heads, 77 positions) matching
    :func:`lib_vidsd.pipelines.tokenizer.clip_vocab`'s vocabulary. Output ``last_hidden_state`` (B, 77, 32)."""
    from transformers import CLIPTextConfig, CLIPTextModel

    vocab, _ = clip_vocab()
    config_kwargs: dict[str, Any] = {
        "vocab_size": len(vocab),
        "hidden_size": 32,
        "intermediate_size": 37,
        "projection_dim": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "max_position_embeddings": 77,
        "hidden_act": "quick_gelu",
        "bos_token_id": vocab["<|startoftext|>"],
        "eos_token_id": vocab["<|endoftext|>"],
        "pad_token_id": vocab["<|endoftext|>"],
        **overrides,
    }
    config = CLIPTextConfig(**config_kwargs)
    model = seeded_build(seed, lambda: CLIPTextModel(config))
    perturb_trivial_parameters(model, seed + 1)
    return model.eval()


def build_scheduler(kind: str = "ddim", **overrides: Any):
    """A diffusers scheduler with SD1.5's schedule: ``kind`` is ``"ddim"`` or ``"euler"``."""
    from diffusers import DDIMScheduler, EulerDiscreteScheduler

    kinds = {"ddim": DDIMScheduler, "euler": EulerDiscreteScheduler}
    if kind not in kinds:
        raise ConfigError("scheduler", kind, list(kinds))
    extra = {"clip_sample": False, "set_alpha_to_one": False} if kind == "ddim" else {}
    return kinds[kind](**{**SD15_SCHEDULER_CONFIG, **extra, **overrides})


def build_sd_components(seed: int = 0, scheduler: str = "ddim") -> dict[str, Any]:
    """The keyword arguments of ``StableDiffusionPipeline`` built from the tiny parts
    (``safety_checker=None``, ``feature_extractor=None``, ``requires_safety_checker=False``)."""
    return {
        "unet": build_diffusers_unet(seed),
        "vae": build_vae(seed + 10),
        "text_encoder": build_text_encoder(seed + 20),
        "tokenizer": build_tokenizer(),
        "scheduler": build_scheduler(scheduler),
        "safety_checker": None,
        "feature_extractor": None,
        "requires_safety_checker": False,
    }


def build_sd_pipeline(seed: int = 0, scheduler: str = "ddim"):
    """A tiny ``StableDiffusionPipeline`` on CPU with the progress bar off.

    Use e.g. ``pipe("a cat", height=64, width=64, num_inference_steps=2,
    generator=torch.Generator().manual_seed(0), output_type="np")``.
    """
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline(**build_sd_components(seed, scheduler))
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(torch.device("cpu"))
