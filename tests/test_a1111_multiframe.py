"""Multi-frame rendering through the A1111 contract stub: the selectable img2img script, API forms,
strip inpainting, cross-frame attention restored, roots, errors."""

from __future__ import annotations

import base64
import io
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def webui(a1111, tmp_path):
    from modules import scripts

    from tests.rig.a1111 import install_extension

    install_extension(ROOT)
    scripts.load_scripts()
    cls = next(s.script_class for s in scripts.scripts_data if s.script_class.__name__ == "MultiFrameScript")
    yield cls
    sys.modules.pop("vidsd_a1111.multiframe_job", None)


def _clip(n=4, size=64):
    from tests.test_interpolate import _texture

    base = _texture(size, size + 6 * n, seed=2)
    return [np.ascontiguousarray(base[:, 6 * i : 6 * i + size]) for i in range(n)]


def _b64_png(array):
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def _run(cls, args, **fields):
    from tests.rig.a1111 import make_runner, run_img2img

    script = cls()
    runner, script_args = make_runner([script], is_img2img=True, args={script: args}, selected=script)
    init = Image.new("RGB", (64, 64), (128, 128, 128))
    fields = {"prompt": "a cat", "steps": 2, "width": 64, "height": 64, "seed": 5, "cfg_scale": 5,
              "denoising_strength": 0.5, "init_images": [init], **fields}  # fmt: skip
    return run_img2img(runner, script_args, **fields)


def test_api_frames_give_a_video_of_as_many_frames(webui):
    from modules import shared

    from lib_vidsd.patching import is_patched
    from lib_vidsd.video import probe

    frames = [_b64_png(f) for f in _clip(6)]
    args = [{"input_frames": frames, "mode": "both", "format": ["mp4", "gif"], "fps": 6, "output_name": "run 1/.."}]
    p, processed = _run(webui, args)
    out = Path(p.outpath_samples) / "multiframe" / "run_1"
    assert sorted(x.name for x in out.glob("*.png")) == [f"{i:05d}.png" for i in range(6)]
    assert probe(out / "run_1.mp4").frame_count == 6 and probe(out / "run_1.gif").frame_count == 6
    assert "Multi-frame frames: 6" in processed.info
    png = Image.open(out / "00003.png")
    assert png.size == (64, 64) and "Multi-frame rendering" in png.text["parameters"]
    assert not is_patched(shared.sd_model.model.diffusion_model)  # cross-frame attention restored


def test_filmstrip_keeps_the_side_cells_and_crops_the_centre(webui, monkeypatch):
    from modules import processing

    seen = []
    original = processing.process_images

    def spy(p):
        seen.append((p.width, p.height, p.image_mask is not None, p.init_images[0].copy()))
        return original(p)

    monkeypatch.setattr(processing, "process_images", spy)
    clip = _clip(3)
    args = [{"input_frames": [_b64_png(f) for f in clip], "mode": "filmstrip", "third_frame": "OriginalImg",
             "format": []}]  # fmt: skip
    p, _ = _run(webui, args)
    assert [(w, h, m) for w, h, m, _ in seen] == [(64, 64, False), (192, 64, True), (192, 64, True)]
    strip = np.asarray(seen[1][3])
    assert np.array_equal(strip[:, 64:128], clip[1]) and np.array_equal(strip[:, 128:], clip[1])
    out = Path(p.outpath_samples) / "multiframe"
    first = np.asarray(Image.open(next(out.rglob("00000.png"))))
    assert np.array_equal(strip[:, :64], first)  # the left cell is the previous output


def test_ui_positional_args_with_an_uploaded_video(webui, tmp_path):
    from lib_vidsd.video import probe, write_video
    from vidsd_a1111 import binding

    video = write_video(_clip(5), tmp_path / "in.mp4", fps=10)

    class Upload:
        name = str(video)

    values = {b.field: binding.MULTIFRAME.fields[b.field].default for b in binding.MULTIFRAME.widget_bindings()}
    values.update(mode="cross_frame", max_frames=3, format=["gif"])
    p, processed = _run(webui, [Upload(), *[values[b.field] for b in binding.MULTIFRAME.widget_bindings()]])
    (gif,) = (Path(p.outpath_samples) / "multiframe").rglob("*.gif")
    info = probe(gif)
    assert info.frame_count == 3 and info.fps == pytest.approx(10)
    assert processed.images[0] == str(gif) and len(processed.images) == 1 + 3


