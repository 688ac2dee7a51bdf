"""AnimateDiff through the A1111 contract stub: the job, outputs, API forms, errors, restoration."""

from __future__ import annotations

import base64
import io
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def webui(a1111, tmp_path):
    """The stub with vidsd installed, a tiny motion module in the motion-module folder."""
    from modules import scripts, shared
    from safetensors.torch import save_file

    from lib_vidsd.pipelines.animate import tiny_motion_module
    from tests.rig.a1111 import install_extension

    folder = tmp_path / "AnimateDiff"
    folder.mkdir()
    save_file(tiny_motion_module().state_dict(), str(folder / "mm_tiny.safetensors"))
    shared.opts.data["vidsd_animatediff_model_path"] = str(folder)
    install_extension(ROOT)
    scripts.load_scripts()
    script_cls = next(s.script_class for s in scripts.scripts_data if s.script_class.__name__ == "AnimateDiffScript")
    yield a1111, script_cls
    sys.modules.pop("vidsd_a1111.job", None)


def _run(webui, args, **fields):
    from tests.rig.a1111 import make_runner, run_txt2img

    _modules, script_cls = webui
    script = script_cls()
    runner, script_args = make_runner([script], args={script: args})
    fields = {"prompt": "a cat", "steps": 2, "width": 64, "height": 64, "seed": 3, "cfg_scale": 5, **fields}
    return run_txt2img(runner, script_args, **fields)


def _unet():
    from modules import shared

    return shared.sd_model.model.diffusion_model


def test_dict_form_renders_frames_and_writes_videos(webui, tmp_path):
    from lib_vidsd.patching import is_patched
    from lib_vidsd.video import probe

    args = [
        {
            "enable": True,
            "model": "mm_tiny.safetensors",
            "video_length": 6,
            "batch_size": 4,
            "format": ["GIF", "MP4", "PNG", "TXT"],
            "request_id": "r1",
        }
    ]
    p, processed = _run(webui, args)
    assert p.batch_size == 6 and not is_patched(_unet())
    out = next((tmp_path / "outputs" / "txt2img-images" / "AnimateDiff").iterdir())
    names = sorted(x.name for x in out.iterdir())
    assert any(n.endswith("-r1.gif") for n in names) and any(n.endswith("-r1.mp4") for n in names)
    gif = next(out.glob("*.gif"))
    assert probe(gif).frame_count == 6
    assert "AnimateDiff: " in next(out.glob("*.txt")).read_text()
    assert isinstance(processed.images[0], str) and processed.images[0].endswith(".gif")


def test_api_returns_videos_as_base64(webui):
    args = [
        {"enable": True, "model": "mm_tiny.safetensors", "video_length": 4, "batch_size": 4, "format": ["GIF", "Frame"]}
    ]
    from tests.rig.a1111 import make_runner

    _m, script_cls = webui
    script = script_cls()
    runner, script_args = make_runner([script], args={script: args})
    from modules import processing, shared

    p = processing.StableDiffusionProcessingTxt2Img(
        sd_model=shared.sd_model,
        prompt="a cat",
        steps=2,
        width=64,
        height=64,
        seed=1,
        outpath_samples=shared.opts.data["outdir_txt2img_samples"],
    )
    p.is_api = True
    p.scripts = runner
    p.script_args = script_args
    processed = processing.process_images(p)
    p.close()
    data = base64.b64decode(processed.images[0])
    assert data[:6] == b"GIF89a"
    assert len(processed.images) == 1 + 4  # the GIF, then the frames ("Frame")


def test_positional_form_matches_dict_form(webui):
    from vidsd_a1111 import binding

    values = {b.field: binding.FIELDS[b.field].default for b in binding.widget_bindings()}
    values.update(enable=True, model="mm_tiny.safetensors", video_length=4, batch_size=4, format=["GIF"])
    positional = [values[b.field] for b in binding.widget_bindings()]
    assert binding.parse_args(positional) == binding.parse_args([values])


