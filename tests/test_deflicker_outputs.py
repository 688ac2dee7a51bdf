"""Deflicker everywhere: the Multi-frame job (guided by the source, resume, interrupt), AnimateDiff
in the WebUI and on diffusers, the CLI ``deflicker`` command and the ``/vidsd/v1/deflicker`` route.

Every test that says "deflickered" compares with a direct call of
:func:`lib_vidsd.consistency.deflicker.deflicker` on the same frames and guide, and the flicker tests
inject a per-frame gain into an otherwise steady clip and measure it before and after.
"""

from __future__ import annotations

import base64
import io
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lib_vidsd.config import DeflickerParams, MultiFrameParams, validate
from lib_vidsd.consistency.deflicker import deflicker
from lib_vidsd.errors import ConfigError, Interrupted
from lib_vidsd.multiframe import MultiFrameJob, open_folder
from lib_vidsd.multiframe.job import DEFLICKER_DIR, multiframe_infotext
from lib_vidsd.progress import StopFlag
from lib_vidsd.video import probe, read_video, write_video
from tests.test_interpolate import _texture

ROOT = Path(__file__).resolve().parents[1]
W = H = 64
GAINS = (1.0, 0.7, 1.3, 0.8, 1.2, 0.75)


@pytest.fixture(autouse=True)
def _one_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def sliding(n: int, size: int = W) -> list[np.ndarray]:
    """A smooth texture panning 3 px per frame: steady brightness, real motion."""
    base = _texture(size, size + 3 * n, seed=2)
    return [np.ascontiguousarray(base[:, 3 * i : 3 * i + size]) for i in range(n)]


def with_gain(frame: np.ndarray, k: int) -> np.ndarray:
    return np.clip(frame.astype(np.float32) * GAINS[k % len(GAINS)], 0, 255).round().astype(np.uint8)


def brightness_flicker(frames) -> float:
    """Mean absolute change of the frame's mean level between consecutive frames (0..255)."""
    means = [float(np.asarray(f, dtype=np.float64)[..., :3].mean()) for f in frames]
    return float(np.mean(np.abs(np.diff(means))))


def step_difference(frames) -> float:
    """Mean absolute pixel difference between consecutive frames (0..255)."""
    arrays = [np.asarray(f, dtype=np.float64)[..., :3] for f in frames]
    return float(np.mean([np.abs(b - a).mean() for a, b in zip(arrays, arrays[1:], strict=False)]))


