"""Reversible patching of UNets (ldm ``UNetModel`` as A1111 runs it, diffusers ``UNet2DConditionModel``)."""

from .core import MARKER, PatchError, PatchHandle, active_patches, is_patched, open_patch, restore_all
from .sites import Site, UNetLayout, find_layout

__all__ = [
    "MARKER",
    "PatchError",
    "PatchHandle",
    "Site",
    "UNetLayout",
    "active_patches",
    "find_layout",
    "is_patched",
    "open_patch",
    "restore_all",
]