def test_motion_changes_frames_and_plain_run_is_unchanged_after(webui):
    import numpy as np

    plain_before = _run(webui, [{"enable": False}], batch_size=4)[1].images
    animated = _run(
        webui, [{"enable": True, "model": "mm_tiny.safetensors", "video_length": 4, "batch_size": 4, "format": ["PNG"]}]
    )[1]
    plain_after = _run(webui, [{"enable": False}], batch_size=4)[1].images
    assert all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(plain_before, plain_after, strict=True))
    frames = animated.images
    assert not all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(plain_before, frames, strict=True))


def test_bad_argument_fails_the_job_not_a_silent_still(webui):
    from lib_vidsd.errors import ConfigError
    from lib_vidsd.patching import is_patched

    with pytest.raises(ConfigError, match="model"):
        _run(webui, [{"enable": True, "model": "../../etc/passwd"}])
    assert not is_patched(_unet())
    with pytest.raises(ConfigError, match="closed_loop"):
        _run(webui, [{"enable": True, "model": "mm_tiny.safetensors", "closed_loop": "X"}])
    assert not is_patched(_unet())


def test_interrupt_leaves_the_unet_unpatched(webui):
    from modules import script_callbacks, shared

    from lib_vidsd.patching import is_patched

    def interrupt(params):
        shared.state.interrupted = True

    script_callbacks.on_cfg_denoiser(interrupt)
    try:
        _run(
            webui,
            [{"enable": True, "model": "mm_tiny.safetensors", "video_length": 4, "batch_size": 4, "format": ["GIF"]}],
        )
    except Exception:
        pass
    assert not is_patched(_unet())


def test_infotext_round_trip(webui):
    from vidsd_a1111 import binding

    params = binding.parse_args(
        [
            {
                "enable": True,
                "model": "mm_tiny.safetensors",
                "video_length": 12,
                "closed_loop": "A",
                "format": ["GIF", "MP4"],
                "stride": 2,
            }
        ]
    )
    text = binding.infotext(params, is_img2img=False)
    pasted = {"AnimateDiff": text}
    binding.infotext_pasted("", pasted)
    assert pasted["AnimateDiff video_length"] == "12" and pasted["AnimateDiff closed_loop"] == "A"
    assert pasted["AnimateDiff format"] == ["GIF", "MP4"] and pasted["AnimateDiff enable"] is True


def test_widgets_schema_and_infotext_cover_the_same_fields_with_the_same_defaults(webui):
    from lib_vidsd.config import AnimateDiffParams
    from vidsd_a1111 import binding, ui

    schema = AnimateDiffParams.schema()["properties"]
    assert {b.field for b in binding.BINDINGS} == set(schema)
    defaults = binding.defaults()
    for b in binding.widget_bindings()[1:]:
        spec = ui.widget_spec(b, is_img2img=True)
        if b.field != "model":
            assert spec["value"] == defaults[b.field], b.field
        if "default" in schema[b.field]:
            assert schema[b.field]["default"] == defaults[b.field] or b.field == "format", b.field
    infotext_fields = {b.field for b in binding.BINDINGS if b.infotext}
    params = binding.parse_args([{"enable": True}])
    assert set(binding.parse_infotext(binding.infotext(params, is_img2img=True))) == infotext_fields - {"request_id"}


def test_img2img_with_last_frame(webui):
    from modules import shared

    from tests.rig.a1111 import make_runner, run_img2img

    _m, script_cls = webui
    script = script_cls()
    script.is_img2img = True
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (0, 0, 255)).save(buf, format="PNG")
    args = [
        {
            "enable": True,
            "model": "mm_tiny.safetensors",
            "video_length": 4,
            "batch_size": 4,
            "format": ["GIF"],
            "last_frame": base64.b64encode(buf.getvalue()).decode(),
            "latent_power_last": 2,
        }
    ]
    runner, script_args = make_runner([script], is_img2img=True, args={script: args})
    p, processed = run_img2img(
        runner,
        script_args,
        init_images=[Image.new("RGB", (64, 64), (255, 0, 0))],
        prompt="a cat",
        steps=2,
        width=64,
        height=64,
        seed=2,
        denoising_strength=0.5,
    )
    assert p.batch_size == 4 and "latent_power_last: 2" in p.extra_generation_params["AnimateDiff"]
    assert torch.is_tensor(p.init_latent) and p.init_latent.shape[0] == 4
    assert shared.sd_model is not None