def png(path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


def b64_png(array) -> str:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def defaults(mode: str, window: int, **kw) -> dict:
    """The direct call's arguments: a DeflickerParams' fields (what the output options use)."""
    values = validate(DeflickerParams, mode=mode, window=window).dict()
    values.update(mode=mode, device="cpu", **kw)
    return values


class GainRenderer:
    """Renders each frame as its input frame with a per-frame gain (strong flicker, no drift)."""

    def __init__(self, on_call=None):
        self.calls: list[tuple[int, bool]] = []
        self.on_call = on_call

    def __call__(self, request):
        self.calls.append((request.index, request.replay))
        if self.on_call is not None:
            self.on_call(request)
        return Image.fromarray(with_gain(np.asarray(request.image), request.index))

    @property
    def rendered(self) -> list[int]:
        return [k for k, replay in self.calls if not replay]


def run_job(tmp_path, n=6, render=None, stop=None, **params):
    src = tmp_path / "src"
    if not src.exists():
        src.mkdir()
        for i, f in enumerate(sliding(n)):
            Image.fromarray(f).save(src / f"{i:02d}.png")
    params.setdefault("mode", "cross_frame")
    p = validate(MultiFrameParams, params)
    render = render or GainRenderer()
    with open_folder(src, p, (W, H)) as source:
        job = MultiFrameJob(p, render, source=source, out_dir=tmp_path / "out", prompt="p", seed=3, stop=stop)
        return job.run(), render


# --- Multi-frame job ---------------------------------------------------------------------------


def test_multiframe_deflicker_is_guided_by_the_source_and_removes_the_flicker(tmp_path):
    result, render = run_job(tmp_path, deflicker="fast", deflicker_window=3, format=["apng"])
    clip = sliding(6)
    rendered = [png(f) for f in result.frames]
    smooth = [png(f) for f in result.deflickered]
    assert all(
        np.array_equal(r, with_gain(c, k)) for k, (r, c) in enumerate(zip(rendered, clip, strict=True))
    )  # kept as rendered
    assert [f.name for f in result.deflickered] == [f"{k:05d}.png" for k in range(6)]
    assert all(f.parent == tmp_path / "out" / DEFLICKER_DIR for f in result.deflickered)
    expected = deflicker(rendered, guide=clip, **defaults("fast", 3))
    assert all(np.array_equal(a, b) for a, b in zip(smooth, expected, strict=True))
    self_guided = deflicker(rendered, **defaults("fast", 3))
    assert any(
        not np.array_equal(a, b) for a, b in zip(smooth, self_guided, strict=True)
    )  # the guide is the source, not the render
    before, after, truth = brightness_flicker(rendered), brightness_flicker(smooth), brightness_flicker(clip)
    print(f"brightness flicker: source {truth:.2f}, rendered {before:.2f}, deflickered {after:.2f}")
    assert before > 40 and after < before / 5
    assert step_difference(smooth) < step_difference(rendered) / 4
    video = list(read_video(result.videos[0]))  # the video shows the deflickered frames (APNG: lossless)
    assert len(video) == 6 and all(np.array_equal(v, s) for v, s in zip(video, smooth, strict=True))
    with Image.open(result.deflickered[2]) as img, Image.open(result.frames[2]) as original:
        assert img.info["parameters"] == original.info["parameters"]
        assert 'deflicker: fast, deflicker_window: 3, frame: 2"' in img.info["parameters"]
    assert result.final_frames == result.deflickered


def test_multiframe_without_deflicker_writes_no_folder_and_infotext_stays():
    params = validate(MultiFrameParams)
    assert "deflicker" not in multiframe_infotext(params)
    assert multiframe_infotext(validate(MultiFrameParams, deflicker="balanced", deflicker_window=4)).endswith(
        "deflicker: balanced, deflicker_window: 4"
    )


def test_multiframe_off_keeps_the_rendered_frames_for_the_video(tmp_path):
    result, _ = run_job(tmp_path, n=3, format=["apng"])
    assert result.deflickered == [] and not (tmp_path / "out" / DEFLICKER_DIR).exists()
    assert np.array_equal(next(iter(read_video(result.videos[0]))), png(result.frames[0]))


def test_multiframe_resume_redoes_the_deflicker_from_the_rendered_frames(tmp_path):
    first, _ = run_job(tmp_path, deflicker="fast", deflicker_window=2, format=["gif"])
    smooth = [png(f) for f in first.deflickered]
    for path in first.frames[4:]:
        path.unlink()
    (tmp_path / "out" / DEFLICKER_DIR / "00009.png").write_bytes(b"left by a longer run")
    again, render = run_job(tmp_path, deflicker="fast", deflicker_window=2, format=["gif"], resume=True)
    assert render.rendered == [4, 5] and again.rendered == 2
    assert all(np.array_equal(png(a), b) for a, b in zip(again.deflickered, smooth, strict=True))
    assert sorted(p.name for p in (tmp_path / "out" / DEFLICKER_DIR).iterdir()) == [f"{k:05d}.png" for k in range(6)]
    assert probe(again.videos[0]).frame_count == 6
    # nothing left to render: the pass (and the videos) are still made
    done, render = run_job(tmp_path, deflicker="fast", deflicker_window=2, format=["gif"], resume=True)
    assert render.rendered == [] and len(done.deflickered) == 6 and done.videos


def test_multiframe_interrupt_during_deflicker_keeps_the_frames_and_resume_finishes(tmp_path):
    stop = StopFlag()

    def stop_at_first_match(done, total, text=""):
        if text.startswith("deflicker"):
            stop.stop()

    p = validate(MultiFrameParams, mode="cross_frame", deflicker="fast", deflicker_window=2, format=["gif"])
    src = tmp_path / "src"
    src.mkdir()
    for i, f in enumerate(sliding(4)):
        Image.fromarray(f).save(src / f"{i}.png")
    with open_folder(src, p, (W, H)) as source:
        job = MultiFrameJob(
            p, GainRenderer(), source=source, out_dir=tmp_path / "out", progress=stop_at_first_match, stop=stop
        )
        with pytest.raises(Interrupted):
            job.run()
    out = tmp_path / "out"
    assert sorted(x.name for x in out.glob("*.png")) == [f"{k:05d}.png" for k in range(4)]
    assert not list(out.glob("*.gif")) and not list(out.rglob(f"{DEFLICKER_DIR}/*.png"))
    result, render = run_job(tmp_path, n=4, deflicker="fast", deflicker_window=2, format=["gif"], resume=True)
    assert render.rendered == [] and len(result.deflickered) == 4 and probe(result.videos[0]).frame_count == 4


def test_multiframe_keeps_alpha_on_the_deflickered_frames(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for i, f in enumerate(sliding(3)):
        alpha = np.full((H, W), 200, np.uint8)
        alpha[:10] = 0
        Image.fromarray(np.dstack([f, alpha])).save(src / f"{i}.png")
    result, _ = run_job(tmp_path, n=3, keep_alpha=True, deflicker="fast", deflicker_window=1)
    with Image.open(result.deflickered[1]) as img:
        assert img.mode == "RGBA" and np.asarray(img)[:10, :, 3].max() == 0 and np.asarray(img)[20, 20, 3] == 200


def test_multiframe_refuses_frames_too_small_before_rendering(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for i, f in enumerate(sliding(3, 16)):
        Image.fromarray(f).save(src / f"{i}.png")
    p = validate(MultiFrameParams, deflicker="fast")
    render = GainRenderer()
    with open_folder(src, p, (16, 16)) as source, pytest.raises(ConfigError) as e:
        MultiFrameJob(p, render, source=source, out_dir=tmp_path / "out")
    assert e.value.field == "deflicker" and "26 px" in str(e.value) and render.calls == []


# --- CLI: deflicker, animate, multiframe --------------------------------------------------------


def test_cli_deflicker_keeps_count_and_fps_and_removes_the_flicker(tmp_path, capsys):
    from lib_vidsd.__main__ import main

    clip = sliding(6)
    flicker = [with_gain(f, k) for k, f in enumerate(clip)]
    src = write_video(flicker, tmp_path / "in.apng", fps=12)
    guide = write_video(clip, tmp_path / "guide", fps=12, format="png")  # a folder of frames
    out = tmp_path / "out.apng"
    argv = ["deflicker", str(src), "-o", str(out), "--guide", str(guide), "--window", "3", "--device", "cpu"]
    assert main(argv) == 0
    assert "wrote 6 frames at 12 fps" in capsys.readouterr().out
    info = probe(out)
    assert info.frame_count == 6 and info.fps == pytest.approx(12)
    frames = list(read_video(out))
    expected = deflicker(flicker, guide=clip, **defaults("fast", 3))
    assert all(np.array_equal(a, b) for a, b in zip(frames, expected, strict=True))
    assert brightness_flicker(frames) < brightness_flicker(flicker) / 5
    mp4 = tmp_path / "o.mp4"  # a folder in (8 fps, a folder's rate), an MP4 out; balanced mode, no guide
    assert main(["deflicker", str(guide), "-o", str(mp4), "--mode", "balanced", "--window", "2"]) == 0
    assert probe(mp4).frame_count == 6 and probe(mp4).fps == pytest.approx(8)
    with pytest.raises(SystemExit) as stopped:  # "none" is not offered: argparse refuses it, naming --mode
        main(["deflicker", str(src), "-o", str(tmp_path / "x.gif"), "--mode", "none"])
    assert stopped.value.code == 2 and "--mode" in capsys.readouterr().err
    assert main(["deflicker", str(src), "-o", str(tmp_path / "x.gif"), "--tracking", "2"]) == 2
    assert "tracking" in capsys.readouterr().err and not (tmp_path / "x.gif").exists()


def test_cli_animate_deflicker_option(tmp_path, monkeypatch):
    from lib_vidsd.__main__ import main
    from lib_vidsd.pipelines import animate

    sampled = []

    def spy(frames, settings, **kw):  # the decoded frames, before the pass
        sampled.extend(np.array(f) for f in frames)
        return original(frames, settings, **kw)

    original = animate.run_deflicker
    monkeypatch.setattr(animate, "run_deflicker", spy)
    argv = ["animate", "--frames", "4", "--context", "4", "--steps", "2", "--width", "64", "--height", "64"]
    argv += ["--seed", "5", "--format", "png", "-o", str(tmp_path), "--deflicker", "fast", "--deflicker-window", "4"]
    assert main(argv) == 0
    smooth = [png(f) for f in sorted((tmp_path / "animatediff-5-frames").glob("*.png"))]
    assert len(sampled) == len(smooth) == 4
    expected = deflicker(sampled, **defaults("fast", 4))
    assert all(np.array_equal(a, b) for a, b in zip(smooth, expected, strict=True))
    assert step_difference(smooth) < step_difference(sampled)
    text = (tmp_path / "animatediff-5.txt").read_text()
    assert "deflicker: fast, deflicker_window: 4" in text


def test_cli_multiframe_deflicker_option(tmp_path, capsys):
    from lib_vidsd.__main__ import main

    src = tmp_path / "src"
    src.mkdir()
    for i, f in enumerate(sliding(3)):
        Image.fromarray(f).save(src / f"{i}.png")
    out = tmp_path / "out"
    argv = ["multiframe", str(src), "-o", str(out), "--steps", "2", "--width", "64", "--height", "64", "--seed", "4"]
    argv += ["--format", "gif", "--mode", "cross_frame", "--deflicker", "fast", "--deflicker-window", "2"]
    assert main(argv) == 0
    rendered = [png(out / f"{k:05d}.png") for k in range(3)]
    smooth = [png(out / DEFLICKER_DIR / f"{k:05d}.png") for k in range(3)]
    expected = deflicker(rendered, guide=sliding(3), **defaults("fast", 2))
    assert all(np.array_equal(a, b) for a, b in zip(smooth, expected, strict=True))
    assert probe(out / "out.gif").frame_count == 3
    with Image.open(out / DEFLICKER_DIR / "00001.png") as img:
        assert "deflicker: fast, deflicker_window: 2" in img.info["parameters"]


# --- the WebUI: AnimateDiff, Multi-frame rendering, the route -----------------------------------


@pytest.fixture
def ad_webui(a1111, tmp_path):
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
    yield next(s.script_class for s in scripts.scripts_data if s.script_class.__name__ == "AnimateDiffScript")
    sys.modules.pop("vidsd_a1111.job", None)


def _ad_run(cls, args, out: Path):
    from tests.rig.a1111 import make_runner, run_txt2img

    script = cls()
    runner, script_args = make_runner([script], args={script: args})
    fields = {"prompt": "a cat", "steps": 2, "width": 64, "height": 64, "seed": 3, "cfg_scale": 5}
    return run_txt2img(runner, script_args, outpath_samples=str(out), **fields)


def test_animatediff_in_the_webui_deflickers_before_saving(ad_webui, tmp_path):
    from vidsd_a1111 import binding

    ad = {"enable": True, "model": "mm_tiny.safetensors", "video_length": 4, "batch_size": 4, "format": ["PNG", "TXT"]}
    _ad_run(ad_webui, [ad], tmp_path / "raw")
    values = {**binding.ANIMATEDIFF.defaults(), **ad, "deflicker": "fast", "deflicker_window": 2}
    positional = [values[b.field] for b in binding.ANIMATEDIFF.widget_bindings()]  # the list form, new values last
    assert [b.field for b in binding.ANIMATEDIFF.widget_bindings()][-2:] == ["deflicker", "deflicker_window"]
    _, processed = _ad_run(ad_webui, positional, tmp_path / "df")
    raw = [png(f) for f in sorted((tmp_path / "raw").rglob("*-frames/*.png"))]
    smooth = [png(f) for f in sorted((tmp_path / "df").rglob("*-frames/*.png"))]
    assert len(raw) == len(smooth) == 4
    expected = deflicker(raw, **defaults("fast", 2))
    assert all(np.array_equal(a, b) for a, b in zip(smooth, expected, strict=True))
    assert step_difference(smooth) < step_difference(raw)
    text = next((tmp_path / "df").rglob("*.txt")).read_text()
    assert "deflicker: fast, deflicker_window: 2" in text and "deflicker: fast" in processed.infotexts[0]


def test_animatediff_api_checks_the_deflicker_fields(ad_webui):
    from vidsd_a1111 import api

    def ask(**fields):
        args = [{"enable": True, "model": "mm_tiny.safetensors", **fields}]
        return api.check_request({"alwayson_scripts": {"AnimateDiff": {"args": args}}}, model_is_sdxl=False)

    assert ask(deflicker="balanced", deflicker_window=3) is None
    assert ask(deflicker="sometimes")["field"] == "deflicker"
    assert ask(deflicker="fast", deflicker_window=0)["field"] == "deflicker_window"


@pytest.fixture
def mf_webui(a1111):
    from modules import scripts

    from tests.rig.a1111 import install_extension

    install_extension(ROOT)
    scripts.load_scripts()
    yield next(s.script_class for s in scripts.scripts_data if s.script_class.__name__ == "MultiFrameScript")
    sys.modules.pop("vidsd_a1111.multiframe_job", None)


def test_multiframe_in_the_webui_deflickers_and_shows_those_frames(mf_webui):
    from tests.rig.a1111 import make_runner, run_img2img

    clip = sliding(4)
    args = [{"input_frames": [b64_png(f) for f in clip], "mode": "cross_frame", "format": ["apng"],
             "deflicker": "fast", "deflicker_window": 2, "output_name": "df"}]  # fmt: skip
    script = mf_webui()
    runner, script_args = make_runner([script], is_img2img=True, args={script: args}, selected=script)
    init = Image.new("RGB", (W, H), (128, 128, 128))
    p, processed = run_img2img(runner, script_args, prompt="a cat", steps=2, width=W, height=H, seed=5,
                               cfg_scale=5, denoising_strength=0.5, init_images=[init])  # fmt: skip
    out = Path(p.outpath_samples) / "multiframe" / "df"
    rendered = [png(out / f"{k:05d}.png") for k in range(4)]
    smooth = [png(out / DEFLICKER_DIR / f"{k:05d}.png") for k in range(4)]
    expected = deflicker(rendered, guide=clip, **defaults("fast", 2))
    assert all(np.array_equal(a, b) for a, b in zip(smooth, expected, strict=True))
    assert all(np.array_equal(v, s) for v, s in zip(read_video(out / "df.apng"), smooth, strict=True))
    assert processed.images == [str(out / DEFLICKER_DIR / f"{k:05d}.png") for k in range(4)]  # no APNG in a gallery
    assert 'deflicker: fast, deflicker_window: 2"' in p.extra_generation_params["Multi-frame rendering"] + '"'


def test_deflicker_route_logic(a1111, tmp_path, monkeypatch):
    from vidsd_a1111 import deflicker_route as route

    clip = sliding(5, 48)
    flicker = [with_gain(f, k) for k, f in enumerate(clip)]
    video = base64.b64encode(write_video(flicker, tmp_path / "in.webm", fps=10).read_bytes()).decode()
    answer = route.deflicker_request({"video": video, "window": 2, "format": "gif", "seed": 1})
    out = tmp_path / "out.gif"
    out.write_bytes(base64.b64decode(answer["video"]))
    assert answer["frames"] == 5 == probe(out).frame_count and answer["fps"] == 10 and "images" not in answer
    assert answer["mode"] == "fast" and answer["window"] == 2
    frames = [b64_png(f) for f in flicker]
    guide = {"frames": [b64_png(f) for f in clip]}
    body = {"frames": frames, "guide": guide, "window": 3, "format": "apng", "fps": 5, "return_frames": True}
    answer = route.deflicker_request(body)
    images = [np.asarray(Image.open(io.BytesIO(base64.b64decode(t))).convert("RGB")) for t in answer["images"]]
    expected = deflicker(flicker, guide=clip, **defaults("fast", 3))
    assert answer["frames"] == 5 and answer["fps"] == 5
    assert all(np.array_equal(a, b) for a, b in zip(images, expected, strict=True))
    assert brightness_flicker(images) < brightness_flicker(flicker) / 5
    root = tmp_path / "roots"
    (root / "clip").mkdir(parents=True)
    for i, f in enumerate(flicker):
        Image.fromarray(f).save(root / "clip" / f"{i}.png")
    (tmp_path / "secret").mkdir()
    answer = route.deflicker_request({"path": "clip", "guide": {"frames": guide["frames"]}}, roots=[root])
    assert answer["frames"] == 5
    with pytest.raises(ConfigError) as e:
        route.deflicker_request({"path": "clip"})  # no input folders configured
    assert e.value.field == "path"
    for bad, field in (
        ({"path": "../secret"}, "path"),
        ({"path": str(tmp_path / "secret")}, "path"),
        ({"path": "clip", "guide": {"path": "../secret"}}, "guide.path"),
        ({"frames": frames, "guide": {"frames": guide["frames"][:3]}}, "guide"),
        ({"frames": frames, "guide": "x"}, "guide"),
        ({"frames": frames, "video": video}, "frames"),
        ({}, "video"),
        ({"video": "***"}, "video"),
        ({"frames": frames + ["@@"]}, "frames[5]"),
        ({"frames": frames, "mode": "none"}, "mode"),
        ({"frames": frames, "patch_size": 4}, "patch_size"),
        ({"frames": frames, "tracking": 1}, "tracking"),
        ({"frames": frames, "format": "avi"}, "format"),
        ({"frames": frames, "fps": 0}, "fps"),
        ({"frames": frames, "return_frames": "yes"}, "return_frames"),
        ({"frames": frames, "colour": 1}, "colour"),
        ({"frames": [b64_png(f[:12, :12]) for f in flicker]}, "patch_size"),
    ):
        with pytest.raises(ConfigError) as e:
            route.deflicker_request(bad, roots=[root])
        assert e.value.field == field, (bad, e.value)
    monkeypatch.setattr(route, "MAX_PIXELS", 5 * 48 * 48 - 1)
    with pytest.raises(route.TooLarge) as e:
        route.deflicker_request({"frames": frames})
    assert e.value.field == "frames"
    monkeypatch.setattr(route, "MAX_FRAMES", 4)
    with pytest.raises(ConfigError) as e:
        route.deflicker_request({"frames": frames})
    assert e.value.field == "frames" and "1..4" in str(e.value)


def test_deflicker_routes_are_registered_with_a_schema(a1111):
    from vidsd_a1111 import api

    class App:
        def __init__(self):
            self.routes = {}

        def add_api_route(self, path, fn, methods):
            self.routes[(path, methods[0])] = fn

        def add_route(self, path, fn, methods):
            self.routes[(path, methods[0])] = fn

    app = App()
    api._add_routes(app, JSONResponse=dict)
    assert ("/vidsd/v1/deflicker", "POST") in app.routes
    schema = app.routes[("/vidsd/v1/schema/deflicker", "GET")]()
    props = schema["properties"]
    assert {"video", "frames", "path", "guide", "format", "fps", "return_frames"} <= set(props)
    assert set(DeflickerParams.__fields__) <= set(props) and props["window"]["default"] == 15
