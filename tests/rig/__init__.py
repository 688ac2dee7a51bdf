"""The project's test rig: tiny seeded models and helpers for the A1111 contract stub.

Submodules (import what you need; heavy libraries load only when used):

- ``tests.rig.ldm``: ``build_ldm_unet``, ``load_fixture_ldm_unet``, ``load_fixture_inject_io``,
  ``ldm_inputs``, ``LDM_TINY_KWARGS`` (ldm ``UNetModel`` from ``stable-diffusion-sdkit``).
- ``tests.rig.hf``: ``build_diffusers_unet``, ``build_vae``, ``build_text_encoder``,
  ``build_scheduler``, ``build_sd_components``, ``build_sd_pipeline`` (diffusers / transformers).
- ``tests.rig.tokenizer``: ``build_tokenizer``, ``write_tokenizer_files``, ``clip_vocab`` (offline CLIP BPE).
- ``tests.rig.a1111``: ``install_stub``, ``reset_stub``, ``TinySdModel``, ``tiny_sd_model``,
  ``make_runner``, ``run_txt2img``, ``run_img2img``, ``install_extension``.
- ``tests.rig.fixtures``: ``SHARED_FIXTURES``, ``fixture_path``, ``require_fixture``.
- ``tests.rig.seeding``: ``seeded_build``, ``perturb_trivial_parameters``.

The names above are also importable from ``tests.rig`` directly (loaded lazily).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ldm": ("build_ldm_unet", "load_fixture_ldm_unet", "load_fixture_inject_io", "ldm_inputs", "LDM_TINY_KWARGS"),
    "hf": (
        "build_diffusers_unet",
        "build_vae",
        "build_text_encoder",
        "build_scheduler",
        "build_sd_components",
        "build_sd_pipeline",
        "DIFFUSERS_UNET_TINY_CONFIG",
    ),
    "tokenizer": ("build_tokenizer", "write_tokenizer_files", "clip_vocab"),
    "a1111": (
        "install_stub",
        "reset_stub",
        "TinySdModel",
        "tiny_sd_model",
        "make_runner",
        "run_txt2img",
        "run_img2img",
        "install_extension",
        "STUB_ROOT",
    ),
    "fixtures": ("SHARED_FIXTURES", "fixture_path", "require_fixture"),
    "seeding": ("seeded_build", "perturb_trivial_parameters"),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'tests.rig' has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
