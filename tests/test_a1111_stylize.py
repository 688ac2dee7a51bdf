"""Video stylisation through the A1111 contract stub: the selectable img2img script, API forms and
422 checks, chunked UNet calls (equal to one whole-clip call for patterns without positive offsets),
fixed noise, references, the in-loop smoother schedule, ControlNet per-frame hints (fake extension),
and everything restored after errors and interrupts."""

from __future__ import annotations

import base64
import io
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lib_vidsd.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
CONTROLNET = ROOT / "tests" / "a1111_stub" / "sd-webui-controlnet"
FAST = {"smoother": "none", "post_deflicker": "none", "format": []}


def _unload():
    for name in [m for m in sys.modules if m.startswith(("internal_controlnet", "vidsd_a1111.stylize_job"))]:
        sys.modules.pop(name, None)


@pytest.fixture
def webui(a1111):
    from modules import scripts

    from tests.rig.a1111 import install_extension

    install_extension(ROOT)
    scripts.load_scripts()
    yield _classes()
    _unload()


@pytest.fixture
def webui_cn(a1111):
    from modules import scripts

    from tests.rig.a1111 import install_extension

    install_extension(ROOT)
    install_extension(CONTROLNET, "sd-webui-controlnet")
    scripts.load_scripts()
    yield _classes()
    _unload()


def _classes():
    from modules import scripts

    return {s.script_class.__name__: s.script_class for s in scripts.scripts_data}


def _clip(n=6, size=64):
    from tests.test_interpolate import _texture

    base = _texture(size, size + 4 * n, seed=3)
    return [np.ascontiguousarray(base[:, 4 * i : 4 * i + size]) for i in range(n)]


def _b64_png(array):
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def _run(classes, args, *, controlnet_units=None, **fields):
    from tests.rig.a1111 import make_runner, run_img2img

    script = classes["StylizeScript"]()
    scripts_ = [script]
    values = {script: args}
    if controlnet_units is not None:
        cn = classes["Script"]()
        scripts_.insert(0, cn)
        values[cn] = controlnet_units
    runner, script_args = make_runner(scripts_, is_img2img=True, args=values, selected=script)
    init = Image.new("RGB", (64, 64), (128, 128, 128))
    fields = {"prompt": "a cat", "steps": 3, "width": 64, "height": 64, "seed": 11, "cfg_scale": 5,
              "denoising_strength": 0.6, "init_images": [init], **fields}  # fmt: skip
    p, processed = run_img2img(runner, script_args, **fields)
    p.vidsd_runner = runner
    return p, processed


def _assert_restored(p):
    from modules import shared

    from lib_vidsd.patching import is_patched
    from vidsd_a1111 import stylize_job

    assert not is_patched(shared.sd_model.model.diffusion_model)
    assert "apply_model" not in vars(shared.sd_model)
    assert stylize_job.ACTIVE.smoother is None
    assert isinstance(p.seed, int)


def test_api_frames_give_six_png_frames_and_a_six_frame_video(webui):
    from lib_vidsd.video import probe

    frames = [_b64_png(f) for f in _clip(6)]
    args = [{"input_frames": frames, "format": ["mp4"], "fps": 6, "output_name": "clip", "smoother": "none",
             "post_deflicker": "fast", "post_window": 2}]  # fmt: skip
    p, processed = _run(webui, args)
    out = Path(p.outpath_samples) / "stylize" / "clip"
    assert sorted(x.name for x in out.glob("*.png")) == [f"frame_{i:05d}.png" for i in range(6)]
    assert probe(out / "clip.mp4").frame_count == 6
    assert "Video stylisation frames: 6" in processed.info
    text = Image.open(out / "frame_00004.png").text["parameters"]
    assert "Video stylisation: " in text and "combine_pattern: '-10000, -1, 0, 1'" in text
    assert "Size: 64x64" in text and "Denoising strength: 0.6" in text
    assert len(processed.images) == 6  # the UI gets the frames (an MP4 is not shown in the gallery)
    _assert_restored(p)


def test_api_response_has_the_video_then_the_frames(webui, monkeypatch):
    from vidsd_a1111 import stylize_job

    real = stylize_job.run

    def as_api(p, *args):
        p.is_api = True  # what /sdapi/v1/img2img sets
        return real(p, *args)

    monkeypatch.setattr(stylize_job, "run", as_api)
    frames = [_b64_png(f) for f in _clip(3)]
    _, processed = _run(webui, [{"input_frames": frames, **{**FAST, "format": ["gif"]}}])
    assert len(processed.images) == 4
    assert base64.b64decode(processed.images[0])[:6] == b"GIF89a"
    assert all(isinstance(img, Image.Image) and img.size == (64, 64) for img in processed.images[1:])
    assert "Video stylisation: " in processed.images[1].info["parameters"]