def test_dict_form_followed_by_widget_defaults_as_the_webui_api_sends_it(webui):
    """A1111's API puts the dict in the first slot of the script's slice; the rest keep widget values."""
    from vidsd_a1111 import binding

    rest = [binding.FIELDS[b.field].default for b in binding.widget_bindings()[1:]]
    params = binding.parse_args([{"enable": True, "model": "mm_tiny.safetensors", "video_length": 5}, *rest])
    assert params.enable and params.video_length == 5


def test_api_check_answers_422_naming_the_field(webui):
    from vidsd_a1111 import api

    def body(**ad):
        return {"prompt": "x", "alwayson_scripts": {"AnimateDiff": {"args": [{"enable": True, **ad}]}}}

    assert api.check_request(body(model="mm_tiny.safetensors"), model_is_sdxl=False) is None
    assert api.check_request({"prompt": "x"}, model_is_sdxl=False) is None
    assert api.check_request(body(model="nope.ckpt", enable=False), model_is_sdxl=False) is None
    cases = [
        (body(model="../x.ckpt"), "model", "mm_tiny.safetensors"),
        (body(model="mm_tiny.safetensors", closed_loop="Q"), "closed_loop", "R+P"),
        (body(model="mm_tiny.safetensors", colour="red"), "colour", "video_length"),
        (body(model="mm_tiny.safetensors", video_length=-3), "video_length", "0..1024"),
    ]
    for request, field, allowed in cases:
        answer = api.check_request(request, model_is_sdxl=False)
        assert answer["field"] == field and allowed in answer["detail"], answer
    travel = {**body(model="mm_tiny.safetensors", video_length=4), "prompt": "a cat\n0: sit\n4: run"}
    assert api.check_request(travel, model_is_sdxl=False)["field"] == "prompt"
    wrong = api.check_request(body(model="mm_tiny.safetensors"), model_is_sdxl=True)
    assert wrong["error"] == "IncompatibleModelError" and wrong["field"] == "model"


def test_motion_module_listing(webui, tmp_path):
    from vidsd_a1111 import api, models

    (tmp_path / "AnimateDiff" / "sub").mkdir()
    (tmp_path / "AnimateDiff" / "sub" / "notes.txt").write_text("x")
    listing = api.motion_modules()
    assert listing == [
        {
            "name": "mm_tiny.safetensors",
            "family": "v3",
            "size": (tmp_path / "AnimateDiff" / "mm_tiny.safetensors").stat().st_size,
        }
    ]
    assert models.resolve("mm_tiny.safetensors").name == "mm_tiny.safetensors"


def test_xyz_axes_change_the_argument(webui):
    from types import SimpleNamespace

    from vidsd_a1111 import binding, xyz

    class Axis:
        def __init__(self, label, kind, apply, choices=None):
            self.label, self.type, self.apply, self.choices = label, kind, apply, choices

    fake = SimpleNamespace(axis_options=[], AxisOption=Axis)
    xyz.register(fake)
    xyz.register(fake)  # a scripts reload adds nothing twice
    labels = [a.label for a in fake.axis_options]
    assert "[AnimateDiff] Context batch size" in labels and "[AnimateDiff] Motion module" in labels
    assert len(labels) == len(set(labels))

    _m, script_cls = webui
    script = script_cls()
    from tests.rig.a1111 import make_runner

    positional = [binding.FIELDS[b.field].default for b in binding.widget_bindings()]
    runner, script_args = make_runner([script], args={script: positional})
    p = SimpleNamespace(scripts=runner, script_args=script_args)
    axis = next(a for a in fake.axis_options if a.label == "[AnimateDiff] Context batch size")
    axis.apply(p, 8, [8])
    assert binding.parse_args(p.script_args[script.args_from : script.args_to]).batch_size == 8
    runner, script_args = make_runner([script], args={script: [{"enable": True}]})
    p = SimpleNamespace(scripts=runner, script_args=script_args)
    axis.apply(p, 12, [12])
    assert p.script_args[script.args_from]["batch_size"] == 12


