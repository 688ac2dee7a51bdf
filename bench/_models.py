"""Models with seeded random weights shared by the benchmarks (time does not depend on the values)."""

from __future__ import annotations

from lib_vidsd.pipelines.animate import SDModel

SD15_UNET = {
    "block_out_channels": (320, 640, 1280, 1280),
    "cross_attention_dim": 768,
    "attention_head_dim": 8,
    "norm_num_groups": 32,
    "sample_size": 64,
}
SD15_VAE = {"block_out_channels": (128, 256, 512, 512), "layers_per_block": 2, "norm_num_groups": 32}


def sd15_model() -> SDModel:
    from lib_vidsd.pipelines.tiny import (
        SD15_SCHEDULER_CONFIG,
        build_diffusers_unet,
        build_text_encoder,
        build_tokenizer,
        build_vae,
    )

    text = build_text_encoder(20, hidden_size=768, intermediate_size=3072, num_attention_heads=12, num_hidden_layers=1)
    parts = (build_diffusers_unet(0, **SD15_UNET), build_vae(10, **SD15_VAE), text)
    for part in parts:
        part.requires_grad_(False)
    return SDModel(*parts, build_tokenizer(), dict(SD15_SCHEDULER_CONFIG), "SD1.5 shapes (random weights)")
