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


# --- ControlNet (the sd-webui-controlnet contract stub) ------------------------------------------

CONTROLNET = ROOT / "tests" / "a1111_stub" / "sd-webui-controlnet"


@pytest.fixture
def webui_cn(a1111):
    from modules import scripts

    from tests.rig.a1111 import install_extension

    install_extension(ROOT)
    install_extension(CONTROLNET, "sd-webui-controlnet")
    scripts.load_scripts()
    yield {s.script_class.__name__: s.script_class for s in scripts.scripts_data}
    for name in [m for m in sys.modules if m.startswith(("internal_controlnet", "vidsd_a1111.multiframe_job"))]:
        sys.modules.pop(name, None)


def _run_cn(classes, args, units, monkeypatch, fail_at=None, **fields):
    """A Multi-frame job with the ControlNet stub and ``units``; records, per ``process_images``,
    the enabled units' images as ControlNet's ``process`` reads them (through external_code) and
    the hints it built. Returns (p or None, processed or the exception, seen, runner, script_args)."""
    from modules import processing

    from tests.rig.a1111 import make_runner, run_img2img

    script, cn = classes["MultiFrameScript"](), classes["Script"]()
    code = sys.modules["internal_controlnet.external_code"]
    seen, jobs = [], []
    process = type(cn).process

    def spy_process(self, p, *a):
        units_now = [u for u in code.get_all_units_in_processing(p) if u.enabled]
        process(self, p, *a)
        hints = [tuple(c.hint_cond.shape) for c in self.latest_network.control_params]
        seen.append(([None if u.image is None else np.array(u.image) for u in units_now], hints))

    original = processing.process_images

    def spy_images(p):
        jobs.append(p)
        if fail_at is not None and len(jobs) == fail_at:
            raise RuntimeError("boom")
        return original(p)

    monkeypatch.setattr(type(cn), "process", spy_process)
    monkeypatch.setattr(processing, "process_images", spy_images)
    runner, script_args = make_runner([cn, script], is_img2img=True, args={cn: units, script: args}, selected=script)
    init = Image.new("RGB", (64, 64), (128, 128, 128))
    fields = {"prompt": "a cat", "steps": 2, "width": 64, "height": 64, "seed": 5, "cfg_scale": 5,
              "denoising_strength": 0.5, "init_images": [init], **fields}  # fmt: skip
    try:
        p, processed = run_img2img(runner, script_args, **fields)
    except RuntimeError as e:
        return jobs[0] if jobs else None, e, seen, runner, script_args
    return p, processed, seen, runner, script_args


def _expected_strips(clip, third, loopback="PreviousFrame"):
    """The control image of each frame, written out per option (independent of the strip code)."""
    out = [clip[0]]
    for k in range(1, len(clip)):
        left = {"PreviousFrame": clip[k - 1], "InputFrame": clip[k], "FirstGen": clip[0]}[loopback]
        right = {"None": None, "FirstGen": clip[0], "OriginalImg": clip[k],
                 "Historical": clip[k - 2] if k >= 2 else clip[0]}[third]  # fmt: skip
        out.append(np.concatenate([left, clip[k]] + ([] if right is None else [right]), axis=1))
    return out


