"""The standalone AnimateDiff pipeline on the tiny built-in model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from lib_vidsd.config import AnimateDiffParams, GenerationParams, validate
from lib_vidsd.errors import ConfigError, Interrupted
from lib_vidsd.patching import is_patched
from lib_vidsd.pipelines.animate import AnimateJob, encode_prompts, load_sd, save_animation, tiny_motion_module
from lib_vidsd.progress import StopFlag


@pytest.fixture(scope="module")
def sd():
    return load_sd(None)


@pytest.fixture(scope="module")
def mm():
    return tiny_motion_module()


def _job(sd, mm, gen=None, ad=None, **kwargs):
    gen = validate(
        GenerationParams, {"prompt": "a cat", "steps": 2, "width": 64, "height": 64, "seed": 5, **(gen or {})}
    )
    ad = validate(AnimateDiffParams, {"enable": True, "video_length": 10, "batch_size": 8, **(ad or {})})
    return AnimateJob(sd, mm, gen, ad, **kwargs)


def _stack(result):
    return np.stack(result.frames).astype(np.int16)


def test_deterministic_for_a_seed_and_restores_the_unet(sd, mm):
    a = _job(sd, mm).run()
    b = _job(sd, mm).run()
    c = _job(sd, mm, gen={"seed": 6}).run()
    assert len(a.frames) == 10 and a.frames[0].shape == (64, 64, 3) and a.frames[0].dtype == np.uint8
    assert np.array_equal(_stack(a), _stack(b)) and not np.array_equal(_stack(a), _stack(c))
    assert not is_patched(sd.unet)
    assert "Seed: 5" in a.infotext and 'AnimateDiff: "model: v3, video_length: 10' in a.infotext


def test_motion_module_makes_frames_depend_on_each_other(sd, mm):
    """With the temporal layers switched off, every frame is an independent image of its own noise."""
    with_motion = _stack(_job(sd, mm).run())
    noise_only = tiny_motion_module()
    with torch.no_grad():
        for level in [*noise_only.down_blocks, *noise_only.up_blocks]:
            for tm in level.motion_modules:
                tm.temporal_transformer.proj_out.weight.zero_()
                tm.temporal_transformer.proj_out.bias.zero_()
    without = _stack(_job(sd, noise_only).run())
    assert not np.array_equal(with_motion, without)


def test_prompt_travel_changes_the_frames(sd, mm):
    plain = _job(sd, mm).run()
    travel = _job(sd, mm, gen={"prompt": "a cat\n0: walking\n6: running in the city"}).run()
    assert travel.prompts[0] == "a cat, walking, " and travel.prompts[9] == "a cat, running in the city, "
    assert not np.array_equal(_stack(plain), _stack(travel))


def test_long_prompts_pad_cond_and_uncond_to_one_length(sd):
    long_prompt = ", ".join(["a red cat walking in the city at night"] * 20)
    enc = encode_prompts(sd, [long_prompt, ""])
    assert enc.shape[1] % 77 == 0 and enc.shape[1] >= 3 * 77  # chunks of 75 tokens, both rows padded alike


def test_frames_below_and_above_the_context(sd, mm):
    assert len(_job(sd, mm, ad={"video_length": 5}).run().frames) == 5
    assert (
        len(_job(sd, mm, ad={"video_length": 20, "stride": 2, "closed_loop": "A", "fuse": "pyramid"}).run().frames)
        == 20
    )


@pytest.mark.parametrize("scheduler", ["euler", "euler_a", "dpmpp_2m", "lcm"])
def test_schedulers(sd, mm, scheduler):
    frames = _job(sd, mm, gen={"scheduler": scheduler}).run().frames
    assert len(frames) == 10 and np.isfinite(np.stack(frames)).all()


def test_freeinit_runs_every_iteration(sd, mm):
    seen = []
    job = _job(
        sd, mm, ad={"freeinit_enable": True, "freeinit_iters": 3}, progress=lambda d, t, s="": seen.append((d, t))
    )
    freeinit = _stack(job.run())
    assert seen[-1] == (6, 6)  # 2 steps x 3 iterations
    assert not np.array_equal(freeinit, _stack(_job(sd, mm).run()))


def test_init_and_last_image(sd, mm):
    red = Image.new("RGB", (64, 64), (220, 30, 30))
    blue = Image.new("RGB", (64, 64), (30, 30, 220))
    result = _job(sd, mm, gen={"denoising_strength": 0.3}, init_image=red, last_image=blue).run()
    assert "Denoising strength: 0.3" in result.infotext and "latent_power_last" in result.infotext
    with pytest.raises(ConfigError, match="last_frame"):
        _job(sd, mm, last_image=blue)


def test_interrupt_restores_the_unet(sd, mm):
    stop = StopFlag()
    calls = []

    def progress(done, total, text=""):
        calls.append(done)
        stop.stop()

    with pytest.raises(Interrupted):
        _job(sd, mm, progress=progress, stop=stop).run()
    assert calls == [1] and not is_patched(sd.unet)


def test_context_beyond_the_module_is_refused(sd, mm):
    with pytest.raises(ConfigError, match="batch_size"):
        _job(sd, mm, ad={"batch_size": 40})


def test_save_animation_writes_formats_and_infotext(sd, mm, tmp_path):
    from lib_vidsd.video import probe

    result = _job(sd, mm, ad={"video_length": 6}).run()
    paths = save_animation(result, tmp_path, ["gif", "mp4", "png"], fps=8, loop=2)
    names = sorted(p.name for p in paths)
    assert names == ["animatediff-5-frames", "animatediff-5.gif", "animatediff-5.mp4", "animatediff-5.txt"]
    assert probe(tmp_path / "animatediff-5.gif").loop == 2 and probe(tmp_path / "animatediff-5.mp4").frame_count == 6
    assert (tmp_path / "animatediff-5.txt").read_text().startswith("a cat\nSteps: 2")
    with Image.open(tmp_path / "animatediff-5-frames" / "00000.png") as img:
        assert img.text["parameters"] == result.infotext
    with pytest.raises(ConfigError, match="format"):
        save_animation(result, tmp_path, ["avi"], fps=8)


def test_model_folder_loads_from_local_files(tmp_path, mm):
    """A diffusers model folder (what save_pretrained writes) runs the same as the parts in memory."""
    from lib_vidsd.pipelines.tiny import build_sd_pipeline

    build_sd_pipeline(seed=0).save_pretrained(tmp_path / "model")
    folder = load_sd(str(tmp_path / "model"))
    assert folder.name == "model"
    a = _job(folder, mm).run()
    b = _job(load_sd(None), mm).run()
    assert np.array_equal(_stack(a), _stack(b))


def test_missing_model_named_in_the_error(tmp_path):
    with pytest.raises(ConfigError, match="model"):
        load_sd(str(tmp_path / "nope"))
