"""Audio-driven keyframes and weights against Giffusion's public audio fixtures, plus muxing.

Every public case of ``giffusion_audio_keyframes`` (key frames and UI text exact) and
``giffusion_audio_schedules`` (weights within the file's ``comparison_advice``, 1e-6) is run.
Deliberate difference: a digitally silent segment, where Giffusion gives NaN for every frame, gets
linear weights; the tests check that the fixture really holds NaN there.
"""

from __future__ import annotations

import functools
import json
import math
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

from lib_vidsd.errors import ConfigError, VidsdError
from lib_vidsd.keyframe.audio import (
    AUDIO_COMPONENTS,
    MEL_REDUCE,
    SAMPLE_RATE,
    audio_keyframes,
    audio_weights,
    load_audio,
)
from lib_vidsd.schedule.curves import linear_weights
from lib_vidsd.video import ffmpeg_exe, probe, write_video
from lib_vidsd.video.writer import FILE_MODE, mux_audio
from tests.rig.fixtures import fixture_path, require_fixture

pytest.importorskip("librosa")

WEIGHT_TOL = 1e-6  # comparison_advice of giffusion_audio_schedules (librosa 0.11 moves ~3e-8)
CLICKS = "keyframes/audio/clicks_120bpm_22k.wav"
SILENCE = "keyframes/audio/clicks_with_silence_22k.wav"


def _cases(name: str) -> list:
    path = fixture_path(f"keyframes/{name}_public.json")
    if path is None:
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"shared fixture {name} not found"))]
    return [pytest.param(case, id=case["id"]) for case in json.loads(path.read_text())["cases"]]


def _wav(case) -> str:
    return str(require_fixture(f"keyframes/{case['wav']}"))


@functools.cache
def _weights(wav: str, fps: float, component: str, reduce: str):
    """One weight function per file and setting for the whole module: the audio is read once."""
    return audio_weights(wav, fps, component, reduce)


def _ffmpeg(*args: str) -> None:
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", "-y", *args], check=True)


# -- key frames ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", _cases("giffusion_audio_keyframes"))
def test_keyframes_fixture(case):
    got = audio_keyframes(_wav(case), case["fps"], case["audio_component"])
    assert got.frames == case["result"]["key_frames"]
    assert got.text() == case["result"]["ui_text"]
    assert got.times[1:-1] == pytest.approx(case["onset_times_s"], abs=1e-9)
    assert got.times[0] == 0.0
    assert got.duration == got.times[-1] == case["loaded_n_samples"] / case["loaded_sr"]
    assert got.fps == case["fps"]


def test_keyframes_keep_repeated_frames():
    """Two onsets on one frame stay two keys, as in Giffusion (not de-duplicated)."""
    wav = require_fixture("keyframes/audio/clicks_over_tone_22k.wav")
    frames = audio_keyframes(wav, 10, "harmonic").frames
    assert len(frames) > len(set(frames))


def test_silent_file_gives_first_and_last_frame_only(tmp_path):
    import soundfile

    path = tmp_path / "silence.wav"
    soundfile.write(path, np.zeros(SAMPLE_RATE * 2, dtype=np.float32), SAMPLE_RATE)
    got = audio_keyframes(path, 12, "both")
    assert got.frames == [0, 24]
    assert got.text() == "0: timestamp: 0.00\n24: timestamp: 2.00"


# -- weights -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", _cases("giffusion_audio_schedules"))
def test_weights_fixture(case):
    weights = _weights(_wav(case), case["fps"], case["audio_component"], case["audio_mel_spectogram_reduce"])
    per_frame = {}
    for segment in case["segments"]:
        start, end = segment["start_frame"], segment["end_frame"]
        expected = [float(v) for v in segment["schedule"]]
        got = weights(start, end)
        assert len(got) == end - start + 1
        assert not any(math.isnan(w) for w in got)
        if all(math.isnan(v) for v in expected):  # deliberate: silence gives linear, not NaN
            assert got == linear_weights(start, end)
        else:
            assert np.max(np.abs(np.subtract(got, expected))) <= WEIGHT_TOL
        per_frame.update({start + i: w for i, w in enumerate(got)})
    # the assembled per-frame weights: later segments overwrite the shared boundary frame
    for row in case["frames"]:
        t = float(row["t"])
        if not math.isnan(t):
            assert per_frame[row["frame"]] == pytest.approx(t, abs=WEIGHT_TOL)


