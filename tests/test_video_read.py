"""Reading: resampling, selection, fitting, folders, laziness, probe and audio."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from PIL import Image

from lib_vidsd.video import ffmpeg_exe, fit_frame, list_images, probe, read_video, write_video
from tests.videoclips import coded, identify


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """The same 24 coded frames at 12 fps as a video (ffmpeg path) and an APNG (PIL path)."""
    d = tmp_path_factory.mktemp("src")
    frames = coded(24)
    return {
        "mp4": write_video(frames, d / "a.mp4", fps=12),
        "apng": write_video(frames, d / "a.png", fps=12),
        "gif": write_video(frames, d / "a.gif", fps=12.5),  # 8 cs per frame: exact in GIF
    }


@pytest.mark.parametrize("kind", ["mp4", "apng", "gif"])
def test_native_rate(sources, kind):
    reader = read_video(sources[kind])
    got = [identify(f) for f in reader]
    assert got == list(range(24)) and reader.expected_frames == 24


@pytest.mark.parametrize("kind", ["mp4", "apng"])
def test_resample_down_and_up(sources, kind):
    half = read_video(sources[kind], fps=6)
    assert [identify(f) for f in half] == list(range(0, 24, 2))
    assert half.fps == 6 and half.expected_frames == 12
    double = read_video(sources[kind], fps=24)
    ids = [identify(f) for f in double]
    assert len(ids) == 48 and double.expected_frames == 48
    assert sorted(set(ids)) == list(range(24)) and all(ids.count(i) == 2 for i in range(24))


@pytest.mark.parametrize("kind", ["mp4", "apng"])
def test_selection_after_resampling(sources, kind):
    reader = read_video(sources[kind], fps=6, start=2, end=11, every=3)
    assert [identify(f) for f in reader] == [4, 10, 16]
    assert reader.expected_frames == 3
    reader = read_video(sources[kind], start=5, max_frames=4)
    assert [identify(f) for f in reader] == [5, 6, 7, 8]


@pytest.mark.parametrize(
    "fit, probe_px, expected",
    [("resize", (0, 0), None), ("crop", (0, 0), None), ("pad", (0, 0), (0, 0, 0))],
)
def test_fit_modes(fit, probe_px, expected):
    frame = np.zeros((48, 64, 3), np.uint8)
    frame[:, :32] = (255, 0, 0)
    frame[:, 32:] = (0, 0, 255)
    out = fit_frame(frame, (32, 32), fit)
    assert out.shape == (32, 32, 3)
    if fit == "pad":  # 64x48 fits as 32x24: black bars top and bottom
        assert tuple(out[0, 16]) == (0, 0, 0) and tuple(out[16, 4]) == (255, 0, 0)
    elif fit == "crop":  # 48x48 centre: left quarter red, right quarter blue
        assert out[16, 2, 0] > 200 and out[16, 29, 2] > 200
    else:  # stretched: halves stay halves
        assert out[16, 2, 0] > 200 and out[16, 29, 2] > 200 and tuple(out[0, 16]) != (0, 0, 0)


def test_read_with_size(sources):
    frames = list(read_video(sources["mp4"], size=(40, 40), fit="pad", max_frames=3))
    assert len(frames) == 3 and all(f.shape == (40, 40, 3) for f in frames)


def test_folder_natural_order_and_mixed_suffixes(tmp_path):
    frames = coded(12)
    for i, f in enumerate(frames):
        ext = ".jpg" if i == 5 else ".png"
        Image.fromarray(f).save(tmp_path / f"frame{i + 1}{ext}", quality=98)
    (tmp_path / "readme.txt").write_text("not an image")
    assert [p.name for p in list_images(tmp_path)][:3] == ["frame1.png", "frame2.png", "frame3.png"]
    reader = read_video(tmp_path, every=2)
    assert [identify(f) for f in reader] == list(range(0, 12, 2))
    info = probe(tmp_path)
    assert info.kind == "folder" and info.frame_count == 12 and (info.width, info.height) == (64, 48)


def test_still_image_is_one_frame(tmp_path):
    Image.fromarray(coded(1)[0]).save(tmp_path / "a.jpg")
    info = probe(tmp_path / "a.jpg")
    assert info.kind == "image" and info.frame_count == 1
    assert len(list(read_video(tmp_path / "a.jpg"))) == 1


def test_lazy_reading_holds_few_frames(tmp_path):
    """Taking 3 frames of a 300-frame clip must not decode or hold the whole clip."""
    path = write_video(coded(300, 128, 128), tmp_path / "long.mp4", fps=24, preset="ultrafast")
    one_frame = 128 * 128 * 3
    tracemalloc.start()
    try:
        it = iter(read_video(path))
        first = [next(it) for _ in range(3)]
        it.close()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [identify(f) % 12 for f in first] == [0, 1, 2]
    assert peak < 20 * one_frame, f"peak {peak} bytes"


def test_probe_video(sources):
    info = probe(sources["mp4"])
    assert info.kind == "video" and info.codec == "h264"
    assert (info.width, info.height, info.frame_count) == (64, 48, 24)
    assert info.fps == pytest.approx(12) and info.duration == pytest.approx(2.0, abs=0.01)
    assert info.has_audio is False


@pytest.fixture(scope="module")
def with_audio(tmp_path_factory):
    """A 2 s clip with a sine tone, made by ffmpeg's own test sources (argv, no shell)."""
    import subprocess

    out = tmp_path_factory.mktemp("audio") / "tone.mp4"
    subprocess.run(
        [
            ffmpeg_exe(),
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=64x48:rate=12:duration=2",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:duration=2",
            "-c:v",
            "libx264",
            "-c:a",
            "aac",
            "-shortest",
            str(out),
        ],
        check=True,
    )
    return out


