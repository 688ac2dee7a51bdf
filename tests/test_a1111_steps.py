"""Steps animation through the A1111 contract stub: recording, one movie per image, infotext, API."""

from __future__ import annotations

import base64
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def webui(a1111, tmp_path):
    from modules import scripts

    from tests.rig.a1111 import install_extension

    install_extension(ROOT)
    scripts.load_scripts()
    classes = {s.script_class.__name__: s.script_class for s in scripts.scripts_data}
    yield classes
    sys.modules.pop("vidsd_a1111.steps_job", None)


def _run(classes, args, *, ad_args=None, **fields):
    from tests.rig.a1111 import make_runner, run_txt2img

    steps = classes["StepsAnimationScript"]()
    scripts_args = {steps: args}
    order = [steps]
    if ad_args is not None:
        ad = classes["AnimateDiffScript"]()
        order.insert(0, ad)
        scripts_args[ad] = ad_args
    runner, script_args = make_runner(order, args=scripts_args)
    fields = {"prompt": "a cat", "steps": 6, "width": 64, "height": 64, "seed": 3, "cfg_scale": 5, **fields}
    return run_txt2img(runner, script_args, **fields)


def _movies(p):
    return sorted((Path(p.outpath_samples) / "steps").glob("*.mp4"))


def test_one_movie_per_image_with_every_callback_as_a_frame(webui):
    from lib_vidsd.video import probe

    args = [{"enabled": True, "duration": 2, "decode": "fast", "delete_frames": False}]
    p, processed = _run(webui, args, batch_size=2, n_iter=2)
    movies = _movies(p)
    assert len(movies) == 4  # batch of 2, two batches
    for movie in movies:
        info = probe(movie)
        assert info.frame_count == 6 and info.fps == pytest.approx(3.0)  # 6 steps over 2 s
        assert "a cat" in info.metadata["comment"] and "Steps: 6" in info.metadata["comment"]
    frames = sorted((Path(p.outpath_samples) / "steps" / "frames").iterdir())
    assert len(frames) == 4 and all(len(list(f.glob("*.png"))) == 6 for f in frames)
    for text, movie in zip(processed.infotexts, movies, strict=True):
        assert f"Steps animation movie: steps/{movie.name}" in text
        assert 'Steps animation: "duration: 2.0, interpolation: none' in text


def test_skip_hold_and_frames_deleted(webui):
    from lib_vidsd.video import probe

    args = [{"enabled": True, "duration": 1, "skip_steps": 2, "hold": 1, "decode": "full"}]
    p, _ = _run(webui, args)
    (movie,) = _movies(p)
    info = probe(movie)
    assert info.fps == pytest.approx(4.0) and info.frame_count == 4 + 4  # 4 steps in 1 s, then 1 s held
    assert not (Path(p.outpath_samples) / "steps" / "frames").exists() or not any(
        (Path(p.outpath_samples) / "steps" / "frames").iterdir()
    )


def test_positional_args_equal_dict_args(webui):
    from vidsd_a1111 import binding

    values = {b.field: binding.STEPS.fields[b.field].default for b in binding.STEPS.widget_bindings()}
    values.update(enabled=True, duration=3.0, codec="gif")
    positional = [values[b.field] for b in binding.STEPS.widget_bindings()]
    assert binding.STEPS.parse_args(positional) == binding.STEPS.parse_args([values])


def test_interrupted_run_with_and_without_run_incomplete(webui, monkeypatch):
    from modules import shared

    from tests.rig.a1111 import run_txt2img  # noqa: F401  (the stub's sampler stops on the flag)

    def interrupt_at_step(limit):
        from modules import sd_samplers_kdiffusion

        original = sd_samplers_kdiffusion.KDiffusionSampler.callback_state

        def callback_state(self, d):
            if d["i"] >= limit:
                shared.state.interrupted = True
                raise sd_samplers_kdiffusion.sd_samplers_common.InterruptedException
            return original(self, d)

        monkeypatch.setattr(sd_samplers_kdiffusion.KDiffusionSampler, "callback_state", callback_state)

    shared.opts.data["save_incomplete_images"] = True
    interrupt_at_step(3)
    args = [{"enabled": True, "duration": 1, "decode": "fast", "run_incomplete": True}]
    p, _ = _run(webui, args)
    (movie,) = _movies(p)
    from lib_vidsd.video import probe

    assert probe(movie).frame_count == 4  # steps 0..3 were reported before the stop
    args = [{"enabled": True, "duration": 1, "decode": "fast", "run_incomplete": False}]
    p2, _ = _run(webui, args, seed=4)
    assert _movies(p2) == [movie]  # nothing new
    leftovers = [x for x in (Path(p2.outpath_samples) / "steps").rglob("*") if x.name.endswith(".part")]
    assert leftovers == []


