"""Every failure says what went wrong and leaves no partial output behind."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
from pathlib import Path

import numpy as np
import pytest

from lib_vidsd.errors import ConfigError, DecodeError, EncodeError, Interrupted
from lib_vidsd.progress import StopFlag
from lib_vidsd.video import available_formats, ffmpeg_exe, probe, read_video, set_ffmpeg_path, write_video
from tests.videoclips import coded


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_unknown_format_names_field_and_choices(tmp_path):
    with pytest.raises(ConfigError) as e:
        write_video(coded(2), tmp_path / "a.avi", fps=8)
    assert e.value.field == "format" and "mp4" in str(e.value) and "webm" in str(e.value)
    with pytest.raises(ConfigError) as e:
        write_video(coded(2), tmp_path / "a.mp4", fps=8, format="mkv")
    assert e.value.field == "format"
    with pytest.raises(ConfigError) as e:
        write_video(coded(2), tmp_path / "a.gif", fps=8, codec="vp9")
    assert e.value.field == "codec" and "webm:vp9" in str(e.value)
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"fps": 0}, "fps"),
        ({"fps": "x/y"}, "fps"),
        ({"crf": 64}, "crf"),
        ({"preset": "warp"}, "preset"),
        ({"loop": -1}, "loop"),
        ({"quality": 101}, "quality"),
        ({"even": "odd"}, "even"),
        ({"bogus": 1}, "bogus"),
    ],
)
def test_bad_options_name_the_field(tmp_path, kwargs, field):
    kwargs = {"fps": 8, **kwargs}
    with pytest.raises(ConfigError) as e:
        write_video(coded(2), tmp_path / "a.mp4", **kwargs)
    assert e.value.field == field
    assert _leftovers(tmp_path) == []


def test_crf_above_codec_range(tmp_path):
    with pytest.raises(ConfigError, match="0..51"):
        write_video(coded(2), tmp_path / "a.mp4", fps=8, crf=60)


@pytest.fixture
def ffmpeg_without_x265(tmp_path):
    """An ffmpeg whose encoder list lacks libx265, via the VIDSD_FFMPEG override."""
    real = ffmpeg_exe()
    fake = tmp_path / "bin" / "ffmpeg"
    fake.parent.mkdir()
    fake.write_text(
        "#!/bin/sh\n"
        'for a in "$@"; do [ "$a" = "-encoders" ] && { "' + real + '" "$@" | grep -v libx265; exit 0; }; done\n'
        'exec "' + real + '" "$@"\n'
    )
    fake.chmod(0o755)
    os.environ["VIDSD_FFMPEG"] = str(fake)
    try:
        yield fake
    finally:
        del os.environ["VIDSD_FFMPEG"]


def test_missing_encoder_error_lists_available(tmp_path, ffmpeg_without_x265):
    formats = available_formats()
    assert "mp4-h265" not in formats and "mp4-h264" in formats
    out = tmp_path / "out"
    with pytest.raises(EncodeError) as e:
        write_video(coded(2), out / "a.mp4", fps=8, codec="h265")
    message = str(e.value)
    assert "libx265" in message and "mp4-h264" in message and "mp4-h265," not in message
    assert not out.exists()  # refused before anything was created


def test_ffmpeg_override_must_exist(tmp_path):
    set_ffmpeg_path(tmp_path / "nope")
    try:
        with pytest.raises(Exception, match="does not exist"):
            write_video(coded(2), tmp_path / "a.mp4", fps=8)
    finally:
        set_ffmpeg_path(None)


def test_unwritable_folder(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(EncodeError, match="cannot write in folder"):
        write_video(coded(2), blocker / "a.mp4", fps=8)
    with pytest.raises(EncodeError, match="cannot write in folder"):
        write_video(coded(2), blocker / "frames", fps=8, format="png")
    assert _leftovers(tmp_path) == ["file"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_folder(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        with pytest.raises(EncodeError, match="cannot write in folder"):
            write_video(coded(2), ro / "a.mp4", fps=8)
    finally:
        ro.chmod(0o755)


def _ffmpeg_children() -> list[int]:
    me = os.getpid()
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                comm = (entry / "comm").read_text().strip()
            except OSError:
                continue
            if int(fields[1]) == me and "ffmpeg" in comm:
                pids.append(int(entry.name))
    return pids


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc to find the ffmpeg child")
def test_ffmpeg_killed_mid_write(tmp_path):
    frames = coded(8, 256, 256)

    def killer():
        for i in range(200):
            if i == 5:
                for pid in _ffmpeg_children():
                    os.kill(pid, signal.SIGKILL)
            yield frames[i % 8]

    with pytest.raises(EncodeError) as e:
        write_video(killer(), tmp_path / "a.mp4", fps=8)
    assert "killed by signal 9" in str(e.value)
    assert _leftovers(tmp_path) == []


def test_encoder_failure_carries_ffmpeg_words(tmp_path):
    """libwebp refuses pictures wider than 16383 px: the error quotes ffmpeg and nothing is left."""
    with pytest.raises(EncodeError) as e:
        write_video([np.zeros((2, 16400, 3), np.uint8)], tmp_path / "a.webp", fps=8)
    assert "ffmpeg failed" in str(e.value) and "16383" in e.value.stderr
    assert _leftovers(tmp_path) == []


def test_empty_frame_list(tmp_path):
    for name, kw in (("a.mp4", {}), ("a.gif", {}), ("frames", {"format": "png"})):
        with pytest.raises(ConfigError) as e:
            write_video([], tmp_path / name, fps=8, **kw)
        assert e.value.field == "frames" and "at least 1" in str(e.value)
    assert _leftovers(tmp_path) == []


def test_mixed_frame_sizes(tmp_path):
    frames = coded(3) + coded(1, 32, 32)
    for name, kw in (("a.mp4", {}), ("a.webp", {}), ("frames", {"format": "png"})):
        with pytest.raises(ConfigError) as e:
            write_video(frames, tmp_path / name, fps=8, **kw)
        assert e.value.field == "frames[3]" and "32x32" in str(e.value) and "64x48" in str(e.value)
    assert _leftovers(tmp_path) == []


def test_bad_frame_shape(tmp_path):
    with pytest.raises(ConfigError, match=r"frames\[0\]"):
        write_video([np.zeros((4, 4, 2), np.uint8)], tmp_path / "a.mp4", fps=8)


def test_stop_token_interrupts_and_cleans_up(tmp_path):
    stop = StopFlag()

    def frames():
        for i, f in enumerate(coded(20)):
            if i == 4:
                stop.stop()
            yield f

    for name, kw in (("a.mp4", {}), ("frames", {"format": "png"})):
        with pytest.raises(Interrupted):
            write_video(frames(), tmp_path / name, fps=8, stop=stop, **kw)
    assert _leftovers(tmp_path) == []


def test_temporary_name_while_writing(tmp_path):
    target = tmp_path / "a.mp4"
    seen = []

    def frames():
        for f in coded(4):
            seen.append((target.exists(), [p.name for p in tmp_path.iterdir()]))
            yield f

    write_video(frames(), target, fps=8)
    assert all(not exists for exists, _ in seen)
    assert all(
        len(names) == 1 and names[0].startswith(".a.mp4.") and names[0].endswith(".part") for _, names in seen[1:]
    )
    assert _leftovers(tmp_path) == ["a.mp4"]


def test_existing_output_kept_when_rewrite_fails(tmp_path):
    target = write_video(coded(3), tmp_path / "a.mp4", fps=8)
    before = target.read_bytes()
    with pytest.raises(ConfigError):
        write_video(coded(2) + coded(1, 32, 32), target, fps=8)
    assert target.read_bytes() == before


# --- reading broken input ---------------------------------------------------------------------


def test_missing_input(tmp_path):
    with pytest.raises(DecodeError, match="no such file"):
        probe(tmp_path / "nope.mp4")


def test_corrupt_input(tmp_path):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(np.random.default_rng(0).integers(0, 256, 20000, dtype=np.uint8).tobytes())
    with pytest.raises(DecodeError) as e:
        list(read_video(junk))
    assert "junk.mp4" in str(e.value)


def test_truncated_video(tmp_path):
    path = write_video(coded(48, 128, 96), tmp_path / "a.mp4", fps=12, crf=10)
    data = path.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(DecodeError) as e:
        list(read_video(cut))
    assert "cut.mp4" in str(e.value)


def test_truncated_gif(tmp_path):
    path = write_video(coded(12), tmp_path / "a.gif", fps=12)
    cut = tmp_path / "cut.gif"
    cut.write_bytes(path.read_bytes()[:300])
    with pytest.raises(DecodeError, match="cut.gif"):
        probe(cut)
        list(read_video(cut))


def test_folder_without_images(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(DecodeError, match="holds no images"):
        read_video(tmp_path)


def test_unreadable_image_in_folder(tmp_path):
    write_video(coded(2), tmp_path / "f", format="png", fps=8)
    (tmp_path / "f" / "00002.png").write_bytes(b"not a png")
    with pytest.raises(DecodeError, match="00002.png"):
        list(read_video(tmp_path / "f"))


def test_read_options_validated(tmp_path):
    path = write_video(coded(2), tmp_path / "a.gif", fps=8)
    for kwargs, field in (
        ({"every": 0}, "every"),
        ({"fit": "zoom"}, "fit"),
        ({"size": (0, 10)}, "size"),
        ({"start": 4, "end": 2}, "end"),
        ({"fps": -1}, "fps"),
    ):
        with pytest.raises(ConfigError) as e:
            read_video(path, **kwargs)
        assert e.value.field == field


def test_no_leftover_ffmpeg_after_partial_read(tmp_path):
    path = write_video(coded(60), tmp_path / "a.mp4", fps=12)
    reader = iter(read_video(path))
    next(reader)
    reader.close()
    assert _ffmpeg_children() == []
    subprocess.run(["true"])  # reap nothing else