def test_silent_segment_is_linear_where_giffusion_gives_nan():
    path = fixture_path("keyframes/giffusion_audio_schedules_public.json")
    if path is None:
        pytest.skip("shared fixture giffusion_audio_schedules not found")
    case = next(c for c in json.loads(path.read_text())["cases"] if c["id"].endswith("__percussive__max__k0_12_18"))
    anchor = case["segments"][1]
    assert (anchor["start_frame"], anchor["end_frame"]) == (12, 18)
    assert all(v == "nan" for v in anchor["schedule"])  # what Giffusion gave for 1.2-1.8 s of digital zero
    weights = audio_weights(require_fixture(SILENCE), 10, "percussive", "max")
    assert weights(12, 18) == linear_weights(12, 18)
    assert weights(0, 12)[-1] == 1.0  # a segment with sound is unaffected


def test_single_frame_and_past_the_end_segments_are_linear():
    weights = _weights(str(require_fixture(CLICKS)), 10, "both", "max")
    assert weights(5, 5) == [0.0]
    assert weights(40, 45) == linear_weights(40, 45)  # the audio ends at frame 30
    short = weights(28, 29)  # 0.1 s: shorter than one FFT window, padded as in Giffusion
    assert len(short) == 2 and short[-1] == 1.0


@pytest.mark.parametrize("reduce", MEL_REDUCE)
def test_weights_rise_to_one(reduce):
    got = _weights(str(require_fixture(CLICKS)), 10, "both", reduce)(0, 30)
    assert got[-1] == 1.0
    assert all(b >= a for a, b in zip(got, got[1:], strict=False))


# -- other inputs ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".mp3", ".m4a"])
def test_compressed_audio_gives_the_wav_keyframes_within_one_frame(tmp_path, suffix):
    wav = require_fixture(CLICKS)
    coded = tmp_path / f"clicks{suffix}"
    _ffmpeg("-i", str(wav), "-b:a", "128k", str(coded))
    samples, sr = load_audio(coded)
    assert sr == SAMPLE_RATE and samples.dtype == np.float32 and samples.ndim == 1
    assert abs(len(samples) - 3 * SAMPLE_RATE) < SAMPLE_RATE // 20  # within 50 ms of the WAV's 3 s
    expected = audio_keyframes(wav, 10).frames
    got = audio_keyframes(coded, 10).frames
    assert len(got) == len(expected)
    assert max(abs(a - b) for a, b in zip(got, expected, strict=True)) <= 1


def test_stereo_is_averaged(tmp_path):
    import soundfile

    left = np.linspace(-0.5, 0.5, SAMPLE_RATE, dtype=np.float32)
    path = tmp_path / "stereo.flac"
    soundfile.write(path, np.stack([left, np.zeros_like(left)], axis=1), SAMPLE_RATE)
    samples, sr = load_audio(path)
    assert sr == SAMPLE_RATE
    np.testing.assert_allclose(samples, left / 2, atol=1e-4)


# -- errors ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fps", [0, -5, float("nan"), float("inf"), True, "10", SAMPLE_RATE + 1])
def test_bad_fps(fps):
    wav = require_fixture(CLICKS)
    for call in (lambda: audio_keyframes(wav, fps), lambda: audio_weights(wav, fps)):
        with pytest.raises(ConfigError) as e:
            call()
        assert e.value.field == "fps"


def test_bad_component_and_reduce_list_the_choices():
    wav = require_fixture(CLICKS)
    with pytest.raises(ConfigError, match="allowed: both, percussive, harmonic") as e:
        audio_keyframes(wav, 10, "drums")
    assert e.value.field == "audio_component" and tuple(e.value.allowed) == AUDIO_COMPONENTS
    with pytest.raises(ConfigError) as e:
        audio_weights(wav, 10, "vocals")
    assert e.value.field == "audio_component"
    with pytest.raises(ConfigError, match="allowed: max, mean, median") as e:
        audio_weights(wav, 10, "both", "sum")
    assert e.value.field == "audio_reduce"


def test_config_enums_are_accepted():
    from lib_vidsd.config import AudioComponent, MelReduce

    wav = require_fixture(CLICKS)
    assert audio_keyframes(wav, 10, AudioComponent.BOTH).frames == audio_keyframes(wav, 10, "both").frames
    assert audio_weights(wav, 10, AudioComponent.BOTH, MelReduce.MEAN)(0, 9) == _weights(str(wav), 10, "both", "mean")(
        0, 9
    )