def test_input_folders_only_inside_the_roots_and_422s(webui, tmp_path):
    from modules import shared

    from vidsd_a1111 import api

    root = tmp_path / "inputs"
    (root / "clip").mkdir(parents=True)
    for i, f in enumerate(_clip(3)):
        Image.fromarray(f).save(root / "clip" / f"{i}.png")

    def ask(args):
        return api.check_request({"script_name": "Multi-frame rendering", "script_args": args}, model_is_sdxl=None)

    assert ask([{"input_dir": "clip"}])["field"] == "input_dir"  # no roots configured yet
    shared.opts.data["vidsd_input_roots"] = str(root)
    assert ask([{"input_dir": "clip"}]) is None
    assert ask([{"input_dir": "../"}])["field"] == "input_dir"
    assert ask([{"input_dir": "clip", "input_frames": ["x"]}])["field"] in ("input_frames", "input_dir")
    assert ask([{"input_dir": "clip", "mode": "sideways"}])["field"] == "mode"
    assert ask([{"input_dir": "clip", "interp": "rife"}])["field"] == "interp_model"
    assert ask([{}])["field"] in ("input_video", "input_frames", "input_dir")
    p, _ = _run(webui, [{"input_dir": "clip", "format": ["webm"], "color_correction": True, "seed_mode": "increment"}])
    (webm,) = (Path(p.outpath_samples) / "multiframe").rglob("*.webm")
    assert webm.stat().st_size > 0


def test_interrupt_between_frames_keeps_finished_frames_and_restores_the_unet(webui, monkeypatch):
    from modules import processing, shared

    from lib_vidsd.patching import is_patched

    original, calls = processing.process_images, []

    def interrupt_after_two(p):
        calls.append(1)
        result = original(p)
        if len(calls) == 2:
            shared.state.interrupted = True
        return result

    monkeypatch.setattr(processing, "process_images", interrupt_after_two)
    frames = [_b64_png(f) for f in _clip(5)]
    _p, processed = _run(webui, [{"input_frames": frames, "mode": "both", "output_name": "cut", "format": ["gif"]}])
    out = next((Path(shared.opts.data["outdir_img2img_samples"]) / "multiframe").glob("cut*"))
    assert sorted(x.name for x in out.iterdir()) == ["00000.png"]  # frame 2 was cut short: not saved, no video
    assert "Multi-frame frames: 1 (stopped early)" in processed.info and len(processed.images) == 1
    assert _p.extra_generation_params["Multi-frame frames"] == "1 (stopped early)"  # what the API returns
    assert not is_patched(shared.sd_model.model.diffusion_model)


def test_ui_zero_means_empty_and_frame_infotexts_have_the_frame_size(webui):
    from vidsd_a1111 import binding

    values = {b.field: binding.MULTIFRAME.fields[b.field].default for b in binding.MULTIFRAME.widget_bindings()}
    values.update(end=0, max_frames=0, fps=0, format=["gif"], mode="filmstrip")  # what gr.Number sends for empty
    frames_dir = None
    from vidsd_a1111.multiframe_job import parse

    params, _ = parse([None, *[values[b.field] for b in binding.MULTIFRAME.widget_bindings()]])
    assert params.end is None and params.max_frames is None and params.fps is None
    frames = [_b64_png(f) for f in _clip(3)]
    p, processed = _run(webui, [{"input_frames": frames, "format": ["gif"]}])
    frames_dir = next((Path(p.outpath_samples) / "multiframe").iterdir())
    text = Image.open(frames_dir / "00002.png").text["parameters"]
    assert "Size: 64x64" in text and "Multi-frame frame: 2" in text
    assert processed.infotexts[-1] == text  # the gallery's frame carries it too


