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


def list_models() -> dict[str, Path]:
    """Name → file, for every motion module in the searched folders (first folder wins a name)."""
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


def resolve(name: str) -> Path:
    """The file of a listed motion module; anything else is a ``ConfigError`` on ``model``."""
    models = list_models()
    if name in models:
        return models[name]
    where = ", ".join(str(f) for f in folders())
    allowed = ", ".join(models) if models else f"no motion modules found (put them in {where})"
    raise ConfigError("model", name, allowed)