@pytest.mark.parametrize(
    ("third", "loopback", "mode"),
    [
        ("None", "PreviousFrame", "filmstrip"),
        ("FirstGen", "InputFrame", "filmstrip"),
        ("OriginalImg", "FirstGen", "both"),
        ("Historical", "PreviousFrame", "filmstrip"),
    ],
)
def test_controlnet_units_follow_the_strip_of_the_source_frames(webui_cn, monkeypatch, third, loopback, mode):
    clip = _clip(4)
    own = np.full((64, 64, 3), 200, np.uint8)
    units = [{"enabled": True, "module": "canny"}, {"enabled": True, "image": own}, {"enabled": False}]
    args = [{"input_frames": [_b64_png(f) for f in clip], "mode": mode, "third_frame": third,
             "loopback_source": loopback, "format": []}]  # fmt: skip
    p, processed, seen, runner, script_args = _run_cn(webui_cn, args, units, monkeypatch)
    assert "Multi-frame frames: 4" in processed.info
    expected = _expected_strips(clip, third, loopback)
    assert len(seen) == 4
    for k, (images, hints) in enumerate(seen):
        assert len(images) == 2  # the disabled unit stays out
        assert np.array_equal(images[0], expected[k]), k  # pixel-exact, at the strip's size
        assert images[1] is not None and np.array_equal(images[1], own)  # its own image: untouched
        assert hints[0] == (1, 3, 64, expected[k].shape[1])  # ControlNet built its hint from that image
    assert {expected[k].shape[1] for k in range(1, 4)} == {128 if third == "None" else 192}
    assert all(a is b for a, b in zip(p.script_args, script_args, strict=True))  # the job's arguments put back
    assert units[0] == {"enabled": True, "module": "canny"}


def test_controlnet_units_get_the_source_frame_in_cross_frame_mode(webui_cn, monkeypatch):
    clip = _clip(3)
    code = sys.modules["internal_controlnet.external_code"]
    unit = code.ControlNetUnit(enabled=True, module="depth")  # the UI's form: unit objects
    args = [{"input_frames": [_b64_png(f) for f in clip], "mode": "cross_frame", "format": []}]
    p, _, seen, runner, script_args = _run_cn(webui_cn, args, [unit, code.ControlNetUnit()], monkeypatch)
    assert len(seen) == 3
    for k, (images, hints) in enumerate(seen):
        assert len(images) == 1 and np.array_equal(images[0], clip[k]) and hints == [(1, 3, 64, 64)]
    assert unit.image is None and p.script_args[1] is unit  # the user's unit itself was never changed
    cn = runner.alwayson_scripts[0]
    assert (cn.args_from, cn.args_to) == (1, 3)


def test_controlnet_strip_after_a_resume_uses_the_frames_done_before(webui_cn, monkeypatch):
    clip = _clip(4)
    units = [{"enabled": True, "module": "canny"}]
    common = {"input_frames": [_b64_png(f) for f in clip], "mode": "filmstrip", "third_frame": "Historical",
              "format": [], "output_name": "resumed"}  # fmt: skip
    _, _, seen, _, _ = _run_cn(webui_cn, [{**common, "max_frames": 2}], units, monkeypatch)
    assert len(seen) == 2
    _, processed, seen, _, _ = _run_cn(webui_cn, [{**common, "resume": True}], units, monkeypatch)
    assert "Multi-frame frames: 4" in processed.info and len(seen) == 2  # frames 2 and 3 only
    expected = _expected_strips(clip, "Historical")
    assert np.array_equal(seen[0][0][0], expected[2]) and np.array_equal(seen[1][0][0], expected[3])


def test_controlnet_units_are_restored_after_an_error(webui_cn, monkeypatch):
    from modules import shared

    from lib_vidsd.patching import is_patched

    clip = _clip(4)
    units = [{"enabled": True, "module": "canny"}]
    args = [{"input_frames": [_b64_png(f) for f in clip], "mode": "both", "format": []}]
    p, error, seen, runner, script_args = _run_cn(webui_cn, args, units, monkeypatch, fail_at=3)
    assert isinstance(error, RuntimeError) and len(seen) == 2  # frames 0 and 1 rendered, then the failure
    assert np.array_equal(seen[1][0][0], _expected_strips(clip, "FirstGen")[1])
    assert all(a is b for a, b in zip(p.script_args, script_args, strict=True))
    assert units == [{"enabled": True, "module": "canny"}]
    assert not is_patched(shared.sd_model.model.diffusion_model)


def test_ui_note_recommends_controlnet_when_it_is_not_installed(webui):
    from vidsd_a1111 import ui

    assert ui.multiframe_note() == ui.CONTROLNET_RECOMMENDED
    assert "ControlNet is recommended for filmstrip mode" in ui.CONTROLNET_RECOMMENDED


