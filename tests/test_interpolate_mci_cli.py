"""ffmpeg minterpolate (``mci``) interpolation and the ``interpolate`` CLI subcommand."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lib_vidsd.interpolate import interpolate
from lib_vidsd.interpolate.mci import grid_for, mci, mci_clip
from lib_vidsd.video import ffmpeg_exe, probe, write_video
from tests.test_interpolate import _psnr, _texture
from tests.videoclips import coded

ROOT = Path(__file__).resolve().parents[1]


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lib_vidsd", *args], cwd=ROOT, capture_output=True, text=True)


def _pan(n: int, h: int = 48, w: int = 64, step: int = 2) -> list[np.ndarray]:
    big = _texture(h, w + step * n, seed=3)
    return [big[:, i * step : i * step + w].copy() for i in range(n)]


@pytest.mark.parametrize("factor", [2, 4])
def test_mci_clip_count_and_endpoints(factor):
    frames = _pan(4)
    out = mci_clip(frames, factor)
    assert len(out) == (len(frames) - 1) * factor + 1
    assert all(o.dtype == np.uint8 and o.shape == (48, 64, 3) for o in out)
    for i, f in enumerate(frames):  # minterpolate passes originals through YUV: close, maybe not equal
        assert _psnr(out[i * factor], f) > 30


def test_mci_odd_and_tiny_sizes():
    for h, w in ((47, 63), (9, 11)):
        frames = [np.full((h, w, 3), v, np.uint8) for v in (0, 100, 200)]
        out = mci_clip(frames, 2)
        assert len(out) == 5 and all(o.shape == (h, w, 3) for o in out)
        assert abs(int(out[2].mean()) - 100) <= 3


def test_mci_method_keeps_originals_and_takes_any_timesteps():
    frames = _pan(3)
    out = interpolate(frames, 3, "mci")
    assert len(out) == 7 and all(np.array_equal(out[i * 3], f) for i, f in enumerate(frames))
    assert grid_for([0.3]) == 10 and grid_for([0.25, 0.5]) == 4 and grid_for([0.123456]) == 64
    (on_grid,) = mci(frames[0], frames[1], [0.3])
    assert np.array_equal(on_grid, mci_clip(frames[:2], 10)[3])
    (odd,) = mci(frames[0], frames[1], [0.123456])  # on no grid up to 1/64: the nearest 1/64
    assert np.array_equal(odd, mci_clip(frames[:2], 64)[8])


def test_cli_interpolate_roundtrip(tmp_path):
    src = write_video(coded(6), tmp_path / "in.mp4", fps=6)
    out = cli("interpolate", str(src), "-x", "2", "-o", str(tmp_path / "out.mp4"), "--method", "flow")
    assert out.returncode == 0, out.stderr
    info = probe(tmp_path / "out.mp4")
    assert info.frame_count == 11 and info.fps == 12
    assert "wrote 11 frames at 12 fps" in out.stdout and "5/5" in out.stderr


def test_cli_target_fps_and_mci(tmp_path):
    src = write_video(coded(4), tmp_path / "in.gif", fps=4)
    out = cli("interpolate", str(src), "--fps", "10", "-o", str(tmp_path / "out.mp4"), "--method", "mci")
    assert out.returncode == 0, out.stderr
    info = probe(tmp_path / "out.mp4")
    assert info.frame_count == 10 and info.fps == 10  # factor ceil(10 / 4) = 3: 3 gaps x 3 + 1


def test_cli_keeps_audio(tmp_path):
    src = tmp_path / "tone.mp4"
    subprocess.run(
        [
            ffmpeg_exe(),
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=64x48:rate=6:duration=1",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:duration=1",
            "-c:v",
            "libx264",
            "-c:a",
            "aac",
            "-shortest",
            str(src),
        ],
        check=True,
    )
    assert probe(src).has_audio
    out = cli("interpolate", str(src), "-x", "2", "-o", str(tmp_path / "out.mp4"))
    assert out.returncode == 0, out.stderr
    info = probe(tmp_path / "out.mp4")
    assert info.has_audio and info.fps == 12


def test_cli_bad_method_exits_2(tmp_path):
    src = write_video(coded(3), tmp_path / "in.mp4", fps=6)
    out = cli("interpolate", str(src), "-o", str(tmp_path / "out.mp4"), "--method", "nope")
    assert out.returncode == 2 and "method" in out.stderr
    assert not (tmp_path / "out.mp4").exists()