def test_bad_content_answers_422_before_rendering(webui, tmp_path):
    from modules import shared

    from vidsd_a1111 import api

    def ask(args, **body):
        request = {"script_name": "Multi-frame rendering", "script_args": args, "width": 64, "height": 64, **body}
        return api.check_request(request, model_is_sdxl=None)

    good = [_b64_png(f) for f in _clip(2)]
    assert ask([{"input_frames": good}]) is None
    assert ask([{"input_frames": [*good, "@@@"]}])["field"] == "input_frames"
    not_image = base64.b64encode(b"hello").decode()
    assert ask([{"input_frames": [*good, not_image]}])["field"] == "input_frames"
    assert ask([{"input_video": base64.b64encode(b"\0" * 500).decode()}])["field"] == "input_video"
    assert ask([{"input_frames": good, "start": 10}])["field"] == "start"
    assert ask([{"input_frames": good, "frame_prompts": "0: a\n50: b"}])["field"] == "frame_prompts"
    masks = tmp_path / "roots" / "masks"
    masks.mkdir(parents=True)
    Image.new("L", (64, 64), 255).save(masks / "0.png")
    shared.opts.data["vidsd_input_roots"] = str(tmp_path / "roots")
    assert ask([{"input_frames": good, "mask_dir": "masks"}])["field"] == "mask_dir"  # no mask for frame 1
    assert ask([{"input_frames": good, "fps": 200, "interp": "blend", "interp_x": 4}])["field"] == "interp_x"


def test_folder_source_masks_are_checked_up_front(webui, tmp_path):
    from modules import shared

    from vidsd_a1111 import api

    root = tmp_path / "roots"
    (root / "clip").mkdir(parents=True)
    (root / "masks").mkdir()
    for i, f in enumerate(_clip(3)):
        Image.fromarray(f).save(root / "clip" / f"f{i}.png")
    for i in range(2):
        Image.new("L", (64, 64), 255).save(root / "masks" / f"f{i}.png")
    shared.opts.data["vidsd_input_roots"] = str(root)
    body = {"script_name": "Multi-frame rendering", "width": 64, "height": 64}
    answer = api.check_request(
        {**body, "script_args": [{"input_dir": "clip", "mask_dir": "masks"}]}, model_is_sdxl=None
    )
    assert answer["field"] == "mask_dir" and "f2" in answer["detail"]
    ok = {**body, "script_args": [{"input_dir": "clip", "mask_dir": "masks", "max_frames": 2}]}
    assert api.check_request(ok, model_is_sdxl=None) is None


def test_api_list_form_is_read_alike_by_the_422_check_and_the_run(webui, tmp_path):
    """Regression: the 422 check read the list form shifted by one (``[None, *args]``) while the run
    read it as it came. Both now read it as A1111 lays it out: the upload slot, then the widgets."""
    from modules import shared

    from lib_vidsd.video import probe
    from vidsd_a1111 import api, binding
    from vidsd_a1111.multiframe_job import parse

    root = tmp_path / "inputs"
    (root / "clip").mkdir(parents=True)
    for i, f in enumerate(_clip(3)):
        Image.fromarray(f).save(root / "clip" / f"{i}.png")
    shared.opts.data["vidsd_input_roots"] = str(root)
    fields = [b.field for b in binding.MULTIFRAME.widget_bindings()]
    values = {f: binding.MULTIFRAME.fields[f].default for f in fields}
    values.update(mode="cross_frame", input_dir="clip", max_frames=2, format=["gif"], deflicker="fast")
    values.update(deflicker_window=1, output_name="listed")
    listed = [None, *[values[f] for f in fields]]
    body = {"script_name": "Multi-frame rendering", "script_args": listed, "width": 64, "height": 64}
    assert api.check_request(body, model_is_sdxl=None) is None
    params = parse(listed, is_api=True)[0]
    assert params == parse(listed)[0] and params.mode.value == "cross_frame" and params.max_frames == 2
    bad = list(listed)
    bad[1 + fields.index("first_denoise")] = 7
    assert api.check_request({**body, "script_args": bad}, model_is_sdxl=None)["field"] == "first_denoise"
    named = ["/etc/passwd", *listed[1:]]  # over HTTP the upload slot never names a server file
    assert api.check_request({**body, "script_args": named}, model_is_sdxl=None)["field"] == "script_args"
    p, _ = _run(webui, listed)  # the run reads the same list: 2 frames, cross-frame, deflickered
    out = Path(p.outpath_samples) / "multiframe" / "listed"
    assert sorted(x.name for x in out.glob("*.png")) == ["00000.png", "00001.png"]
    assert probe(out / "listed.gif").frame_count == 2 and len(list((out / "deflickered").glob("*.png"))) == 2
