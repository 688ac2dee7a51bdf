"""Attention shared by both UNet kinds (ldm ``UNetModel``, diffusers ``UNet2DConditionModel``): cross-frame attention."""

from .crossframe import PATCH_NAME, CrossFrameAttention, Reference, self_attention_sites

__all__ = ["PATCH_NAME", "CrossFrameAttention", "Reference", "self_attention_sites"]
