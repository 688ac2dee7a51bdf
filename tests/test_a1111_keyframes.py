"""Keyframe animation through the A1111 contract stub: the selectable txt2img/img2img script, prompt
and noise slerp on A1111's conds and RNG, batches, 2D loopback, video input, coherence, resume,
interrupt, the API's 422s, infotext paste and the audio route."""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
CLICKS = "keyframes/audio/clicks_120bpm_22k.wav"
SIZE = {"width": 64, "height": 64}


@pytest.fixture
def webui(a1111):
    from modules import scripts

    from tests.rig.a1111 import install_extension

    install_extension(ROOT)
    scripts.load_scripts()
    cls = next(s.script_class for s in scripts.scripts_data if s.script_class.__name__ == "KeyframeScript")
    yield cls
    from vidsd_a1111 import keyframes_job

    assert keyframes_job.ACTIVE.coherence is None  # never left behind


def _recorder():
    """An AlwaysVisible script that records each batch's prompts, seeds, noise and init images."""
    from modules import scripts

    class Recorder(scripts.Script):
        calls: list = []

        def title(self):
            return "Recorder"

        def show(self, is_img2img):
            return scripts.AlwaysVisible

        def process_before_every_sampling(self, p, *args, **kwargs):
            inits = [np.asarray(x.convert("RGB")) for x in p.init_images] if hasattr(p, "init_images") else None
            self.calls.append(
                {"p": p, "prompts": list(p.prompts), "seeds": list(p.seeds), "noise": kwargs["noise"].clone(),
                 "inits": inits, "strength": p.denoising_strength, "cfg": p.cfg_scale, "torch_seed": torch.initial_seed()}
            )  # fmt: skip

    rec = Recorder()
    rec.calls = []
    return rec


def _run(cls, args, *, img2img=False, record=False, **fields):
    from tests.rig.a1111 import make_runner, run_img2img, run_txt2img

    script = cls()
    scripts_ = [script]
    rec = None
    if record:
        rec = _recorder()
        scripts_.append(rec)
    runner, script_args = make_runner(scripts_, is_img2img=img2img, args={script: args}, selected=script)
    fields = {"prompt": "", "steps": 1, "seed": 5, "cfg_scale": 5, **SIZE, **fields}
    if img2img:
        fields.setdefault("init_images", [Image.new("RGB", (64, 64), (120, 60, 200))])
        p, processed = run_img2img(runner, script_args, **fields)
    else:
        p, processed = run_txt2img(runner, script_args, **fields)
    return (p, processed, rec) if record else (p, processed)


def _plain(prompt, seed, **fields):
    from tests.rig.a1111 import make_runner, run_txt2img

    runner, args = make_runner([])
    fields = {"steps": 1, "cfg_scale": 5, **SIZE, **fields}
    _p, processed = run_txt2img(runner, args, prompt=prompt, seed=seed, **fields)
    return np.asarray(processed.images[0].convert("RGB"))


def _png(path):
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


def _out(p, name):
    return Path(p.outpath_samples) / "keyframes" / name


def _count_calls(monkeypatch, after=None):
    from modules import processing

    original, calls = processing.process_images, []

    def spy(p):
        calls.append(p)
        result = original(p)
        if after is not None:
            after(len(calls))
        return result

    monkeypatch.setattr(processing, "process_images", spy)
    return calls


def _image_rng_noise(seed):
    from modules import rng

    return rng.ImageRNG((4, 8, 8), [seed]).next()[0]


def _cond(prompt):
    from modules import shared

    return shared.sd_model.get_learned_conditioning([prompt])[0]


