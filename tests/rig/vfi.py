"""FILM / RIFE weight files as users have them, made from the tiny reference fixtures."""

from __future__ import annotations

from pathlib import Path

from .fixtures import require_fixture


def write_rife_file(folder: Path, name: str = "rife47.pth", *, prefix: bool = True) -> Path:
    """The tiny RIFE 4.7 weights saved as a pickled state dict (``module.`` prefix like Practical-RIFE)."""
    import torch
    from safetensors.torch import load_file

    weights = load_file(str(require_fixture("interpolation/tiny/rife_v4_7_tiny.weights.safetensors")))
    if prefix:
        weights = {f"module.{k}": v for k, v in weights.items()}
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(weights, folder / name)
    return folder / name


def write_film_archive(folder: Path, name: str = "film_net_fp16.pt", *, half: bool = True) -> Path:
    """The tiny FILM as a TorchScript archive, the published files' packaging (fp16 like Deforum's)."""
    import warnings

    import torch

    from lib_vidsd.interpolate.film import load_film

    model = load_film(require_fixture("interpolation/tiny/film_tiny.weights.safetensors"))
    if half:
        model = model.half()
    folder.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.script(model).save(str(folder / name))
    return folder / name
