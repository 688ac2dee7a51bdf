"""Steps animation core: timing plans, decoding, files, metadata, interrupted runs, the CLI pipeline."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from lib_vidsd.config import StepsAnimationParams, validate
from lib_vidsd.errors import ConfigError, Interrupted
from lib_vidsd.steps import LATENT_RGB_FACTORS, StepRecorder, latents_to_rgb, movie_plan, render_steps


def _params(**kw):
    return validate(StepsAnimationParams, enabled=True, **kw)


def _latents(n=6, h=8, w=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(4, h, w, generator=g) * (i + 1) / n for i in range(n)]


@pytest.mark.parametrize("interpolation", ["none", "blend", "flow", "mci"])
@pytest.mark.parametrize("steps,duration", [(20, 4.0), (7, 1.5), (3, 2.0)])
def test_plan_fills_the_duration_within_one_frame(interpolation, steps, duration):
    plan = movie_plan(steps, _params(interpolation=interpolation, duration=duration, fps=24))
    assert abs(len(plan.positions) / plan.fps - duration) <= 1 / plan.fps
    assert plan.positions[0] == 0 and plan.positions[-1] == steps - 1
    assert all(b >= a for a, b in zip(plan.positions, plan.positions[1:], strict=False))
    if interpolation == "none":
        assert plan.positions == list(range(steps)) and plan.fps == pytest.approx(steps / duration)
    else:
        assert plan.fps == 24


def test_plan_hold_and_limits():
    plan = movie_plan(10, _params(duration=2, hold=1.5))
    assert plan.hold == round(1.5 * 5) and plan.frames == 10 + 8
    with pytest.raises(ConfigError, match="duration"):
        movie_plan(100, _params(duration=0.2, codec="gif"))  # 500 fps: GIF holds at most 50
    with pytest.raises(ConfigError, match="skip_steps"):
        movie_plan(0, _params())


def test_fast_decode_is_the_published_linear_map():
    lat = torch.zeros(1, 4, 2, 2)
    lat[0, 0] = 1.0  # channel 0 alone: rgb = row 0 of the matrix, then (x + 1) / 2
    want = (torch.tensor(LATENT_RGB_FACTORS["sd15"][0]) + 1) / 2
    assert torch.allclose(latents_to_rgb(lat)[0, :, 0, 0], want)
    x = torch.randn(3, 4, 5, 6)
    assert latents_to_rgb(x, "sdxl").shape == (3, 3, 5, 6)
    assert (latents_to_rgb(x * 100) >= 0).all() and (latents_to_rgb(x * 100) <= 1).all()
    with pytest.raises(ConfigError, match="family"):
        latents_to_rgb(x, "sd3")


def test_recorder_counts_every_callback_and_separates_passes():
    rec = StepRecorder()
    for i in range(3):
        rec.on_callback({"x": torch.full((2, 4, 2, 2), float(i)), "i": i, "denoised": torch.full((2, 4, 2, 2), -i)})
    rec.next_pass()
    rec.on_callback({"x": torch.ones(2, 4, 4, 4), "i": 0})  # a sampler without "denoised"
    assert rec.callbacks == 4 and rec.batch_size() == 2
    seq = rec.sequence(1)
    assert [float(s[0, 0, 0]) for s in seq] == [0, -1, -2, 1]
    assert len(rec.sequence(0, passes={0})) == 3 and len(rec.sequence(0, skip=2)) == 2
    noisy = StepRecorder(capture="noisy")
    noisy.on_callback({"x": torch.zeros(1, 4, 2, 2), "denoised": torch.ones(1, 4, 2, 2), "i": 0})
    assert float(noisy.sequence(0)[0].sum()) == 0


def _decode(latents):
    return latents_to_rgb(latents)


def test_render_writes_frames_movie_and_metadata(tmp_path):
    from lib_vidsd.video import probe

    params = _params(duration=2, skip_steps=2, delete_frames=False, title="", artist="me", codec="webp")
    result = render_steps(
        _latents(8), _decode, params, root=tmp_path, stem="00001-7", size=(64, 48), comment="a cat, Steps: 8",
        prompt="a cat"
    )  # fmt: skip
    assert result.steps == 6 and result.movie == tmp_path / "steps" / "00001-7.webp"
    info = probe(result.movie)
    assert info.frame_count == 6 and info.fps == pytest.approx(3, rel=1e-2) and (info.width, info.height) == (64, 48)
    frames = sorted((tmp_path / "steps" / "frames" / "00001-7").glob("*.png"))
    assert len(frames) == 6
    from PIL import Image

    assert Image.open(frames[0]).text["parameters"] == "a cat, Steps: 8"
    mp4 = render_steps(
        _latents(4), _decode, _params(duration=1, artist="me", resolution="half"), root=tmp_path, stem="b",
        size=(64, 48), comment="a cat, Steps: 4", prompt="a cat",
    )  # fmt: skip
    meta = probe(mp4.movie).metadata
    assert meta["title"] == "a cat" and meta["artist"] == "me" and meta["comment"] == "a cat, Steps: 4"
    assert (probe(mp4.movie).width, probe(mp4.movie).height) == (32, 24)
    assert not (tmp_path / "steps" / "frames" / "b").exists()  # deleted once the movie exists


def test_frames_only_and_folders_stay_inside(tmp_path):
    result = render_steps(
        _latents(3), _decode, _params(create_movie=False, frames_folder="deep/er"), root=tmp_path, stem="s",
        size=(16, 16),
    )  # fmt: skip
    assert result.movie is None and len(list((tmp_path / "deep" / "er" / "s").glob("*.png"))) == 3
    for bad in ("../out", "/tmp/x", "a/../../b", "C:/x"):
        with pytest.raises(ConfigError) as e:
            _params(movie_folder=bad)
        assert e.value.field == "movie_folder"
    (tmp_path / "link").symlink_to(tmp_path.parent)
    with pytest.raises(ConfigError, match="frames_folder"):
        render_steps(_latents(2), _decode, _params(frames_folder="link"), root=tmp_path, stem="../../x", size=(8, 8))


def test_failure_removes_the_frames_and_leaves_no_partial_file(tmp_path, monkeypatch):
    from lib_vidsd.video import writer

    calls = []
    original = writer.write_video

    def failing(frames, path, **kw):
        calls.append(path)
        if kw.get("format") != "png":
            raise Interrupted("stopped while encoding")
        return original(frames, path, **kw)

    monkeypatch.setattr("lib_vidsd.video.write_video", failing)
    with pytest.raises(Interrupted):
        render_steps(_latents(3), _decode, _params(), root=tmp_path, stem="s", size=(16, 16))
    assert len(calls) == 2
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_pipeline_interrupted_with_and_without_run_incomplete(tmp_path):
    from lib_vidsd.config import GenerationParams
    from lib_vidsd.pipelines.animate import load_sd
    from lib_vidsd.pipelines.steps import run_steps_animation
    from lib_vidsd.video import probe

    class StopAt:
        def __init__(self, n):
            self.n, self.asked = n, 0

        def stop_requested(self):
            self.asked += 1
            return self.asked > self.n

    sd = load_sd(None)
    gen = validate(GenerationParams, prompt="a cat", steps=8, width=64, height=64, seed=5)
    run, result = run_steps_animation(sd, gen, _params(decode="fast", duration=1), tmp_path / "a", stop=StopAt(5))
    assert run is None and probe(result.movie).frame_count == 5
    with pytest.raises(Interrupted):
        run_steps_animation(sd, gen, _params(run_incomplete=False), tmp_path / "b", stop=StopAt(5))
    assert not (tmp_path / "b").exists() or not any(p.is_file() for p in (tmp_path / "b").rglob("*"))
    run, result = run_steps_animation(sd, gen, _params(decode="full", duration=2), tmp_path / "c")
    assert probe(result.movie).frame_count == 8
    from PIL import Image

    final = Image.open(tmp_path / "c" / "5.png")
    assert final.size == (64, 64) and "Seed: 5" in final.text["parameters"]
    assert np.array_equal(np.asarray(final), run.image)


def test_cli_steps(tmp_path):
    from lib_vidsd.video import probe

    out = subprocess.run(
        [sys.executable, "-m", "lib_vidsd", "steps", "--prompt", "a cat", "--steps", "6", "--width", "64",
         "--height", "64", "--seed", "2", "--duration", "2", "--decode", "fast", "--codec", "gif", "-o", str(tmp_path)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    info = probe(tmp_path / "steps" / "2.gif")
    assert info.frame_count == 6
    bad = subprocess.run(
        [sys.executable, "-m", "lib_vidsd", "steps", "--codec", "mp3", "-o", str(tmp_path)], capture_output=True,
        text=True,
    )  # fmt: skip
    assert bad.returncode != 0 and "codec" in bad.stderr
