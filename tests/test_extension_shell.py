"""install.py, preload.py and the flag-applying script, against fakes of A1111's launch helpers."""

from __future__ import annotations

import argparse
import importlib.util
import logging
import sys
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def fake_launch(monkeypatch):
    """Stands in for A1111's ``launch`` module: ``args.skip_install`` and a recording ``run_pip``."""
    launch = types.ModuleType("launch")
    launch.args = argparse.Namespace(skip_install=False)
    launch.calls = []
    launch.run_pip = lambda command, desc=None, live=False: launch.calls.append(command)
    monkeypatch.setitem(sys.modules, "launch", launch)
    return launch


def _versions(monkeypatch, installed: dict[str, str]):
    import importlib.metadata as md

    def version(name):
        if name in installed:
            return installed[name]
        raise md.PackageNotFoundError(name)

    monkeypatch.setattr(md, "version", version)


def test_install_asks_pip_for_missing_package(fake_launch, monkeypatch):
    _versions(monkeypatch, {})
    module = _load(ROOT / "install.py", "vidsd_install")
    assert fake_launch.calls == ['install "imageio-ffmpeg>=0.4.9,<1"', 'install "librosa>=0.10.2,<0.12"']
    assert all("torch" not in name for name in module.REQUIREMENTS)


def test_install_leaves_satisfied_package(fake_launch, monkeypatch):
    _versions(monkeypatch, {"imageio-ffmpeg": "0.5.1", "librosa": "0.11.0"})
    _load(ROOT / "install.py", "vidsd_install")
    assert fake_launch.calls == []


def test_install_replaces_out_of_bounds_version(fake_launch, monkeypatch):
    _versions(monkeypatch, {"imageio-ffmpeg": "0.4.2", "librosa": "0.10.2"})
    _load(ROOT / "install.py", "vidsd_install")
    assert len(fake_launch.calls) == 1


def test_install_honours_skip_install(fake_launch, monkeypatch):
    _versions(monkeypatch, {})
    fake_launch.args.skip_install = True
    _load(ROOT / "install.py", "vidsd_install")
    assert fake_launch.calls == []


def test_preload_flags():
    parser = argparse.ArgumentParser()
    _load(ROOT / "preload.py", "vidsd_preload").preload(parser)
    args = parser.parse_args(["--vidsd-ffmpeg", "/opt/ffmpeg", "--vidsd-log-level", "debug"])
    assert args.vidsd_ffmpeg == "/opt/ffmpeg" and args.vidsd_log_level == "DEBUG"
    defaults = parser.parse_args([])
    assert defaults.vidsd_ffmpeg is None and defaults.vidsd_log_level == "INFO"
    with pytest.raises(SystemExit):
        parser.parse_args(["--vidsd-log-level", "loud"])


def test_script_applies_flags(tmp_path):
    from modules import shared

    from lib_vidsd.video import ffmpeg as ff

    fake = tmp_path / "ffmpeg"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    old = dict(vars(shared.cmd_opts))
    shared.cmd_opts.vidsd_ffmpeg = str(fake)
    shared.cmd_opts.vidsd_log_level = "DEBUG"
    try:
        module = _load(ROOT / "scripts" / "vidsd_core.py", "vidsd_core_script")
        assert ff.ffmpeg_exe() == str(fake)
        logger = logging.getLogger("vidsd")
        assert logger.level == logging.DEBUG
        module.apply_flags(shared.cmd_opts)  # a UI reload must not stack handlers
        assert len([h for h in logger.handlers if h.get_name() == "vidsd-console"]) == 1
    finally:
        vars(shared.cmd_opts).clear()
        vars(shared.cmd_opts).update(old)
        ff.set_ffmpeg_path(None)