def test_fixed_noise_gives_every_frame_the_seed(webui, monkeypatch):
    from modules import processing

    seen = []
    original = processing.process_images

    def spy(p):
        seen.append(list(p.seed))
        return original(p)

    monkeypatch.setattr(processing, "process_images", spy)
    frames = [_b64_png(f) for f in _clip(4)]
    _run(webui, [{"input_frames": frames, **FAST}])
    _run(webui, [{"input_frames": frames, "fixed_noise": False, **FAST}])
    assert seen == [[11] * 4, [11, 12, 13, 14]]


def _unet_rows(monkeypatch):
    from modules import shared

    unet = shared.sd_model.model.diffusion_model
    rows = []
    original = type(unet).forward

    def spy(self, x, *a, **k):
        rows.append(x.shape[0])
        return original(self, x, *a, **k)

    monkeypatch.setattr(type(unet), "forward", spy)
    return rows


def test_the_unet_sees_chunks_and_chunking_does_not_change_the_result(webui, monkeypatch):
    rows = _unet_rows(monkeypatch)
    frames = [_b64_png(f) for f in _clip(5)]
    common = {"input_frames": frames, "combine_pattern": "-10000, -1, 0", **FAST}
    _, chunked = _run(webui, [{**common, "chunk_size": 2}])
    per_eval = rows[:3]
    rows.clear()
    _, whole = _run(webui, [{**common, "chunk_size": 8}])
    assert per_eval == [4, 4, 2]  # cond + uncond halves of frames 0-1, 2-3, 4
    assert set(rows) == {10}
    a = np.stack([np.asarray(Image.open(x)) for x in chunked.images]).astype(int)
    b = np.stack([np.asarray(Image.open(x)) for x in whole.images]).astype(int)
    assert np.abs(a - b).max() <= 1  # float rounding only


def test_cross_frame_attention_changes_the_frames(webui):
    frames = [_b64_png(f) for f in _clip(4)]
    _, plain = _run(webui, [{"input_frames": frames, "combine_pattern": "0", **FAST}])
    _, crossed = _run(webui, [{"input_frames": frames, "combine_pattern": "-10000, 0", **FAST}])
    first = [np.asarray(Image.open(x)).astype(int) for x in plain.images]
    second = [np.asarray(Image.open(x)).astype(int) for x in crossed.images]
    assert np.abs(first[0] - second[0]).max() <= 1  # frame 0 attends only to itself either way
    assert np.abs(first[3] - second[3]).mean() > 0.5


def test_reference_rows_go_into_the_first_chunk(webui, monkeypatch):
    rows = _unet_rows(monkeypatch)
    frames = [_b64_png(f) for f in _clip(4)]
    ref = _b64_png(np.full((80, 80, 3), 200, np.uint8))
    args = [{"input_frames": frames, "combine_pattern": "reference_0, 0", "reference_images": [ref],
             "chunk_size": 2, **FAST}]  # fmt: skip
    p, processed = _run(webui, args)
    assert rows[:2] == [6, 4]  # (reference + 2 frames) × 2 halves, then 2 frames × 2 halves
    assert len(processed.images) == 4
    _assert_restored(p)


def test_the_smoother_runs_at_the_scheduled_steps(webui, monkeypatch):
    import lib_vidsd.stylize as core

    calls = []
    real = core.smooth_predicted

    def spy(x0, **kwargs):
        calls.append((tuple(x0.shape), kwargs["mode"].value, kwargs["window"], len(kwargs["guide"])))
        return real(x0, **kwargs)

    monkeypatch.setattr(core, "smooth_predicted", spy)
    frames = [_b64_png(f) for f in _clip(3)]
    args = [{"input_frames": frames, "smoother": "fast", "smoother_interval": 2, "smoother_ignore_last": 1,
             "smoother_window": 1, "post_deflicker": "none", "format": []}]  # fmt: skip
    _run(webui, args, steps=6, denoising_strength=1.0)  # 6 sampling steps
    expected = core.SmootherSchedule(2, 1).steps(6)
    assert expected == [0, 2, 4] and len(calls) == 3
    assert calls[0] == ((3, 4, 8, 8), "fast", 1, 3)
    calls.clear()
    _run(webui, [{**args[0], "smoother": "none"}], steps=6, denoising_strength=1.0)
    assert calls == []


def test_the_smoother_only_acts_on_its_own_job(webui):
    from vidsd_a1111 import stylize_job

    class Params:
        x = "untouched"

    stylize_job.on_cfg_after_cfg(Params)
    assert Params.x == "untouched"


