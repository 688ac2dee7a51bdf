"""Motion-module files: where they live, which exist, and resolving a name (never a path).

Searched, in order: the folder set in Settings (default ``models/AnimateDiff`` under the WebUI)
and the extension's own ``model/`` folder. Names are paths relative to their folder with
forward slashes; a request names one of the listed files, and nothing else is ever opened.
"""

from __future__ import annotations

import os
from pathlib import Path

from lib_vidsd.errors import ConfigError

SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth")
EXTENSION_ROOT = Path(__file__).resolve().parents[2]
SETTING = "vidsd_animatediff_model_path"


def default_folder() -> Path:
    from modules import paths

    return Path(paths.models_path) / "AnimateDiff"


def folders() -> list[Path]:
    from modules import shared

    configured = shared.opts.data.get(SETTING) or ""
    first = Path(configured) if configured.strip() else default_folder()
    return [first, EXTENSION_ROOT / "model"]


def _is_lora(name: str) -> bool:
    return "lora" in Path(name).name.lower()


def list_models() -> dict[str, Path]:
    """Name → file, for every motion module in the searched folders (first folder wins a name)."""
    return {k: v for k, v in _list_files().items() if not _is_lora(k)}


def list_loras() -> dict[str, Path]:
    """Name → file, for the motion LoRAs (files with ``lora`` in their name) in the same folders."""
    return {k: v for k, v in _list_files().items() if _is_lora(k)}


def _list_files() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for folder in folders():
        if not folder.is_dir():
            continue
        for root, _dirs, files in os.walk(folder):
            for name in sorted(files):
                if name.lower().endswith(SUFFIXES) and not name.startswith("."):
                    path = Path(root) / name
                    found.setdefault(path.relative_to(folder).as_posix(), path)
    return dict(sorted(found.items()))


def resolve(name: str, *, field: str = "model") -> Path:
    """The file of a listed motion module (or motion LoRA, ``field="motion_lora"``); anything else
    is a ``ConfigError`` on that field."""
    listing = list_loras() if field == "motion_lora" else list_models()
    if name in listing:
        return listing[name]
    where = ", ".join(str(f) for f in folders())
    what = "motion LoRAs" if field == "motion_lora" else "motion modules"
    allowed = ", ".join(listing) if listing else f"no {what} found (put them in {where})"
    raise ConfigError(field, name, allowed)


# --- frame-interpolation weights (FILM, RIFE) ---------------------------------------------------

VFI_SETTING = "vidsd_vfi_model_path"


def vfi_folders() -> list[Path]:
    """The interpolation models folder set in Settings (default ``models/VFI`` under the WebUI)."""
    from modules import paths, shared

    configured = shared.opts.data.get(VFI_SETTING) or ""
    return [Path(configured) if configured.strip() else Path(paths.models_path) / "VFI"]


def list_vfi_models() -> list[str]:
    from lib_vidsd.interpolate.weights import list_weights

    return list(list_weights(vfi_folders()))


def load_vfi(method: str, name: str, *, field: str = "interp_model"):
    """The loaded FILM/RIFE network for ``method`` (``None`` for methods without weights)."""
    from lib_vidsd.interpolate.weights import NETWORK_METHODS, find_weights, load_network

    if method not in NETWORK_METHODS:
        return None
    from modules import devices

    path = find_weights(method, name, vfi_folders(), field=field)
    device = str(getattr(devices, "device", "cpu"))
    return load_network(method, path, device=device, half=device.startswith("cuda"))