def test_batch_count_gives_one_animation_each(webui, tmp_path):
    p, processed = _run(
        webui,
        [{"enable": True, "model": "mm_tiny.safetensors", "video_length": 4, "batch_size": 4, "format": ["GIF"]}],
        n_iter=2,
    )
    out = next((tmp_path / "outputs" / "txt2img-images" / "AnimateDiff").iterdir())
    assert len(list(out.glob("*.gif"))) == 2
    assert sum(isinstance(x, str) and x.endswith(".gif") for x in processed.images) == 2


def test_freeinit_samples_every_iteration(webui):
    import numpy as np
    from modules import script_callbacks

    steps_seen = []
    script_callbacks.on_cfg_denoiser(lambda params: steps_seen.append(params.sampling_step))
    base = {"enable": True, "model": "mm_tiny.safetensors", "video_length": 4, "batch_size": 4, "format": ["PNG"]}
    plain = _run(webui, [base])[1].images
    calls_plain = len(steps_seen)
    steps_seen.clear()
    freeinit = _run(webui, [{**base, "freeinit_enable": True, "freeinit_iters": 3}])[1].images
    assert len(steps_seen) == 3 * calls_plain
    assert not all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(plain, freeinit, strict=True))


def test_bad_values_while_disabled_do_not_fail_the_job(webui):
    p, processed = _run(webui, [{"enable": False, "closed_loop": "Q"}], batch_size=2)
    assert len(processed.images) == 2 and "AnimateDiff" not in p.extra_generation_params


def test_motion_lora_from_the_folder_changes_frames_and_is_undone(webui, tmp_path):
    import numpy as np
    from safetensors.torch import save_file

    from tests.test_motion_lora import _original_lora
    from vidsd_a1111 import api, job, models

    lora = {k: v.contiguous() for k, v in _original_lora(seed=3, channels=(32, 32, 32, 32), mid=False).items()}
    save_file(lora, str(tmp_path / "AnimateDiff" / "mm_lora_pan.safetensors"))
    assert (
        list(models.list_loras()) == ["mm_lora_pan.safetensors"]
        and "mm_lora_pan.safetensors" not in models.list_models()
    )
    base = {"enable": True, "model": "mm_tiny.safetensors", "video_length": 4, "batch_size": 4, "format": ["PNG"]}
    plain = _run(webui, [base])[1].images
    module = job.MODULE_CACHE.module
    weights = {k: v.clone() for k, v in module.state_dict().items()}
    with_lora = _run(webui, [{**base, "motion_lora": "mm_lora_pan.safetensors", "motion_lora_strength": 0.8}])[1].images
    assert not all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(plain, with_lora, strict=True))
    assert all(torch.equal(module.state_dict()[k], v) for k, v in weights.items())
    bad = {"prompt": "x", "alwayson_scripts": {"AnimateDiff": {"args": [{**base, "motion_lora": "nope.safetensors"}]}}}
    assert api.check_request(bad, model_is_sdxl=False)["field"] == "motion_lora"


def test_frames_stay_images_when_a_selectable_script_runs_the_job(webui, tmp_path):
    """X/Y/Z plot draws its grid from ``processed.images``: they must stay PIL frames there."""
    from modules import scripts

    from tests.rig.a1111 import make_runner, run_txt2img

    class Selectable(scripts.Script):
        def title(self):
            return "Grid"

        def show(self, is_img2img):
            return True

        def run(self, p, *args):
            from modules import processing

            return processing.process_images(p)

    _m, script_cls = webui
    script, grid = script_cls(), Selectable()
    args = [{"enable": True, "model": "mm_tiny.safetensors", "video_length": 4, "batch_size": 4, "format": ["GIF"]}]
    runner, script_args = make_runner([script, grid], args={script: args, grid: []}, selected=grid)
    p, processed = run_txt2img(runner, script_args, prompt="a cat", steps=2, width=64, height=64, seed=1)
    assert all(hasattr(img, "size") for img in processed.images)
    out = next((tmp_path / "outputs" / "txt2img-images" / "AnimateDiff").iterdir())
    assert len(list(out.glob("*.gif"))) == 1