def test_descending_segment_is_refused():
    with pytest.raises(ConfigError) as e:
        _weights(str(require_fixture(CLICKS)), 10, "both", "max")(10, 5)
    assert e.value.field == "key_frames"


def test_empty_and_tiny_files(tmp_path):
    import soundfile

    empty, tiny = tmp_path / "empty.wav", tmp_path / "tiny.wav"
    soundfile.write(empty, np.zeros(0, np.float32), SAMPLE_RATE)
    soundfile.write(tiny, np.full(100, 0.1, np.float32), 44100)
    with pytest.raises(ConfigError, match="no samples") as e:
        audio_keyframes(empty, 10)
    assert e.value.field == "audio"
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # librosa's "n_fft too large" is silenced for short audio
        assert audio_keyframes(tiny, 10).frames == [0, 0]
        assert audio_weights(tiny, 10)(0, 3)[-1] == 1.0
    with pytest.raises(ConfigError) as e:
        load_audio(tiny, sr=0)
    assert e.value.field == "sample_rate"


def test_missing_and_unreadable_files(tmp_path):
    with pytest.raises(ConfigError, match="no such file") as e:
        load_audio(tmp_path / "nope.wav")
    assert e.value.field == "audio" and "ffmpeg can read" in str(e.value)
    junk = tmp_path / "notes.mp3"
    junk.write_text("not audio at all")
    with pytest.raises(ConfigError) as e:
        audio_keyframes(junk, 10)
    assert e.value.field == "audio" and e.value.hint  # ffmpeg's reason
    fake_wav = tmp_path / "fake.wav"
    fake_wav.write_bytes(b"RIFF" + bytes(40))
    with pytest.raises(ConfigError):
        load_audio(fake_wav)


def test_video_without_audio_track(tmp_path):
    clip = write_video([np.zeros((16, 16, 3), np.uint8)] * 4, tmp_path / "mute.mp4", fps=8)
    with pytest.raises(ConfigError, match="no audio stream") as e:
        load_audio(clip)
    assert e.value.field == "audio"


def test_missing_librosa_names_the_field_and_the_pin(monkeypatch):
    monkeypatch.setitem(sys.modules, "librosa", None)  # makes ``import librosa`` raise ImportError
    with pytest.raises(VidsdError, match=r"audio: .*pip install 'librosa==0\.11\.0'"):
        load_audio(require_fixture(CLICKS))


# -- muxing ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".mp4", ".webm"])
def test_mux_audio_adds_a_track_and_keeps_the_frames(tmp_path, suffix):
    wav = require_fixture(CLICKS)
    frames = [np.full((32, 32, 3), 20 * i, np.uint8) for i in range(12)]  # 1.5 s at 8 fps, audio is 3 s
    clip = write_video(frames, tmp_path / f"clip{suffix}", fps=8, title="audio test")
    before = probe(clip)
    assert not before.has_audio
    out = mux_audio(clip, wav, start=0.5, out_path=tmp_path / f"with_audio{suffix}")
    info = probe(out)
    assert info.has_audio and info.frame_count == 12 and info.metadata.get("title") == "audio test"
    assert os.stat(out).st_mode & 0o777 == FILE_MODE
    assert probe(clip) == before  # the source is untouched when out_path is given
    samples, _ = load_audio(out)  # a video's audio track is read through ffmpeg
    assert abs(len(samples) / SAMPLE_RATE - 1.5) < 0.1
    assert mux_audio(clip, wav) == clip and probe(clip).has_audio  # in place by default
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([clip.name, out.name])  # no temp files left


def test_mux_audio_refusals(tmp_path):
    wav = require_fixture(CLICKS)
    frames = [np.zeros((16, 16, 3), np.uint8)] * 3
    gif = write_video(frames, tmp_path / "a.gif", fps=8)
    with pytest.raises(ConfigError) as e:
        mux_audio(gif, wav)
    assert e.value.field == "format" and e.value.value == "gif"
    clip = write_video(frames, tmp_path / "a.mp4", fps=8)
    with pytest.raises(ConfigError) as e:
        mux_audio(clip, tmp_path / "missing.wav")
    assert e.value.field == "audio"
    with pytest.raises(ConfigError) as e:
        mux_audio(clip, wav, start=-1)
    assert e.value.field == "audio_start"
    mute = write_video(frames, tmp_path / "mute.mp4", fps=8)
    with pytest.raises(ConfigError, match="audio track") as e:
        mux_audio(clip, mute)
    assert e.value.field == "audio"
    assert not probe(clip).has_audio
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.gif", "a.mp4", "mute.mp4"]
