"""Stands in for ``modules/paths.py``, which re-exports the folders of ``paths_internal`` (the
WebUI's version also puts its ``repositories/`` checkouts on ``sys.path``; nothing of that here)."""

from modules.paths_internal import data_path, extensions_builtin_dir, extensions_dir, models_path, script_path

__all__ = ["data_path", "extensions_builtin_dir", "extensions_dir", "models_path", "script_path"]