def test_2d_animation_with_two_keys_zoom_and_colour_match(webui, monkeypatch):
    from lib_vidsd.video import probe

    calls = _count_calls(monkeypatch)
    args = [{"prompts": "0: a red ball\n6: a blue cube", "max_frames": 12, "mode": "2d", "zoom": "0: (1.05)",
             "color_match": 1, "format": ["gif", "mp4"], "output_name": "ball"}]  # fmt: skip
    p, processed = _run(webui, args)
    out = _out(p, "ball")
    assert sorted(x.name for x in out.glob("*.png")) == [f"{i:05d}.png" for i in range(12)]
    assert probe(out / "ball.mp4").frame_count == 12 and probe(out / "ball.gif").frame_count == 12
    assert len(calls) == 12  # 2D loopback: one frame per call
    assert type(calls[0]).__name__ == "StableDiffusionProcessingTxt2Img"
    assert all(type(c).__name__ == "StableDiffusionProcessingImg2Img" for c in calls[1:])
    assert calls[1].denoising_strength == 0.65 and calls[1].init_images[0].size == (64, 64)
    assert processed.images[0] == str(out / "ball.gif") and len(processed.images) == 13
    text = processed.infotexts[1 + 3]
    assert text == Image.open(out / "00003.png").text["parameters"]
    assert text.startswith("a red ball\n") and "Keyframe animation: " in text and "frame: 3" in text
    assert "Seed: 5," in text and "Keyframe frames: 12" in processed.info
    assert any("ball.mp4" in line for line in processed.comments.splitlines())


def test_a_key_frame_equals_a_plain_generation_with_its_prompt_and_seed(webui):
    args = [{"prompts": "0: a cat\n4: a dog", "format": []}]
    p, processed = _run(webui, args, seed=11)
    out = next((Path(p.outpath_samples) / "keyframes").iterdir())
    from lib_vidsd.keyframe import seed_schedule

    assert np.array_equal(_png(out / "00000.png"), _plain("a cat", 11))
    assert np.array_equal(_png(out / "00004.png"), _plain("a dog", seed_schedule(11, 5)[4]))
    assert not np.array_equal(_png(out / "00002.png"), _png(out / "00000.png"))


def test_a_mid_segment_frame_gets_the_slerp_of_conds_and_noises(webui):
    from modules import script_callbacks

    from lib_vidsd.keyframe import seed_schedule, slerp

    seen = []
    script_callbacks.on_cfg_denoiser(lambda params: seen.append(params.text_cond.clone()))
    args = [{"prompts": "0: a cat\n4: a dog", "format": []}]
    _p, _processed, rec = _run(webui, args, record=True, seed=11)
    assert len(rec.calls) == 5 and len(seen) == 5
    seed_b = seed_schedule(11, 5)[4]
    assert [c["seeds"] for c in rec.calls] == [[11]] * 5 and [c["prompts"] for c in rec.calls] == [["a cat"]] * 5
    for k, w in ((1, 0.25), (2, 0.5), (3, 0.75)):
        torch.testing.assert_close(seen[k][0], slerp(_cond("a cat"), _cond("a dog"), w), rtol=0, atol=1e-6)
        expected = slerp(_image_rng_noise(11), _image_rng_noise(seed_b), w)
        torch.testing.assert_close(rec.calls[k]["noise"][0], expected, rtol=0, atol=1e-6)
    assert torch.equal(seen[0][0], _cond("a cat")) and torch.equal(seen[4][0], _cond("a dog"))
    assert torch.equal(rec.calls[0]["noise"][0], _image_rng_noise(11))
    assert torch.equal(rec.calls[4]["noise"][0], _image_rng_noise(seed_b))


def test_styles_apply_to_both_keys_of_a_blend(webui):
    from modules import script_callbacks, shared, styles

    from lib_vidsd.keyframe import slerp

    shared.prompt_styles.styles["grain"] = styles.PromptStyle("grain", "{prompt}, film grain", "")
    seen = []
    script_callbacks.on_cfg_denoiser(lambda params: seen.append(params.text_cond.clone()))
    _run(webui, [{"prompts": "0: a cat\n2: a dog", "format": []}], styles=["grain"])
    expected = slerp(_cond("a cat, film grain"), _cond("a dog, film grain"), 0.5)
    torch.testing.assert_close(seen[1][0], expected, rtol=0, atol=1e-6)


