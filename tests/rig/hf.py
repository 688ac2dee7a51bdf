"""The tiny diffusers / transformers builders live in the core (the CLI uses them too)."""

from lib_vidsd.pipelines.tiny import (
    DIFFUSERS_UNET_TINY_CONFIG,
    SD15_SCHEDULER_CONFIG,
    VAE_TINY_CONFIG,
    build_diffusers_unet,
    build_scheduler,
    build_sd_components,
    build_sd_pipeline,
    build_text_encoder,
    build_vae,
)

__all__ = [
    "DIFFUSERS_UNET_TINY_CONFIG",
    "SD15_SCHEDULER_CONFIG",
    "VAE_TINY_CONFIG",
    "build_diffusers_unet",
    "build_scheduler",
    "build_sd_components",
    "build_sd_pipeline",
    "build_text_encoder",
    "build_vae",
]