def test_ui_note_says_what_controlnet_units_follow_when_it_is_installed(webui_cn):
    from vidsd_a1111 import ui

    assert ui.multiframe_note() == ui.CONTROLNET_NOTE and "strip of the source frames" in ui.CONTROLNET_NOTE


# --- the img2img batch tab (A1111's process_batch calls run once per image on one p) --------------


def _process_batch(cls, args, images, *, masks=None, stop_after=None, spy=None, **fields):
    """What A1111 v1.10's img2img *Batch* tab does (``modules/img2img.py`` ``process_batch``, read
    for the facts): one ``p`` (``init_images=[None]``, no mask) for the whole batch, ``fix_seed``,
    ``state.job_count = len(images) · n_iter``; per image: ``state.job = "<i+1> out of <n>"``, the
    skip flag cleared, the loop left on interrupt or stop, ``p.init_images = [image] · batch_size``,
    ``p.image_mask`` when a mask folder is given, the selected script's ``run(p, *args)`` (and
    ``process_images`` when it returns ``None``), the results gathered. ``stop_after``: leave the loop
    before that image (as when A1111 is stopped between images). ``spy(p)`` runs after each
    ``process_images`` (a flag it sets is seen as if set during sampling). Returns (p, gathered results, each call's result, process_images calls); each
    call's result gets ``shown``, how many images it returned (the first one gathers the others)."""
    import contextlib

    from modules import processing, shared

    from tests.rig.a1111 import make_runner

    script = cls()
    runner, script_args = make_runner([script], is_img2img=True, args={script: args}, selected=script)
    state, opts = shared.state, shared.opts
    fields = {"prompt": "a cat", "steps": 2, "width": 64, "height": 64, "seed": 5, "cfg_scale": 5,
              "denoising_strength": 0.5, "init_images": [None], **fields}  # fmt: skip
    p = processing.StableDiffusionProcessingImg2Img(
        sd_model=shared.sd_model, outpath_samples=opts.outdir_img2img_samples,
        outpath_grids=opts.outdir_img2img_grids, **fields,
    )  # fmt: skip
    p.scripts, p.script_args = runner, tuple(script_args)
    original, renders, calls, results = processing.process_images, [], [], None

    def process_images(q):
        renders.append(q)
        processed = original(q)
        if spy is not None:
            spy(q)
        return processed

    processing.process_images = process_images
    state.begin(job="task(img2img)")
    try:
        with contextlib.closing(p):
            processing.fix_seed(p)
            state.job_count = len(images) * p.n_iter
            for i, image in enumerate(images):
                if i == stop_after:
                    break
                state.job = f"{i + 1} out of {len(images)}"
                if state.skipped:
                    state.skipped = False
                if state.interrupted or state.stopping_generation:
                    break
                p.init_images = [Image.fromarray(image)] * p.batch_size
                if masks is not None:
                    p.image_mask = Image.fromarray(masks[i])
                proc = runner.run(p, *script_args) or processing.process_images(p)
                proc.shown = len(proc.images)
                calls.append(proc)
                if results is None:
                    results = proc
                else:
                    results.images.extend(proc.images)
                    results.infotexts.extend(proc.infotexts)
    finally:
        processing.process_images = original
        state.skipped = state.interrupted = state.stopping_generation = False
        state.job, state.job_count = "", 0
    return p, results, calls, renders


def _frames(folder):
    return [np.asarray(Image.open(f)) for f in sorted(Path(folder).glob("*.png"))]


