"""The command line: frames out of a video, frames back into a video, probe, formats, demo."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from lib_vidsd.video import probe, write_video
from tests.videoclips import coded, identify

ROOT = Path(__file__).resolve().parents[1]


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lib_vidsd", *args], cwd=ROOT, capture_output=True, text=True)


def test_frames_then_encode_roundtrip(tmp_path):
    src = write_video(coded(24), tmp_path / "src.mp4", fps=12)
    out = cli("frames", str(src), "-o", str(tmp_path / "frames"), "--fps", "6")
    assert out.returncode == 0, out.stderr
    files = sorted((tmp_path / "frames").glob("*.png"))
    assert len(files) == 12 and "wrote 12 frames at 6 fps" in out.stdout
    out = cli("encode", str(tmp_path / "frames"), "-o", str(tmp_path / "re.mp4"), "--fps", "12", "--crf", "20")
    assert out.returncode == 0, out.stderr
    info = probe(tmp_path / "re.mp4")
    assert info.frame_count == 12 and info.fps == 12
    from lib_vidsd.video import read_video

    assert [identify(f) for f in read_video(tmp_path / "re.mp4")] == list(range(0, 24, 2))
    assert "12/12" in out.stderr  # the progress bar reached the end


def test_encode_options_from_config(tmp_path):
    write_video(coded(4), tmp_path / "f", format="png", fps=8)
    out = cli(
        "encode",
        str(tmp_path / "f"),
        "-o",
        str(tmp_path / "a.gif"),
        "--loop",
        "2",
        "--title",
        "hello",
        "--no-gif-palette",
        "--gif-dither",
        "bayer",
    )
    assert out.returncode == 0, out.stderr
    info = probe(tmp_path / "a.gif")
    assert info.loop == 2 and info.metadata["title"] == "hello"
    assert abs(info.fps - 8) < 0.2  # GIF stores delays in 1/100 s: 12 and 13 alternate


def test_cli_errors_name_the_field(tmp_path):
    write_video(coded(2), tmp_path / "f", format="png", fps=8)
    out = cli("encode", str(tmp_path / "f"), "-o", str(tmp_path / "a.mp4"), "--crf", "99")
    assert out.returncode == 2 and "crf: got" in out.stderr
    out = cli("frames", str(tmp_path / "missing.mp4"), "-o", str(tmp_path / "x"))
    assert out.returncode == 2 and "no such file" in out.stderr


def test_probe_and_formats(tmp_path):
    src = write_video(coded(6), tmp_path / "a.webm", fps=8, title="T")
    out = cli("probe", str(src))
    assert out.returncode == 0 and "frame_count: 6" in out.stdout and "'title': 'T'" in out.stdout
    out = cli("formats")
    assert out.returncode == 0 and "mp4-h264" in out.stdout and "gif" in out.stdout


def test_ffmpeg_flag_overrides(tmp_path):
    out = cli("--ffmpeg", str(tmp_path / "no-ffmpeg"), "formats")
    assert out.returncode == 2 and "does not exist" in out.stderr


def test_demo_writes_every_available_format(tmp_path):
    out = cli("demo", "-o", str(tmp_path / "demo"), "--frames", "8")  # the AnimateDiff chain on the tiny model
    assert out.returncode == 0, out.stderr
    from lib_vidsd.video import available_formats

    lines = [ln for ln in out.stdout.splitlines() if ln.strip()]
    assert len(lines) == len(available_formats())
    for line in lines:
        path = Path(line.split()[-1])
        assert path.exists() and probe(path).frame_count == 8


def test_animate_command_writes_video_and_infotext(tmp_path):
    out = cli(
        "animate",
        "--frames",
        "6",
        "--context",
        "4",
        "--steps",
        "2",
        "--width",
        "64",
        "--height",
        "64",
        "--seed",
        "11",
        "--prompt",
        "a dog\n0: sitting\n3: jumping",
        "-o",
        str(tmp_path),
        "--format",
        "webp,mp4",
    )
    assert out.returncode == 0, out.stderr
    assert "tiny built-in" in out.stderr and "2/2" in out.stderr
    assert probe(tmp_path / "animatediff-11.webp").frame_count == 6
    text = (tmp_path / "animatediff-11.txt").read_text()
    assert "Seed: 11" in text and "batch_size: 4" in text
    bad = cli("animate", "--context", "99", "-o", str(tmp_path))
    assert bad.returncode == 2 and "batch_size" in bad.stderr
