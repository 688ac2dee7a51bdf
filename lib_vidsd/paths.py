"""Paths built from user input stay inside a root folder."""

from __future__ import annotations

import os
from pathlib import Path

from .errors import ConfigError


def inside(root: str | os.PathLike, *parts: str, field: str = "path") -> Path:
    """``root / parts…`` resolved, or :class:`ConfigError` (naming ``field``) when it would leave
    ``root`` (``..``, an absolute part, a symlink pointing elsewhere)."""
    base = Path(root).resolve()
    target = base.joinpath(*parts).resolve()
    if target != base and base not in target.parents:
        raise ConfigError(field, "/".join(parts), f"a path inside {base}")
    return target