def test_with_animatediff_one_movie_of_frame0(webui, tmp_path):
    from modules import shared
    from safetensors.torch import save_file

    from lib_vidsd.pipelines.animate import tiny_motion_module
    from lib_vidsd.video import probe

    folder = tmp_path / "AnimateDiff"
    folder.mkdir()
    save_file(tiny_motion_module().state_dict(), str(folder / "mm_tiny.safetensors"))
    shared.opts.data["vidsd_animatediff_model_path"] = str(folder)
    ad = [{"enable": True, "model": "mm_tiny.safetensors", "video_length": 4, "batch_size": 4, "format": ["GIF"]}]
    for view, size in (("frame0", 64), ("grid", 128)):
        args = [{"enabled": True, "duration": 1, "decode": "fast", "animatediff_view": view}]
        p, _ = _run(webui, args, ad_args=ad, steps=3)
        movies = _movies(p)
        info = probe(movies[-1])
        assert info.frame_count == 3 and info.width == size and info.height == size


def test_api_returns_movie_base64(webui):
    from modules import processing, shared

    from tests.rig.a1111 import make_runner

    script = webui["StepsAnimationScript"]()
    runner, script_args = make_runner([script], args={script: [{"enabled": True, "duration": 1, "codec": "webp"}]})
    p = processing.StableDiffusionProcessingTxt2Img(
        sd_model=shared.sd_model, prompt="a cat", steps=3, width=64, height=64, seed=1
    )
    p.outpath_samples = shared.opts.data["outdir_txt2img_samples"]
    p.is_api, p.scripts, p.script_args = True, runner, script_args
    processed = processing.process_images(p)
    p.close()
    assert len(processed.images) == 2  # the image, then the movie
    data = base64.b64decode(processed.images[-1])
    assert data[:4] == b"RIFF" and data[8:12] == b"WEBP"


def test_bad_values_answer_422_naming_the_field(webui):
    from vidsd_a1111 import api

    def ask(args):
        return api.check_request({"alwayson_scripts": {"Steps animation": {"args": args}}}, model_is_sdxl=False)

    assert ask([{"enabled": True}]) is None
    answer = ask([{"enabled": True, "codec": "mp3"}])
    assert answer["field"] == "codec" and "h264" in answer["allowed"]
    assert ask([{"enabled": True, "movie_folder": "../../etc"}])["field"] == "movie_folder"
    assert ask([{"enabled": True, "decode": "taesd"}])["field"] == "decode"
    answer = ask([{"enabled": True, "interpolation": "film"}])
    assert answer["field"] == "interp_model" and "film_net_fp16.pt" in answer["allowed"]
    assert ask([{"enabled": False, "codec": "mp3"}])["field"] == "codec"  # checked even when off


def test_ui_defaults_equal_api_defaults(webui):
    from vidsd_a1111 import binding, ui

    for b in binding.STEPS.widget_bindings()[1:]:
        spec = ui.widget_spec(b, False, binding.STEPS)
        assert spec["value"] == binding.STEPS.fields[b.field].default, b.field
        assert spec["elem_id"] == f"vidsd_sa_txt2img_{b.field}"
    params = binding.STEPS.parse_args([{"enabled": True, "codec": "vp9"}])
    text = binding.STEPS.infotext(params, is_img2img=False)
    pasted = {binding.STEPS.key: text}
    binding.STEPS.infotext_pasted("", pasted)
    assert pasted["Steps animation codec"] == "vp9" and pasted["Steps animation enabled"] is True