def test_the_cached_cond_is_never_changed(webui):
    from modules import processing

    args = [{"prompts": "0: a cat\n4: a dog", "format": []}]  # every frame's own prompt is "a cat"
    _run(webui, args, seed=3)
    cached = processing.StableDiffusionProcessing.cached_c[1]
    assert cached is not None and cached.batch[0][0].schedules[0].cond.equal(_cond("a cat"))


def test_none_mode_renders_in_batches(webui, monkeypatch):
    calls = _count_calls(monkeypatch)
    args = [{"prompts": "0: a cat\n11: a dog", "format": ["gif"], "output_name": "batched"}]
    p, processed = _run(webui, args, batch_size=4)
    assert [c.batch_size for c in calls] == [4, 4, 4] and len(processed.images) == 1 + 12
    assert all(c.all_prompts == ["a cat"] * 4 for c in calls)  # each frame's key a, slerped toward b
    assert len({_png(_out(p, "batched") / f"{k:05d}.png").tobytes() for k in range(12)}) == 12


def test_img2img_tab_starts_every_frame_from_the_init_image(webui):
    init = np.zeros((64, 64, 3), np.uint8)
    init[:, :32] = (250, 20, 20)
    args = [{"prompts": "0: a cat\n2: a dog", "strength": "0: (0.4), 2: (0.6)", "format": []}]
    _p, processed, rec = _run(webui, args, img2img=True, record=True, init_images=[Image.fromarray(init)])
    assert len(processed.images) == 3 and len(rec.calls) == 3
    assert [round(c["strength"], 3) for c in rec.calls] == [0.4, 0.5, 0.6]
    assert all(np.array_equal(c["inits"][0], init) for c in rec.calls)
    assert [c["torch_seed"] for c in rec.calls] == [5] * 3  # the VAE's posterior sample: seeded per frame


def test_video_mode_uses_the_input_frames_api_and_ui(webui, tmp_path):
    from lib_vidsd.video import write_video
    from vidsd_a1111 import binding

    frames = [np.full((64, 64, 3), 40 * i, np.uint8) for i in range(4)]
    video = write_video(frames, tmp_path / "in.mp4", fps=8)
    b64 = base64.b64encode(video.read_bytes()).decode()
    args = [{"mode": "video", "video": b64, "strength": "0: (0.5)", "format": ["mp4"], "output_name": "vid"}]
    p, processed, rec = _run(webui, args, record=True, prompt="a cat")
    assert len(rec.calls) == 4 and len(processed.images) == 4  # no GIF: the MP4's path is in the comments
    assert [int(c["inits"][0].mean()) for c in rec.calls] == pytest.approx([0, 40, 80, 120], abs=3)
    from lib_vidsd.video import probe

    assert probe(_out(p, "vid") / "vid.mp4").fps == pytest.approx(8)

    class Upload:
        name = str(video)

    values = binding.KEYFRAMES.defaults()
    values.update(mode="video", video_every=2, format=[], fps=0)
    widgets = [values[b.field] for b in binding.KEYFRAMES.widget_bindings()]
    _p, processed = _run(webui, [None, Upload(), *widgets], prompt="a cat")
    assert len(processed.images) == 2


def test_coherence_is_applied_only_while_the_job_runs(webui):
    from modules import script_callbacks

    from vidsd_a1111 import keyframes_job

    active = []
    script_callbacks.on_cfg_after_cfg(lambda params: active.append(keyframes_job.ACTIVE.coherence is not None))
    args = [{"prompts": "0: a cat\n2: a dog", "coherence_scale": 4000, "format": []}]
    p, _ = _run(webui, args, seed=4, steps=2, batch_size=3)
    assert active == [True] * 6  # 3 frames one by one (coherence ties them), 2 steps each
    out = next((Path(p.outpath_samples) / "keyframes").iterdir())
    active.clear()
    plain = _plain("a cat", 4, steps=2)
    assert active == [False, False] and not np.array_equal(_png(out / "00000.png"), plain)  # pulled at step 1


