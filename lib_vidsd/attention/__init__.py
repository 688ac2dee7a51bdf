"""Attention shared by both UNet kinds (ldm ``UNetModel``, diffusers ``UNet2DConditionModel``): cross-frame
attention for frame-by-frame rendering (:class:`CrossFrameAttention`) and between the frames of one UNet
batch by combine pattern or group (:class:`CombineAttention`)."""

from .combine import FIRST_FRAME, CombineAttention, parse_combine_pattern, pattern_sources
from .crossframe import PATCH_NAME, CrossFrameAttention, Reference, self_attention_sites

__all__ = [
    "FIRST_FRAME",
    "PATCH_NAME",
    "CombineAttention",
    "CrossFrameAttention",
    "Reference",
    "parse_combine_pattern",
    "pattern_sources",
    "self_attention_sites",
]