@pytest.mark.parametrize("interpolation", ["blend", "flow", "mci", "rife", "film"])
def test_interpolated_movie_lasts_the_duration_at_the_fps(webui, tmp_path, interpolation):
    from modules import shared

    from lib_vidsd.video import probe
    from tests.rig.vfi import write_film_archive, write_rife_file

    vfi = tmp_path / "VFI"
    write_rife_file(vfi)
    write_film_archive(vfi)
    shared.opts.data["vidsd_vfi_model_path"] = str(vfi)
    args = [{"enabled": True, "duration": 1, "interpolation": interpolation, "fps": 12, "decode": "fast"}]
    p, _ = _run(webui, args, steps=4)
    (movie,) = _movies(p)
    info = probe(movie)
    assert info.fps == pytest.approx(12) and info.frame_count == 12  # 1 s at 12 fps, first and last step exact


def test_frames_only_runs_do_not_reuse_numbers_and_gallery_items_have_infotexts(webui):
    args = [{"enabled": True, "duration": 1, "decode": "fast", "create_movie": False}]
    p, _ = _run(webui, args)
    p2, _ = _run(webui, args)
    frames = sorted(x.name for x in (Path(p.outpath_samples) / "steps" / "frames").iterdir())
    assert frames == ["00000-3", "00001-3"]
    p3, processed = _run(webui, [{"enabled": True, "duration": 1, "decode": "fast", "codec": "gif"}])
    assert processed.images[-1].endswith("00002-3.gif")  # shown in the gallery
    assert len(processed.infotexts) == len(processed.images)


def test_only_interrupts_and_adaptive_samplers_make_a_run_incomplete(webui):
    from modules import shared

    from vidsd_a1111 import binding
    from vidsd_a1111.steps_job import StepsJob

    class Sampler:
        def __init__(self, funcname):
            self.funcname = funcname

        def callback_state(self, d):
            pass

    class P:
        steps = 8

    params = binding.STEPS.parse_args([{"enabled": True}])
    for funcname, calls, incomplete in (("sample_dpm_adaptive", 5, True), ("sample_dpm_adaptive", 9, False),
                                        ("ddim", 7, False), ("sample_dpm_fast", 3, False)):  # fmt: skip
        job = StepsJob(params, False)
        p = P()
        p.sampler = Sampler(funcname)
        job.before_sampling(p)
        for i in range(calls):
            p.sampler.callback_state({"x": torch.zeros(1, 4, 2, 2), "i": i})
        assert job.recorder.callbacks == calls and job.incomplete() is incomplete, funcname
    shared.state.interrupted = True
    try:
        assert job.incomplete()
    finally:
        shared.state.interrupted = False


def test_api_checks_use_the_request_steps_and_errors_reach_the_infotext(webui):
    from vidsd_a1111 import api

    def ask(args, steps=8):
        body = {"steps": steps, "alwayson_scripts": {"Steps animation": {"args": args}}}
        return api.check_request(body, model_is_sdxl=False)

    assert ask([{"enabled": True, "skip_steps": 8}])["field"] == "skip_steps"
    assert ask([{"enabled": True, "duration": 0.01}])["field"] == "duration"
    assert ask([{"enabled": True, "codec": "gif", "interpolation": "blend", "fps": 100}])["field"] == "fps"
    assert ask([{"enabled": True, "skip_steps": 7}]) is None
    _p, processed = _run(webui, [{"enabled": True, "skip_steps": 6}])  # the UI path: no movie, but said why
    assert "Steps animation error: " in processed.infotexts[0] and "skip_steps" in processed.infotexts[0]


def test_api_without_saving_leaves_no_files(webui):
    from modules import processing, shared

    from tests.rig.a1111 import make_runner

    script = webui["StepsAnimationScript"]()
    runner, script_args = make_runner([script], args={script: [{"enabled": True, "duration": 1, "codec": "gif"}]})
    p = processing.StableDiffusionProcessingTxt2Img(sd_model=shared.sd_model, prompt="a", steps=3, width=64, height=64)
    p.outpath_samples = shared.opts.data["outdir_txt2img_samples"]
    p.is_api, p.do_not_save_samples, p.scripts, p.script_args = True, True, runner, script_args
    processed = processing.process_images(p)
    p.close()
    assert base64.b64decode(processed.images[-1])[:6] == b"GIF89a"
    assert not (Path(p.outpath_samples) / "steps").exists()
    assert "Steps animation movie" not in processed.infotexts[0]