def test_batch_tab_images_are_one_clip_rendered_like_the_same_frames_given_as_input(webui):
    from modules import shared

    from lib_vidsd.patching import is_patched
    from lib_vidsd.video import probe

    clip = _clip(6)
    settings = {"mode": "both", "format": ["mp4", "gif"], "fps": 6, "color_correction": True}
    p, results, calls, renders = _process_batch(webui, [{**settings, "output_name": "batch"}], clip)
    out = Path(shared.opts.outdir_img2img_samples) / "multiframe" / "batch"
    assert sorted(x.name for x in out.glob("*.png")) == [f"{i:05d}.png" for i in range(6)]
    assert probe(out / "batch.mp4").frame_count == 6 and probe(out / "batch.gif").frame_count == 6
    assert len(renders) == 6 and all(q is p for q in renders)  # one render per image, no plain img2img
    assert [c.shown for c in calls] == [0] * 5 + [1 + 6]  # the last call returns the clip
    assert results.images == [str(out / "batch.gif")] + [str(out / f"{i:05d}.png") for i in range(6)]
    assert "Multi-frame frames: 6" in calls[-1].info and results.info == calls[-1].info  # what the UI shows
    assert not is_patched(shared.sd_model.model.diffusion_model)  # cross-frame attention restored
    assert (p.width, p.height, p.prompt, p.seed, p.denoising_strength) == (64, 64, "a cat", 5, 0.5)
    # the same images given as the job's own input: the very same frames
    _run(webui, [{**settings, "input_frames": [_b64_png(f) for f in clip], "output_name": "frames"}])
    alone = Path(shared.opts.outdir_img2img_samples) / "multiframe" / "frames"
    for k, (a, b) in enumerate(zip(_frames(out), _frames(alone), strict=True)):
        assert np.array_equal(a, b), k


def test_batch_tab_selection_rendered_and_strip_centres_follow_the_batch_order(webui):
    from modules import shared

    clip = _clip(6)
    seen = []
    args = [{"mode": "filmstrip", "third_frame": "None", "every": 2, "start": 1, "format": ["gif"], "fps": 4,
             "deflicker": "fast", "deflicker_window": 1}]  # fmt: skip
    _p, results, calls, renders = _process_batch(webui, args, clip, spy=lambda q: seen.append(q.init_images[0]))
    assert len(renders) == 3 and shared.state.job_no == 6  # every image counted once, rendered or not
    assert np.array_equal(np.asarray(seen[0]), clip[1])  # images 1, 3, 5: frame 0 alone, then strips
    assert np.array_equal(np.asarray(seen[1])[:, 64:], clip[3]) and np.array_equal(np.asarray(seen[2])[:, 64:], clip[5])
    assert [c.shown for c in calls] == [0, 0, 0, 0, 0, 1 + 3]
    (gif,) = (Path(shared.opts.outdir_img2img_samples) / "multiframe").rglob("*.gif")
    from lib_vidsd.video import probe

    assert probe(gif).frame_count == 3
    smooth = sorted((gif.parent / "deflickered").glob("*.png"))  # guided by the three selected images
    assert [f.name for f in smooth] == ["00000.png", "00001.png", "00002.png"]
    assert results.images[1:] == [str(f) for f in smooth]  # the gallery shows what the video shows


def test_batch_tab_inpaint_masks_become_the_frames_masks(webui):
    clip = _clip(3)
    masks = [np.zeros((64, 64), np.uint8) for _ in clip]
    for k, m in enumerate(masks):
        m[:, 8 * k : 8 * k + 16] = 255
    seen = []
    args = [{"mode": "filmstrip", "third_frame": "FirstGen", "format": []}]
    _process_batch(webui, args, clip, masks=masks, spy=lambda q: seen.append(np.asarray(q.image_mask.convert("L"))))
    assert np.array_equal(seen[0], masks[0])  # frame 0 alone: its own mask
    for k in (1, 2):  # strips: the mask over the centre cell only
        assert np.array_equal(seen[k][:, 64:128], masks[k]) and not seen[k][:, :64].any() and not seen[k][:, 128:].any()