@pytest.mark.parametrize("method", ["blend", "flow"])
def test_interpolated_and_reversed_outputs(webui, tmp_path, method):
    from lib_vidsd.video import probe

    args = [
        {
            "enable": True,
            "model": "mm_tiny.safetensors",
            "video_length": 4,
            "batch_size": 4,
            "format": ["GIF"],
            "interp": method,
            "interp_x": 3,
            "closed_loop": "A",
        }
    ]
    _run(webui, args)
    out = next((tmp_path / "outputs" / "txt2img-images" / "AnimateDiff").iterdir())
    gif = next(out.glob("*.gif"))
    # 4 frames + 2 played back = 6, then x3: (6 - 1) * 3 + 1
    assert probe(gif).frame_count == 16


def test_interpolate_route_logic(webui, tmp_path):
    from lib_vidsd.errors import ConfigError
    from lib_vidsd.video import probe, write_video
    from tests.videoclips import coded
    from vidsd_a1111 import interp_route

    clip = write_video(coded(5), tmp_path / "in.mp4", fps=6)
    video = base64.b64encode(clip.read_bytes()).decode()
    answer = interp_route.interpolate_request({"video": video, "method": "blend", "factor": 3, "format": "gif"})
    out = tmp_path / "out.gif"
    out.write_bytes(base64.b64decode(answer["video"]))
    assert answer["frames"] == 13 == probe(out).frame_count and answer["fps"] == 18
    frames = []
    for colour in ((255, 0, 0), (0, 0, 255)):
        buf = io.BytesIO()
        Image.new("RGB", (32, 32), colour).save(buf, format="PNG")
        frames.append(base64.b64encode(buf.getvalue()).decode())
    answer = interp_route.interpolate_request({"frames": frames, "method": "blend", "fps": 24, "source_fps": 8})
    assert answer["frames"] == 6 and answer["fps"] == 24  # 2 frames at 8 fps last 0.25 s: 6 frames at 24
    for body, field in (
        ({"video": video, "method": "FILM"}, "method"),
        ({"video": video, "method": "film"}, "model"),  # no weights in models/VFI
        ({"video": video, "method": "rife", "model": "../../x.pth"}, "model"),
        ({"video": video, "factor": 99}, "factor"),
        ({"video": "***"}, "video"),
        ({"frames": frames[:1]}, "frames"),
        ({"path": "/etc/passwd"}, "path"),
        ({"video": video, "format": "avi"}, "format"),
    ):
        with pytest.raises(ConfigError) as e:
            interp_route.interpolate_request(body)
        assert e.value.field == field


def test_prompt_travel_blends_the_conditioning_every_step(webui, monkeypatch):
    from lib_vidsd.schedule import prompts

    calls = []
    original = prompts.PromptTravel.blend
    monkeypatch.setattr(
        prompts.PromptTravel, "blend", lambda self, cond, closed: calls.append(1) or original(self, cond, closed)
    )
    args = [{"enable": True, "model": "mm_tiny.safetensors", "video_length": 4, "batch_size": 4, "format": ["PNG"]}]
    p, _ = _run(webui, args, prompt="a cat\n0: sitting\n2: running")
    assert p.all_prompts == ["a cat, sitting, "] * 2 + ["a cat, running, "] * 2
    assert len(calls) == 2  # one per sampling step


def test_film_interpolation_of_the_animation(webui, tmp_path):
    from modules import shared

    from lib_vidsd.video import probe
    from tests.rig.vfi import write_film_archive

    write_film_archive(tmp_path / "VFI")
    shared.opts.data["vidsd_vfi_model_path"] = str(tmp_path / "VFI")
    args = [
        {"enable": True, "model": "mm_tiny.safetensors", "video_length": 3, "batch_size": 3, "format": ["GIF"]}
        | {"interp": "FILM", "interp_x": 4, "closed_loop": "N"}
    ]
    p, _ = _run(webui, args)
    (gif,) = sorted(Path(p.outpath_samples).rglob("*.gif"))
    assert probe(gif).frame_count == (3 - 1) * 4 + 1
    from vidsd_a1111 import api

    body = {"alwayson_scripts": {"AnimateDiff": {"args": [{**args[0], "interp_model": "missing.pt"}]}}}
    answer = api.check_request(body, model_is_sdxl=None)
    assert answer["field"] == "interp_model" and "film_net_fp16.pt" in answer["allowed"]