def test_a_failure_mid_job_leaves_no_coherence_and_an_untouched_unet(webui, monkeypatch):
    from modules import shared

    from lib_vidsd.patching import is_patched
    from vidsd_a1111 import keyframes_job

    def boom(n):
        if n == 2:
            raise RuntimeError("boom")

    _count_calls(monkeypatch, after=boom)
    unet = shared.sd_model.model.diffusion_model
    before = {k: v.clone() for k, v in unet.state_dict().items()}
    args = [{"prompts": "0: a cat\n3: a dog", "coherence_scale": 100, "format": ["gif"], "output_name": "crash"}]
    with pytest.raises(RuntimeError, match="boom"):
        _run(webui, args)
    assert keyframes_job.ACTIVE.coherence is None and not is_patched(unet)
    assert all(torch.equal(before[k], v) for k, v in unet.state_dict().items())


def test_interrupt_returns_the_finished_frames_and_resume_completes_them(webui, monkeypatch):
    from modules import shared

    def interrupt(n):
        if n == 3 and not calls_before:
            shared.state.interrupted = True

    calls_before = []
    calls = _count_calls(monkeypatch, after=interrupt)
    args = [{"prompts": "0: a cat\n5: a dog", "mode": "2d", "format": ["gif"], "output_name": "cut"}]
    p, processed = _run(webui, args, seed=9)
    out = _out(p, "cut")
    assert sorted(x.name for x in out.iterdir()) == ["00000.png", "00001.png"]  # frame 3 was cut: no video
    assert len(processed.images) == 2 and "Keyframe frames: 2 (stopped early)" in processed.info
    assert p.extra_generation_params["Keyframe frames"] == "2 (stopped early)"
    first = _png(out / "00000.png")
    calls_before.extend(calls)
    calls.clear()
    monkeypatch.setattr(shared.state, "interrupted", False, raising=False)
    resumed = [{**args[0], "resume": True}]
    p, processed = _run(webui, resumed, seed=-1)  # the run's seed comes back from frame 0's infotext
    assert len(calls) == 4 and p.seed == 9
    assert sorted(x.name for x in out.glob("*.png")) == [f"{i:05d}.png" for i in range(6)]
    assert np.array_equal(_png(out / "00000.png"), first) and (out / "cut.gif").is_file()
    assert len(processed.images) == 1 + 6 and "Keyframe frames: 6," in processed.info


def _ask(args, **body):
    from vidsd_a1111 import api

    request = {"script_name": "Keyframe animation", "script_args": args, "prompt": "x", **SIZE, **body}
    return api.check_request(request, model_is_sdxl=None)


def test_bad_arguments_answer_422_before_the_job(webui, tmp_path):
    from lib_vidsd.video import write_video

    assert _ask([{"prompts": "0: a\n6: b", "mode": "2d", "zoom": "0: (1.05)"}]) is None
    answer = _ask([{"prompts": "0: a\nx6: b"}])
    assert answer["field"] == "prompts" and "character 5" in answer["detail"]
    assert _ask([{"zoom": "0: (1.0), 5: (1.0"}])["field"] == "zoom"  # unused in mode none, still checked
    assert _ask([{"strength": "0: (1.5)"}])["field"] == "strength"
    assert _ask([{"mode": "video"}])["field"] == "video"
    assert _ask([{"mode": "video", "video": base64.b64encode(b"\0" * 400).decode()}])["field"] == "video"
    assert _ask([{"mode": "video", "video": "@@@"}])["field"] == "video"
    assert _ask([{"audio": "not base64!"}])["field"] == "audio"
    assert _ask([{"audio_keys": True}])["field"] == "audio_keys"
    assert _ask([{"interp": "rife"}])["field"] == "interp_model"
    assert _ask([{"interp": "blend", "interp_x": 30, "fps": 10}])["field"] == "interp_x"
    assert _ask([{"sparkle": 1}])["field"] == "sparkle"
    assert _ask([{}], enable_hr=True)["field"] == "enable_hr"
    assert _ask(["/etc/passwd", None])["field"] == "script_args"  # the list form never names a server file
    from vidsd_a1111 import api

    ad = {
        "script_name": "Keyframe animation",
        "script_args": [{}],
        "alwayson_scripts": {"AnimateDiff": {"args": [True]}},
    }
    assert api._check_keyframes(ad)["field"] == "AnimateDiff"  # (the AnimateDiff check itself comes first)
    video = write_video([np.zeros((64, 64, 3), np.uint8)] * 3, tmp_path / "v.mp4", fps=4)
    ok = [{"mode": "video", "video": base64.b64encode(video.read_bytes()).decode()}]
    assert _ask(ok) is None