def test_ui_arguments_upload_and_references(webui, tmp_path):
    from vidsd_a1111 import binding, stylize_job

    ref = tmp_path / "ref.png"
    Image.fromarray(np.full((16, 16, 3), 9, np.uint8)).save(ref)
    widgets = {b.field: binding.STYLIZE.fields[b.field].default for b in binding.STYLIZE.widget_bindings()}
    widgets.update(combine_pattern="reference_0, 0", max_frames=0, fps=0)
    params, path = stylize_job.parse([str(tmp_path / "in.mp4"), [str(ref)], *widgets.values()])
    assert path == str(tmp_path / "in.mp4")
    assert params.max_frames is None and params.fps is None
    assert base64.b64decode(params.reference_images[0]) == ref.read_bytes()
    widgets["combine_pattern"] = "-1, 0"
    # the API list form is laid out like the UI's arguments, its upload slots empty
    listed, _ = stylize_job.parse([None, None, *list(widgets.values())[:3]], is_api=True)
    assert listed.combine_pattern == "-1, 0" and listed.chunk_size == 4 and listed.reference_images is None
    for uploads in ([str(tmp_path / "in.mp4"), None], [None, [str(ref)]]):
        with pytest.raises(ConfigError) as err:
            stylize_job.parse([*uploads, *widgets.values()], is_api=True)
        assert err.value.field == "script_args"


def test_infotext_round_trip(webui):
    from vidsd_a1111 import binding

    params = binding.STYLIZE.parse_args([{"input_dir": "a", "combine_pattern": [-1, 0, 1], "fps": 12,
                                          "format": ["gif", "mp4"], "smoother": "balanced"}])  # fmt: skip
    pasted = {"Video stylisation": binding.STYLIZE.infotext(params)}
    binding.STYLIZE.infotext_pasted("", pasted)
    assert pasted["Script"] == "Video stylisation"
    assert pasted["Video stylisation combine_pattern"] == "-1, 0, 1"
    assert pasted["Video stylisation fps"] == 12 and pasted["Video stylisation format"] == ["gif", "mp4"]
    assert pasted["Video stylisation smoother"] == "balanced"


@pytest.mark.parametrize(
    ("args", "body", "field"),
    [
        ({"input_frames": ["x"], "combine_pattern": "-1, 1"}, {}, "combine_pattern"),
        (
            {"input_frames": ["x"], "combine_pattern": "reference_1, 0", "reference_images": ["x"]},
            {},
            "reference_images",
        ),
        ({}, {}, "input_video"),
        ({"input_frames": ["x"], "input_dir": "a"}, {}, "input_dir"),
        ({"input_frames": ["!!"]}, {}, "input_frames"),
        (
            {"input_frames": "FRAMES", "reference_images": ["bad"], "combine_pattern": "reference_0, 0"},
            {},
            "reference_images[0]",
        ),
        ({"input_frames": "FRAMES"}, {"mask": "abc"}, "mask"),
        ({"input_frames": "FRAMES"}, {"prompt": "a cat AND a dog"}, "prompt"),
        ({"input_frames": "FRAMES", "keep_audio": True}, {}, "keep_audio"),
        ({"input_frames": "FRAMES", "chunk_size": 0}, {}, "chunk_size"),
        ({"input_frames": "FRAMES", "smoother": "best"}, {}, "smoother"),
        ({"input_frames": "FRAMES", "patch_size": 4}, {}, "patch_size"),
        ({"input_frames": "FRAMES", "interp": "film", "format": ["mp4"]}, {}, "interp_model"),
    ],
)
def test_api_answers_422_naming_the_field(webui, args, body, field):
    from vidsd_a1111 import api

    if args.get("input_frames") == "FRAMES":
        args = {**args, "input_frames": [_b64_png(f) for f in _clip(2)]}
    request = {"script_name": "Video stylisation", "script_args": [args], "width": 64, "height": 64, **body}
    answer = api.check_request(request, model_is_sdxl=False)
    assert answer is not None and answer.get("field", "").startswith(field.split("[")[0]), answer
    if "[" in field:
        assert answer["field"] == field


def test_api_accepts_a_good_request_and_refuses_animatediff(webui, monkeypatch):
    from vidsd_a1111 import api

    monkeypatch.setattr(api, "_check_animatediff", lambda body, sdxl: None)  # no motion module installed here

    good = {"script_name": "video stylisation", "script_args": [{"input_frames": [_b64_png(_clip(1)[0])]}]}
    assert api.check_request(good, model_is_sdxl=False) is None
    with_ad = {**good, "alwayson_scripts": {"AnimateDiff": {"args": [{"enable": True}]}}}
    assert api.check_request(with_ad, model_is_sdxl=False)["field"] == "AnimateDiff"


