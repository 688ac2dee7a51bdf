"""Stands in for ``modules/paths_internal.py``.

The WebUI root (``script_path``) is the stub folder. ``data_path`` (what ``--data-dir`` sets) is a
throw-away folder made for this process and deleted when it exits, or ``$A1111_STUB_DATA_DIR`` if
set, so tests never write into the repository.
"""

import atexit
import os
import shutil
import tempfile

script_path = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

if os.environ.get("A1111_STUB_DATA_DIR"):
    data_path = os.environ["A1111_STUB_DATA_DIR"]
else:
    data_path = tempfile.mkdtemp(prefix="a1111-stub-data-")
    atexit.register(shutil.rmtree, data_path, ignore_errors=True)

models_path = os.path.join(data_path, "models")
extensions_dir = os.path.join(data_path, "extensions")
extensions_builtin_dir = os.path.join(script_path, "extensions-builtin")
default_output_dir = os.path.join(data_path, "outputs")
