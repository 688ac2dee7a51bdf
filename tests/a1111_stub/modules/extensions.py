"""Stands in for ``modules/extensions.py``: the installed extensions.

The WebUI fills ``extensions`` by scanning ``extensions/``; here a test registers a folder with
``add`` (stub only, see ``tests.rig.a1111.install_extension``). No metadata, git or ordering.
"""

import os

extensions = []
extension_paths = {}  # real path of an extension's folder -> Extension
loaded_extensions = {}  # canonical name -> Extension


class Extension:
    def __init__(self, name, path, enabled=True, is_builtin=False, metadata=None):
        self.name = name
        self.path = path
        self.enabled = enabled
        self.is_builtin = is_builtin
        self.canonical_name = name.strip().lower()

    def list_files(self, subdir, extension):
        """``ScriptFile`` entries for the files ``<path>/<subdir>/*<extension>``, sorted by name."""
        from modules.scripts import ScriptFile

        folder = os.path.join(self.path, subdir)
        names = sorted(os.listdir(folder)) if os.path.isdir(folder) else []
        files = [ScriptFile(self.path, name, os.path.join(folder, name)) for name in names]
        return [f for f in files if f.filename.lower().endswith(extension) and os.path.isfile(f.path)]


def add(extension):
    """Stub only: make ``extension`` known as if the WebUI had found it in ``extensions/``."""
    extensions.append(extension)
    extension_paths[os.path.realpath(extension.path)] = extension
    loaded_extensions[extension.canonical_name] = extension
    return extension


def active():
    return [ext for ext in extensions if ext.enabled]


def find_extension(filename):
    """The extension whose folder holds ``filename``, or None."""
    where = os.path.realpath(filename)
    for root, ext in extension_paths.items():
        if where.startswith(root + os.sep):
            return ext
    return None