def test_batch_tab_interrupt_keeps_the_frames_and_resume_finishes_the_clip(webui):
    from modules import shared

    from lib_vidsd.patching import is_patched
    from lib_vidsd.video import probe

    clip, count = _clip(5), []

    def interrupt_at_three(q):
        count.append(1)
        if len(count) == 3:
            shared.state.interrupted = True

    args = {"mode": "both", "format": ["gif"], "output_name": "cut"}
    _p, results, calls, renders = _process_batch(webui, [args], clip, spy=interrupt_at_three)
    out = Path(shared.opts.outdir_img2img_samples) / "multiframe" / "cut"
    assert len(calls) == 3 and len(renders) == 3  # A1111 left the batch after the interrupted image
    assert sorted(x.name for x in out.iterdir()) == ["00000.png", "00001.png"]  # no video
    assert "Multi-frame frames: 2 (stopped early)" in calls[-1].info and len(results.images) == 2
    assert not is_patched(shared.sd_model.model.diffusion_model)
    _p, results, calls, renders = _process_batch(webui, [{**args, "resume": True}], clip)
    assert probe(out / "cut.gif").frame_count == 5
    assert len(renders) == 3 + 2  # frames 2..4, and frames 0 and 1 again for the cross-frame references
    assert not is_patched(shared.sd_model.model.diffusion_model)


def test_batch_tab_skip_ends_the_clip_with_a_video_and_renders_no_more(webui):
    from modules import shared

    from lib_vidsd.video import probe

    count = []

    def skip_at_three(q):
        count.append(1)
        if len(count) == 3:
            shared.state.skipped = True

    args = [{"mode": "filmstrip", "format": ["gif"], "output_name": "skip"}]
    _p, results, calls, renders = _process_batch(webui, args, _clip(5), spy=skip_at_three)
    out = Path(shared.opts.outdir_img2img_samples) / "multiframe" / "skip"
    assert len(calls) == 5 and len(renders) == 3  # images 4 and 5 rendered nothing (and not plain img2img)
    assert probe(out / "skip.gif").frame_count == 2
    assert "Multi-frame frames: 2 (stopped early)" in calls[2].info
    assert [c.shown for c in calls] == [0, 0, 1 + 2, 0, 0]


def test_an_abandoned_batch_never_leaves_the_unet_patched_for_the_next_job(webui):
    import torch
    from modules import shared

    from lib_vidsd.patching import is_patched
    from tests.rig.a1111 import make_runner, run_img2img

    unet = shared.sd_model.model.diffusion_model
    clip = _clip(5)
    plain = {"prompt": "a dog", "steps": 2, "width": 64, "height": 64, "seed": 9, "denoising_strength": 0.6,
             "init_images": [Image.fromarray(clip[0])]}  # fmt: skip
    runner, script_args = make_runner([], is_img2img=True)
    torch.manual_seed(0)
    _p, before = run_img2img(runner, script_args, **plain)
    _process_batch(webui, [{"mode": "cross_frame", "format": ["gif"]}], clip, stop_after=3)
    assert is_patched(unet)  # the batch was left between images: its job is still waiting
    _p, after = run_img2img(runner, script_args, **plain)  # an unrelated job: dropped before its first step
    assert not is_patched(unet)
    assert np.array_equal(np.asarray(before.images[0]), np.asarray(after.images[0]))
    gifs = list((Path(shared.opts.outdir_img2img_samples) / "multiframe").rglob("*.gif"))
    assert gifs == []  # the abandoned clip got no video; its three frames stay
    # a new Multi-frame job drops a leftover too
    _process_batch(webui, [{"mode": "cross_frame", "format": []}], clip, stop_after=2)
    assert is_patched(unet)
    _run(webui, [{"input_frames": [_b64_png(f) for f in clip[:2]], "mode": "filmstrip", "format": []}])
    assert not is_patched(unet)


def test_the_img2img_tab_without_an_input_still_names_the_missing_input(webui):
    from lib_vidsd.errors import ConfigError

    with pytest.raises(ConfigError) as e:
        _run(webui, [{"mode": "filmstrip"}])
    assert e.value.field == "input_video"
