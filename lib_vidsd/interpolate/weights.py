"""FILM / RIFE weight files: where they are looked for, which name is picked, loading them once.

Files live in a models folder (``models/VFI`` under the WebUI; ``--vfi-dir`` on the command
line). A request names a file of that folder (a bare name, never a path); with no name the first
of the usual file names that exists is taken. Nothing is ever downloaded: a missing file is a
:class:`~lib_vidsd.errors.ConfigError` naming the folder and the files expected there.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any, Sequence

from ..errors import ConfigError

#: the file names users already have, in the order tried when no name is given
DEFAULT_FILES: dict[str, tuple[str, ...]] = {
    # Deforum / sd-webui-animatediff, then ComfyUI-Frame-Interpolation
    "film": ("film_net_fp16.pt", "film_net_fp32.pt"),
    # ComfyUI (4.7 is its default), Practical-RIFE, Deforum
    "rife": ("rife47.pth", "rife49.pth", "rife417.pth", "rife426.pth", "rife40.pth", "flownet.pkl", "RIFE46.pkl"),
}
SUFFIXES = (".pt", ".pth", ".pkl", ".safetensors")
NETWORK_METHODS = tuple(DEFAULT_FILES)


def list_weights(folders: Sequence[str | os.PathLike]) -> dict[str, Path]:
    """File name → path for every weight file directly in ``folders`` (the first folder wins a name)."""
    found: dict[str, Path] = {}
    for folder in folders:
        folder = Path(folder)
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            if path.is_file() and path.suffix.lower() in SUFFIXES and not path.name.startswith("."):
                found.setdefault(path.name, path)
    return found


def find_weights(method: str, name: str, folders: Sequence[str | os.PathLike], *, field: str = "interp_model") -> Path:
    """The file for ``method`` (``film`` or ``rife``): ``name`` from ``folders``, or the first default
    name present when ``name`` is empty. Raises :class:`ConfigError` on ``field`` otherwise."""
    if method not in DEFAULT_FILES:
        raise ConfigError("method", method, list(DEFAULT_FILES))
    files = list_weights(folders)
    where = ", ".join(str(Path(f)) for f in folders) or "(no folder configured)"
    if name:
        if "/" in name or "\\" in name or name in (".", ".."):
            raise ConfigError(field, name, "a file name from the interpolation models folder (not a path)")
        if name in files:
            return files[name]
        listed = ", ".join(files) or "none"
        raise ConfigError(field, name, f"a file in {where} (found: {listed})")
    for candidate in DEFAULT_FILES[method]:
        if candidate in files:
            return files[candidate]
    expected = ", ".join(DEFAULT_FILES[method])
    raise ConfigError(
        field, "", f"a {method.upper()} weights file in {where}: put one of {expected} there (nothing is downloaded)"
    )


def load_network(method: str, path: str | os.PathLike, *, device: str = "cpu", half: bool = False) -> Any:
    """The network in ``path`` for ``method``, loaded once per (file, modification time, device, dtype).

    ``half`` uses float16, on CUDA only (CPU kernels are float32).
    """
    path = Path(path)
    stat = path.stat()
    return _load_cached(method, str(path.resolve()), stat.st_mtime_ns, stat.st_size, str(device), bool(half))


@functools.lru_cache(maxsize=2)
def _load_cached(method: str, path: str, _mtime: int, _size: int, device: str, half: bool) -> Any:
    import torch

    dtype = torch.float16 if half and device.startswith("cuda") else torch.float32
    if method == "film":
        from .film import load_film

        return load_film(path, device=device, dtype=dtype)
    if method == "rife":
        from .rife import load_rife

        return load_rife(path, device=device, dtype=dtype)
    raise ConfigError("method", method, list(DEFAULT_FILES))
