"""Write every format, read it back: frames, size, fps, loop count, metadata, pixels."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from lib_vidsd.demo import moving_shapes
from lib_vidsd.video import available_formats, probe, read_video, write_video
from lib_vidsd.video.presets import PRESETS
from tests.videoclips import coded, few_colours, identify, psnr

LOSSY_PSNR_DB = 30.0  # default CRF/quality on a 128x96 synthetic clip measures 34-36 dB
META = {"title": "Cats — ünïcode", "artist": "vidsd tests", "comment": "line one\nSteps: 20, Sampler: Euler a = x; #y"}

ALL = [name for name in PRESETS if name in available_formats()]
LOSSLESS = ["apng", "png", "webp-lossless"]


def _target(tmp_path, name):
    preset = PRESETS[name.replace("-lossless", "")]
    return tmp_path / (f"out{preset.suffix}" if preset.suffix else "out_frames")


def _kwargs(name):
    preset = PRESETS[name.replace("-lossless", "")]
    kw = {"format": preset.format.value}
    if preset.codec is not None:
        kw["codec"] = preset.codec.value
    if name == "webp-lossless":
        kw["lossless"] = True
    return kw


@pytest.mark.parametrize("name", ALL + ["webp-lossless"])
def test_roundtrip_counts_size_fps_loop_metadata(tmp_path, name):
    frames = moving_shapes(10, 128, 96)
    loop = 3
    path = write_video(frames, _target(tmp_path, name), fps=10, loop=loop, **META, **_kwargs(name))
    info = probe(path)
    back = list(read_video(path))
    assert len(back) == info.frame_count == 10
    assert (info.width, info.height) == (128, 96)
    assert all(f.shape == (96, 128, 3) and f.dtype == np.uint8 for f in back)
    if name != "png":  # a folder of frames has no time base
        assert info.fps == pytest.approx(10.0, abs=1e-6)
        assert info.duration == pytest.approx(1.0, abs=0.01)
    if PRESETS[name.replace("-lossless", "")].animated_image:
        assert info.loop == loop
    if name != "png":
        assert info.metadata == META
    if name in LOSSLESS:
        assert all(np.array_equal(a, b) for a, b in zip(back, frames, strict=True))
    else:
        worst = min(psnr(a, b) for a, b in zip(back, frames, strict=True))
        assert worst > LOSSY_PSNR_DB, f"{name}: {worst:.1f} dB"


def test_gif_is_exact_for_few_colours(tmp_path):
    frames = few_colours(12)
    path = write_video(frames, tmp_path / "a.gif", fps=20)
    back = list(read_video(path))
    assert all(np.array_equal(a, b) for a, b in zip(back, frames, strict=True))
    assert probe(path).fps == pytest.approx(20.0)


@pytest.mark.parametrize("plays, netscape", [(0, 0), (1, None), (2, 1), (5, 4)])
def test_gif_loop_count_in_file(tmp_path, plays, netscape):
    """``loop`` counts plays; the GIF stores repeats (absent block = play once). PIL reads it independently."""
    path = write_video(few_colours(3), tmp_path / "a.gif", fps=10, loop=plays)
    with Image.open(path) as img:
        assert img.info.get("loop") == netscape
    assert probe(path).loop == plays


@pytest.mark.parametrize("suffix", [".webp", ".png"])
def test_webp_apng_loop_count_in_file(tmp_path, suffix):
    path = write_video(few_colours(3), tmp_path / f"a{suffix}", fps=10, loop=7)
    with Image.open(path) as img:
        assert img.info.get("loop") == 7
        assert getattr(img, "n_frames", 1) == 3


def test_png_frames_carry_text_chunks(tmp_path):
    texts = [f"frame {i}\nSteps: 4" for i in range(3)]
    out = write_video(few_colours(3), tmp_path / "frames", format="png", frame_texts=texts, title="T", artist="A")
    files = sorted(out.glob("*.png"))
    assert [f.name for f in files] == ["00000.png", "00001.png", "00002.png"]
    for f, text in zip(files, texts, strict=True):
        with Image.open(f) as img:
            assert img.text["parameters"] == text
            assert img.text["Title"] == "T" and img.text["Author"] == "A"


@pytest.mark.parametrize("fps, expected", [("30000/1001", 29.97), (12.5, 12.5), (23.976, 23.98)])
def test_fractional_fps(tmp_path, fps, expected):
    path = write_video(coded(8), tmp_path / "a.mp4", fps=fps)
    assert probe(path).fps == pytest.approx(expected, abs=0.011)


def test_fractional_fps_exact_rate_in_stream(tmp_path):
    """30000/1001 is stored as the exact rational: 30 frames last 1.001 s."""
    path = write_video(coded(30), tmp_path / "a.webm", fps="30000/1001")
    assert probe(path).duration == pytest.approx(1.001, abs=0.002)


@pytest.mark.parametrize("even, size", [("pad", (66, 50)), ("crop", (64, 48)), ("scale", (66, 50))])
def test_odd_sizes_made_even_for_yuv420(tmp_path, even, size):
    frames = [np.full((49, 65, 3), 128, np.uint8) for _ in range(3)]
    path = write_video(frames, tmp_path / "a.mp4", fps=8, even=even)
    info = probe(path)
    assert (info.width, info.height) == size


def test_odd_sizes_kept_by_image_formats(tmp_path):
    frames = [np.full((49, 65, 3), 128, np.uint8) for _ in range(3)]
    for suffix in (".gif", ".webp", ".png"):
        info = probe(write_video(frames, tmp_path / f"a{suffix}", fps=8))
        assert (info.width, info.height) == (65, 49)


def test_default_crf_and_preset_reach_the_encoder(tmp_path):
    """x264/x265 write their settings into the stream: the issue's defaults must be there."""
    path = write_video(coded(4), tmp_path / "a.mp4", fps=8)
    assert b"crf=23.0" in path.read_bytes()
    path = write_video(coded(4), tmp_path / "b.mp4", fps=8, codec="h265")
    assert b"crf=28.0" in path.read_bytes()
    path = write_video(coded(4), tmp_path / "c.mp4", fps=8, crf=18, preset="veryfast")
    data = path.read_bytes()
    assert b"crf=18.0" in data and b"subme=2" in data  # veryfast's subpel setting