def test_everything_is_restored_after_an_error_in_sampling(webui, monkeypatch):
    from modules import shared

    unet = shared.sd_model.model.diffusion_model
    original = type(unet).forward
    calls = []

    def failing(self, x, *a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("boom")
        return original(self, x, *a, **k)

    monkeypatch.setattr(type(unet), "forward", failing)
    frames = [_b64_png(f) for f in _clip(4)]
    with pytest.raises(RuntimeError, match="boom"):
        _run(webui, [{"input_frames": frames, "chunk_size": 2, "smoother": "fast", "format": []}])
    from lib_vidsd.patching import is_patched
    from vidsd_a1111 import stylize_job

    assert not is_patched(unet) and "apply_model" not in vars(shared.sd_model)
    assert stylize_job.ACTIVE.smoother is None


def test_an_interrupt_between_chunks_stops_the_job_without_saving(webui, monkeypatch):
    from modules import shared

    unet = shared.sd_model.model.diffusion_model
    original = type(unet).forward
    calls = []

    def interrupting(self, x, *a, **k):
        calls.append(1)
        if len(calls) == 1:
            shared.state.interrupted = True
        return original(self, x, *a, **k)

    monkeypatch.setattr(type(unet), "forward", interrupting)
    frames = [_b64_png(f) for f in _clip(4)]
    p, processed = _run(webui, [{"input_frames": frames, "chunk_size": 2, "output_name": "cut", **FAST}])
    assert len(calls) == 1  # the second chunk never ran
    assert "stopped early" in processed.info
    assert not (Path(p.outpath_samples) / "stylize" / "cut").exists()
    _assert_restored(p)


def test_controlnet_units_follow_the_source_frames_chunk_by_chunk(webui_cn):
    clip = [np.full((64, 64, 3), 20 * (k + 1), np.uint8) for k in range(5)]  # hint mean tells the frame
    frames = [_b64_png(f) for f in clip]
    own = np.full((64, 64, 3), 255, np.uint8)
    units = [{"enabled": True, "module": "canny", "weight": 0.5}, {"enabled": True, "image": own, "weight": 0.1}]
    p, processed = _run(webui_cn, [{"input_frames": frames, "chunk_size": 2, **FAST}], controlnet_units=units)
    cn = next(s for s in p.vidsd_runner.alwayson_scripts if s.title() == "ControlNet")
    calls = cn.latest_network.calls
    means = [[round(v * 255 / 20) for v in seen[0]] for _, seen in calls[:3]]
    assert [rows for rows, _ in calls[:3]] == [4, 4, 2]
    assert means == [[1, 2, 1, 2], [3, 4, 3, 4], [5, 5]]  # frames of the chunk, per half
    assert all(seen[1] == [1.0] for _, seen in calls)  # a unit with its own image: one hint for all
    assert "ControlNet units: 2" in processed.info
    params = cn.latest_network.control_params
    assert params[0].hint_cond.shape[0] == 10  # the whole clip's hints put back
    assert not any(Path(str(a.batch_images)).exists() for a in p.script_args if hasattr(a, "batch_images") and
                   a.batch_images)  # fmt: skip


def test_controlnet_reference_rows_get_the_first_frames_hint(webui_cn):
    clip = [np.full((64, 64, 3), 20 * (k + 1), np.uint8) for k in range(3)]
    ref = _b64_png(np.full((64, 64, 3), 200, np.uint8))
    args = [{"input_frames": [_b64_png(f) for f in clip], "combine_pattern": "reference_0, 0",
             "reference_images": [ref], "chunk_size": 2, **FAST}]  # fmt: skip
    p, _ = _run(webui_cn, args, controlnet_units=[{"enabled": True, "module": "canny"}])
    cn = next(s for s in p.vidsd_runner.alwayson_scripts if s.title() == "ControlNet")
    first = [round(v * 255 / 20) for v in cn.latest_network.calls[0][1][0]]
    assert first == [1, 1, 2, 1, 1, 2]


def test_controlnet_units_keep_the_first_image_when_following_is_off(webui_cn):
    clip = [np.full((64, 64, 3), 20 * (k + 1), np.uint8) for k in range(3)]
    args = [{"input_frames": [_b64_png(f) for f in clip], "control_frames": False, **FAST}]
    p, _ = _run(webui_cn, args, controlnet_units=[{"enabled": True, "module": "canny"}])
    cn = next(s for s in p.vidsd_runner.alwayson_scripts if s.title() == "ControlNet")
    assert cn.latest_network.control_params[0].hint_cond.shape[0] == 1  # ControlNet's own img2img fallback