@pytest.mark.parametrize("suffix", [".mp4", ".webm"])
def test_audio_track_copied_from_source(tmp_path, with_audio, suffix):
    assert probe(with_audio).has_audio
    path = write_video(coded(24), tmp_path / f"a{suffix}", fps=12, audio_from=str(with_audio))
    info = probe(path)
    assert info.has_audio and info.frame_count == 24
    assert info.duration == pytest.approx(2.0, abs=0.1)


def test_audio_refused_where_impossible(tmp_path, with_audio, sources):
    from lib_vidsd.errors import ConfigError

    with pytest.raises(ConfigError) as e:
        write_video(coded(4), tmp_path / "a.gif", fps=8, audio_from=str(with_audio))
    assert e.value.field == "audio_from"
    with pytest.raises(ConfigError, match="audio track"):
        write_video(coded(4), tmp_path / "a.mp4", fps=8, audio_from=str(sources["mp4"]))
    assert list(tmp_path.iterdir()) == []


def test_rgba_and_float_frames_accepted(tmp_path):
    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[..., 0] = 200
    flt = np.full((16, 16, 3), 0.5, np.float32)
    img = Image.new("L", (16, 16), 77)
    path = write_video([rgba, flt, img], tmp_path / "a.png", fps=4)
    back = list(read_video(path))
    assert tuple(back[0][0, 0]) == (200, 0, 0) and tuple(back[1][0, 0]) == (128, 128, 128)
    assert tuple(back[2][0, 0]) == (77, 77, 77)


@pytest.mark.parametrize("suffix", [".mp4", ".webm", ".gif", ".png", ".webp"])
@pytest.mark.parametrize("fps, expected", [(6, list(range(0, 24, 2))), (5, [0, 2, 4, 7, 9, 12, 14, 16, 19, 21])])
def test_resampling_is_the_same_for_every_container(tmp_path, suffix, fps, expected):
    """Each container stores time differently (1/12288 s, ms, 1/100 s, fractions); the frame on screen
    at k / fps is picked alike for all of them, by ffmpeg or by PIL."""
    path = write_video(coded(24), tmp_path / f"a{suffix}", fps=12)
    assert [identify(f) for f in read_video(path, fps=fps)] == expected


def test_gif_timing_from_chunks_without_decoding(tmp_path):
    """Delays come from the GIF's own blocks; under 2/100 s they count as 1/10 s, as browsers show them."""
    frames = [Image.fromarray(f) for f in coded(4)]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:], duration=[0, 50, 50, 1000], loop=0)
    info = probe(tmp_path / "a.gif")
    assert info.frame_count == 4 and info.duration == pytest.approx(1.2) and info.loop == 0
    assert [identify(f) for f in read_video(tmp_path / "a.gif")] == [0, 1, 2, 3]