def test_pasting_a_frames_infotext_restores_every_widget(webui):
    from modules import infotext_utils, script_callbacks

    from vidsd_a1111 import binding

    bnd = binding.KEYFRAMES
    chosen = {"prompts": "0: a, cat\n3: a \"dog\"", "mode": "2d", "zoom": "0: (1.02), 2: (1.1)", "fps": 12,
              "fixed_latent": True, "color_match": 0.5, "color_space": "hsv", "format": ["gif", "webp"],
              "interp": "blend", "interp_x": 3, "coherence_scale": 7, "output_name": "pasted", "border": "wrap"}  # fmt: skip
    p, _ = _run(webui, [chosen], prompt="shiny", seed=21)
    text = Image.open(_out(p, "pasted") / "00002.png").text["parameters"]
    params = infotext_utils.parse_generation_parameters(text)
    assert params["Prompt"].startswith("a, cat, shiny")
    script_callbacks.infotext_pasted_callback(text, params)
    expected = bnd.defaults() | chosen
    for b in bnd.widget_bindings():
        assert params[bnd.paste_label(b.field)] == expected[b.field], b.field
    assert params["Script"] == "Keyframe animation" and params["Prompt"] == "shiny" and params["Seed"] == "21"


def test_widgets_schema_and_infotext_cover_the_fields_with_the_config_defaults(webui):
    from lib_vidsd.config import KeyframeParams
    from vidsd_a1111 import binding, ui

    bnd = binding.KEYFRAMES
    schema = KeyframeParams.schema()["properties"]
    assert {b.field for b in bnd.binds} == set(schema)
    laid_out = set()
    for _kind, fields in ui.KEYFRAMES_LAYOUT:
        for entry in fields:
            laid_out.update(entry if isinstance(entry, tuple) else (entry,))
    assert laid_out == {b.field for b in bnd.widget_bindings()}
    titles = ui.titles("txt2img", bnd)
    for b in bnd.widget_bindings():
        spec = ui.widget_spec(b, False, bnd)
        assert spec["value"] == bnd.fields[b.field].default, b.field
        assert titles[spec["elem_id"]], b.field
    assert set(bnd.widget_bindings()) | {bnd.bind("audio"), bnd.bind("video")} == set(bnd.binds)