def test_vp9_av1_default_crf_in_argv():
    from lib_vidsd.config import EncodeOptions
    from lib_vidsd.video.writer import _codec_args

    args = _codec_args(PRESETS["webm-vp9"], "libvpx-vp9", EncodeOptions())
    assert args[args.index("-crf") + 1] == "34" and args[args.index("-b:v") + 1] == "0"
    for name in ("webm-av1", "mp4-av1"):
        args = _codec_args(PRESETS[name], "libsvtav1", EncodeOptions())
        assert args[args.index("-crf") + 1] == "28"


def test_gif_optimize_makes_smaller_files(tmp_path):
    frames = few_colours(20, 128, 96)
    plain = write_video(frames, tmp_path / "a.gif", fps=10)
    small = write_video(frames, tmp_path / "b.gif", fps=10, gif_optimize=True)
    assert small.stat().st_size < plain.stat().st_size
    assert all(np.array_equal(a, b) for a, b in zip(read_video(small), frames, strict=True))


def test_webp_quality_changes_size(tmp_path):
    frames = moving_shapes(6, 128, 96)
    low = write_video(frames, tmp_path / "low.webp", fps=8, quality=10)
    high = write_video(frames, tmp_path / "high.webp", fps=8, quality=95)
    assert low.stat().st_size < high.stat().st_size


def test_lossy_decode_identifies_every_frame(tmp_path):
    frames = coded(24)
    for suffix in (".mp4", ".webm"):
        path = write_video(frames, tmp_path / f"a{suffix}", fps=12)
        assert [identify(f) for f in read_video(path)] == list(range(24))


@pytest.mark.parametrize("lossless", [False, True])
def test_one_frame_webp_keeps_metadata(tmp_path, lossless):
    """A single frame makes a simple WEBP (no extended header); metadata still goes in and reads back."""
    path = write_video(few_colours(1, 65, 49), tmp_path / "a.webp", fps=8, lossless=lossless, **META)
    info = probe(path)
    assert info.metadata == META and (info.width, info.height) == (65, 49)
    with Image.open(path) as img:
        assert img.size == (65, 49)
        img.load()


def test_written_files_get_the_usual_permissions(tmp_path):
    """Not tempfile's owner-only 0600/0700: other users and web servers read outputs as they read
    the WebUI's PNGs."""
    import os
    import stat

    from lib_vidsd.video import write_video
    from lib_vidsd.video.writer import DIR_MODE, FILE_MODE

    frames = [np.full((16, 16, 3), v, np.uint8) for v in (0, 128)]
    gif = write_video(frames, tmp_path / "a.gif", fps=4)
    folder = write_video(frames, tmp_path / "frames", format="png")
    mask = os.umask(0o022)
    os.umask(mask)
    assert FILE_MODE == 0o666 & ~mask and DIR_MODE == 0o777 & ~mask
    assert stat.S_IMODE(gif.stat().st_mode) == FILE_MODE
    assert stat.S_IMODE(folder.stat().st_mode) == DIR_MODE
