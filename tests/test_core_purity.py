"""The core never imports the WebUI: checked in a fresh interpreter over every submodule."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PROBE = """
import importlib, pkgutil, sys
import lib_vidsd
names = ["lib_vidsd"] + [m.name for m in pkgutil.walk_packages(lib_vidsd.__path__, "lib_vidsd.")]
for name in names:
    importlib.import_module(name)
host = sorted(m for m in sys.modules if m.split(".")[0] in ("modules", "gradio", "launch"))
print(len(names), ",".join(host))
"""


def test_core_imports_no_webui_module():
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, check=True)
    count, host = out.stdout.strip().split(" ", 1) if " " in out.stdout.strip() else (out.stdout.strip(), "")
    assert int(count) >= 10  # every submodule was really imported
    assert host == "", f"lib_vidsd imported WebUI modules: {host}"


def test_no_webui_import_statement_in_core():
    """Also catches imports inside functions that the walk above does not execute."""
    import re

    pattern = re.compile(r"^\s*(import|from)\s+(modules|gradio|launch)\b", re.M)
    offenders = [str(p) for p in (ROOT / "lib_vidsd").rglob("*.py") if pattern.search(p.read_text())]
    assert offenders == []


def test_no_class_attribute_patching():
    """Class-level monkeypatching (``Class.forward = ...``) is the defect we avoid."""
    import re

    pattern = re.compile(r"^\s*[A-Z][A-Za-z0-9_]*\.(forward|__call__)\s*=", re.M)
    files = list((ROOT / "lib_vidsd").rglob("*.py")) + list((ROOT / "scripts").rglob("*.py"))
    assert [str(p) for p in files if pattern.search(p.read_text())] == []