def test_travel_helpers_pair_schedules_and_sdxl_dicts(a1111):
    from modules import prompt_parser, rng

    from lib_vidsd.keyframe import slerp
    from vidsd_a1111.keyframes_job import Row, TravelRNG, blend_multicond, blend_schedules

    spc = prompt_parser.ScheduledPromptConditioning
    a = [spc(5, torch.ones(4, 3)), spc(20, torch.full((4, 3), 2.0))]
    b = [spc(10, torch.full((8, 3), -1.0)), spc(20, torch.arange(24.0).reshape(8, 3))]
    out = blend_schedules(a, b, 0.3)
    assert [e.end_at_step for e in out] == [5, 10, 20]
    padded = torch.vstack([torch.full((4, 3), 2.0), torch.full((4, 3), 2.0)])
    torch.testing.assert_close(out[1].cond, slerp(padded, torch.full((8, 3), -1.0), 0.3))  # a's step-10 entry
    sdxl = {"crossattn": torch.randn(4, 3), "vector": torch.randn(6)}
    other = {"crossattn": torch.randn(4, 3), "vector": torch.randn(6)}
    (mixed,) = blend_schedules([spc(20, sdxl)], [spc(20, other)], 0.5)
    torch.testing.assert_close(mixed.cond["vector"], slerp(sdxl["vector"], other["vector"], 0.5))

    comp = prompt_parser.ComposableScheduledPromptConditioning
    c = prompt_parser.MulticondLearnedConditioning((2,), [[comp([spc(20, torch.ones(4, 3))])], [comp(a)]])
    row = Row(weight=0.25, prompt_b="x", seed_b=1, blend_cond=True, blend_noise=True)
    new = blend_multicond(c, {1: [comp(b)]}, [row, row])
    assert new is not c and new.batch[0] is c.batch[0] and c.batch[1][0].schedules is a
    torch.testing.assert_close(new.batch[1][0].schedules[-1].cond, slerp(padded, b[1].cond, 0.25))

    original = rng.ImageRNG((2, 3, 3), [7])
    travel = TravelRNG(original, [Row(0.5, "", 8, False, True)])
    first = travel.next()
    torch.testing.assert_close(
        first[0], slerp(rng.ImageRNG((2, 3, 3), [7]).next()[0], rng.ImageRNG((2, 3, 3), [8]).next()[0], 0.5)
    )
    plain = rng.ImageRNG((2, 3, 3), [7])
    plain.next()
    assert torch.equal(travel.next(), plain.next())  # later calls: the original's step noise
    assert travel.shape == (2, 3, 3)


def test_audio_keys_route_and_a_run_with_audio(webui):
    pytest.importorskip("librosa", reason="audio keyframes need librosa")
    from lib_vidsd.keyframe.audio import audio_keyframes
    from tests.rig.fixtures import require_fixture
    from vidsd_a1111.keyframes_job import analyse_audio, audio_keyframes_request

    wav = require_fixture(CLICKS)
    b64 = base64.b64encode(wav.read_bytes()).decode()
    answer = audio_keyframes_request({"audio": b64, "fps": 4, "component": "percussive"})
    direct = audio_keyframes(wav, 4, "percussive")
    assert answer["frames"] == direct.frames and answer["text"] == direct.text()
    assert analyse_audio(str(wav), 4, "percussive") == direct.text()
    assert analyse_audio(None, 4, "both").startswith("Upload")
    with pytest.raises(ValueError) as e:
        audio_keyframes_request({"audio": b64, "fps": 0})
    assert e.value.field == "fps"
    with pytest.raises(ValueError) as e:
        audio_keyframes_request({"audio": base64.b64encode(b"nonsense" * 10).decode()})
    assert e.value.field == "audio"

    from lib_vidsd.video.reader import has_audio

    keys = audio_keyframes(wav, 2, "both")
    args = [{"prompts": "0: a cat\n1: a dog", "audio": b64, "audio_keys": True, "fps": 2, "format": ["mp4"],
             "output_name": "beat"}]  # fmt: skip
    assert _ask(args) is None
    p, processed = _run(webui, args)
    out = _out(p, "beat")
    assert len(list(out.glob("*.png"))) == keys.frames[-1] + 1 and has_audio(out / "beat.mp4")


def test_api_run_returns_videos_then_frames(webui, monkeypatch):
    from modules import processing, shared

    from tests.rig.a1111 import make_runner, run_txt2img

    original = processing.StableDiffusionProcessingTxt2Img.__post_init__

    def as_api(self):  # the API marks its p before running it
        original(self)
        self.is_api = True

    monkeypatch.setattr(processing.StableDiffusionProcessingTxt2Img, "__post_init__", as_api)
    script = webui()
    args = {script: [{"prompts": "0: a\n1: b", "format": ["gif"]}]}
    runner, script_args = make_runner([script], args=args, selected=script)
    _p, processed = run_txt2img(runner, script_args, prompt="", steps=1, seed=1, **SIZE)
    assert isinstance(processed.images[0], str) and base64.b64decode(processed.images[0])[:4] == b"GIF8"
    assert [type(x).__name__ for x in processed.images[1:]] == ["Image", "Image"]
    assert "Keyframe animation" in processed.images[2].info["parameters"]
    assert shared.state.job_count == 0
