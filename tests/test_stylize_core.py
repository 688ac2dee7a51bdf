"""Video stylisation core: chunked UNet calls with combine attention and references, reference noising,
the in-loop smoother and its schedule, the input side, the output job and DiffSynth's config mapping."""

from __future__ import annotations

import base64
import copy
import io
import subprocess

import numpy as np
import pytest
import torch
from PIL import Image

from lib_vidsd.attention import CombineAttention
from lib_vidsd.config import StylizeParams, validate
from lib_vidsd.errors import ConfigError, Interrupted
from lib_vidsd.stylize import (
    ReferenceLatents,
    SmootherSchedule,
    StylizeJob,
    alpha_prod_at,
    chunked_unet_call,
    decode_references,
    diffsynth_config,
    noise_from_prediction,
    read_stylize_input,
    smooth_predicted,
    stylize_infotext,
)
from lib_vidsd.stylize.diffsynth import DiffSynthExtras, check_local_paths
from lib_vidsd.video import ffmpeg_exe, probe, write_video
from tests.rig.fixtures import require_fixture
from tests.rig.ldm import ldm_inputs

TOL = {"atol": 2e-5, "rtol": 1e-5}
N = 6  # frames of the UNet tests (chunks of 4: 4 + 2; of 2: 2 + 2 + 2)


# --- tiny UNets --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def _pristine_diffusers_unet():
    from lib_vidsd.pipelines.tiny import build_diffusers_unet

    return build_diffusers_unet(seed=0)


@pytest.fixture(params=["ldm", "diffusers"])
def unet_and_forward(request):
    """``(unet, forward(x, t, context))``: ldm gets one timestep per row, diffusers a 0-d one."""
    if request.param == "ldm":
        unet = request.getfixturevalue("ldm_unet")

        def forward(x, t, context):
            return unet(x, timesteps=t, context=context)

        return unet, forward, "per_row"
    unet = copy.deepcopy(request.getfixturevalue("_pristine_diffusers_unet"))

    def forward(x, t, context):
        return unet(x, t, encoder_hidden_states=context).sample

    return unet, forward, "scalar"


def _alphas() -> torch.Tensor:
    from lib_vidsd.pipelines.tiny import build_scheduler

    return build_scheduler("ddim").alphas_cumprod


def _inputs(halves: int, t_kind: str):
    x = ldm_inputs(batch=N, size=8, seed=1)[0]
    contexts = ldm_inputs(batch=2 * N, size=8, seed=7)[2]  # a different context per row
    x_all = torch.cat([x] * halves)
    context = contexts[: halves * N]
    t = torch.full((halves * N,), 481.0) if t_kind == "per_row" else torch.tensor(481)
    return x_all, t, context


def _whole(unet, forward, pattern, x_all, t, context, halves, refs: ReferenceLatents | None):
    """The reference result: one UNet call over the whole clip (references in front of each half)."""
    with CombineAttention(unet, pattern, num_frames=N) as att:
        if refs is None:
            with att.batch(frames=range(N)):
                return forward(x_all, t, context)
        r = len(refs)
        noised = refs.at(481)
        xs, cs, ts = [], [], []
        for h in range(halves):
            rows = slice(h * N, (h + 1) * N)
            xs += [noised, x_all[rows]]
            cs += [context[h * N : h * N + 1].expand(r, -1, -1), context[rows]]
            if t.ndim:
                ts += [t[h * N : h * N + 1].expand(r), t[rows]]
        with att.batch(frames=range(N), references=range(r)):
            out = forward(torch.cat(xs), torch.cat(ts) if t.ndim else t, torch.cat(cs))
        return torch.cat([out[h * (N + r) + r : (h + 1) * (N + r)] for h in range(halves)])


@pytest.mark.parametrize("halves", [1, 2])
@pytest.mark.parametrize("with_refs", [False, True])
@torch.no_grad()
def test_chunked_equals_whole_batch(unet_and_forward, halves, with_refs):
    unet, forward, t_kind = unet_and_forward
    x_all, t, context = _inputs(halves, t_kind)
    pattern = ["reference_0", -10000, -1, 0] if with_refs else [-10000, -1, 0]
    refs = None
    if with_refs:
        lat, noise = ldm_inputs(batch=2, size=8, seed=3)[0].split(1)
        refs = ReferenceLatents(lat, noise[0], _alphas())
    expected = _whole(unet, forward, pattern, x_all, t, context, halves, refs)
    with CombineAttention(unet, pattern, num_frames=N) as att:
        got = chunked_unet_call(forward, x_all, t, context, num_frames=N, chunk_size=4, attention=att, references=refs)
        again = chunked_unet_call(
            forward, x_all, t, context, num_frames=N, chunk_size=3, attention=att, references=refs
        )
    torch.testing.assert_close(got, expected, **TOL)
    torch.testing.assert_close(again, expected, **TOL)
    plain = forward(x_all, t, context)
    assert (got - plain).abs().max() > 1e-3  # the attention really changed something


@torch.no_grad()
def test_pattern_zero_is_the_plain_unet(unet_and_forward):
    unet, forward, t_kind = unet_and_forward
    x_all, t, context = _inputs(2, t_kind)
    plain = forward(x_all, t, context)
    with CombineAttention(unet, [0], num_frames=N) as att:
        got = chunked_unet_call(forward, x_all, t, context, num_frames=N, chunk_size=2, attention=att)
    torch.testing.assert_close(got, plain, **TOL)
    without = chunked_unet_call(forward, x_all, t, context, num_frames=N, chunk_size=4)
    torch.testing.assert_close(without, plain, **TOL)


def test_per_row_values_gathered_and_others_passed_unchanged():
    rows, n = 6, 3
    x = torch.arange(rows, dtype=torch.float32)[:, None] * 10
    other = torch.zeros(4, 2)  # leading dim != rows: passed as is
    seen = []

    def forward(xc, t, lst, *, d, scalar, keep):
        seen.append((xc.shape[0], keep is other, scalar))
        assert lst[1] == "text"
        return xc + lst[0] + d["a"][:, :1] + t

    y = torch.arange(rows, dtype=torch.float32)[:, None]
    a = torch.arange(rows, dtype=torch.float32)[:, None].repeat(1, 3) * 100
    t = torch.arange(rows, dtype=torch.float32)[:, None] * 1000
    out = chunked_unet_call(forward, x, t, [y, "text"], d={"a": a}, scalar=7, keep=other, num_frames=n, chunk_size=2)
    torch.testing.assert_close(out, x + y + a[:, :1] + t)
    assert seen == [(4, True, 7), (2, True, 7)]  # 2 halves × 2 frames, then 2 halves × 1 frame


def test_row_counts_checked():
    x = torch.zeros(5, 1)
    with pytest.raises(ConfigError, match="num_frames"):
        chunked_unet_call(lambda x, t: x, x, 0, num_frames=2, chunk_size=1)
    with pytest.raises(ConfigError, match="chunk_size"):
        chunked_unet_call(lambda x, t: x, x, 0, num_frames=5, chunk_size=0)
    with pytest.raises(ConfigError, match="forward"):
        chunked_unet_call(lambda x, t: x[:1], x, 0, num_frames=5, chunk_size=2)


# --- reference latents -------------------------------------------------------------------------


def test_reference_latents_match_ddim_add_noise_at_integer_t():
    from lib_vidsd.pipelines.tiny import build_scheduler

    scheduler = build_scheduler("ddim")
    lat, noise = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0)), torch.randn(4, 8, 8)
    refs = ReferenceLatents(lat, noise, scheduler.alphas_cumprod)
    for t in (0, 1, 481, 999):
        expected = scheduler.add_noise(lat, noise.expand_as(lat), torch.tensor([t]))
        torch.testing.assert_close(refs.at(t), expected, atol=1e-6, rtol=1e-6)
        torch.testing.assert_close(refs.at(torch.tensor(t)), expected, atol=1e-6, rtol=1e-6)
    per_ref = ReferenceLatents(lat, noise.expand_as(lat).clone(), scheduler.alphas_cumprod)
    torch.testing.assert_close(per_ref.at(300), refs.at(300))
    distinct = ReferenceLatents(lat, torch.randn(2, 4, 8, 8), scheduler.alphas_cumprod)
    moved = distinct.to("cpu", torch.float64)
    assert moved.latents.dtype == torch.float64
    torch.testing.assert_close(moved.at(300).float(), distinct.at(300), atol=1e-6, rtol=1e-6)
    with pytest.raises(ConfigError, match="timestep"):
        refs.at(1000)
    with pytest.raises(ConfigError, match="noise"):
        ReferenceLatents(lat, torch.zeros(3, 8, 8), scheduler.alphas_cumprod)


def test_reference_latents_at_fractional_t_like_k_diffusion():
    alphas = _alphas()
    lat, noise = torch.randn(1, 4, 8, 8), torch.randn(4, 8, 8)
    refs = ReferenceLatents(lat.double(), noise.double(), alphas)
    sigmas = ((1 - alphas.double()) / alphas.double()).sqrt()
    for t in (481.25, 12.5, 998.9):
        lo, hi, w = int(t), int(t) + 1, t - int(t)
        sigma = (sigmas[lo].log() * (1 - w) + sigmas[hi].log() * w).exp()  # k-diffusion's t_to_sigma
        expected = (lat.double() + sigma * noise.double()) / (1 + sigma**2).sqrt()  # x0 + σε, scaled to unit variance
        torch.testing.assert_close(refs.at(t), expected, atol=1e-10, rtol=1e-10)
        a = float(alpha_prod_at(alphas, t))
        assert float(alphas[hi]) < a < float(alphas[lo])


# --- the in-loop smoother ----------------------------------------------------------------------


def test_smoother_schedule_table():
    assert SmootherSchedule(5, 0).steps(20) == [0, 5, 10, 15]
    assert SmootherSchedule(1, 1).steps(10) == list(range(9))  # DiffSynth config 2: never the last step
    assert SmootherSchedule(2, 3).steps(10) == [0, 2, 4, 6]
    assert SmootherSchedule(3, 0).steps(1) == [0]
    assert not SmootherSchedule(1, 5).applies(0, 5)
    for bad in ({"interval": 0}, {"ignore_last": -1}, {"interval": 1.5}):
        with pytest.raises(ConfigError):
            SmootherSchedule(**bad)


def test_noise_from_prediction_inverts_the_prediction():
    x0, eps = torch.randn(3, 4, 8, 8), torch.randn(3, 4, 8, 8)
    a = torch.tensor(0.3, dtype=torch.float64)
    sample = (a.sqrt() * x0 + (1 - a).sqrt() * eps).float()
    torch.testing.assert_close(noise_from_prediction(sample, x0, a), eps, atol=1e-5, rtol=1e-5)


STYLIZE = "stylize"


def _clip(name: str, frames: int) -> list[np.ndarray]:
    image = np.asarray(Image.open(require_fixture(f"{STYLIZE}/{name}")).convert("RGB"))
    return list(image.reshape(-1, 96, 96, 3)[:frames])


def test_smooth_predicted_removes_flicker_in_chunks():
    clean, flicker = _clip("public_clean.png", 6), _clip("public_flicker.png", 6)
    x0 = torch.from_numpy(np.stack(flicker)).permute(0, 3, 1, 2).double()  # "latents" = the images
    calls = []

    def decode(latents):
        calls.append(("decode", latents.shape[0]))
        return [f.permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy() for f in latents]

    def encode(images):
        calls.append(("encode", len(images)))
        return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float()

    out = smooth_predicted(
        x0, decode=decode, encode=encode, guide=clean, mode="fast", window=3, chunk_size=4, seed=0, device="cpu"
    )
    assert out.shape == x0.shape and out.dtype == x0.dtype
    assert calls == [("decode", 4), ("decode", 2), ("encode", 4), ("encode", 2)]

    def jitter(frames):  # mean abs difference of consecutive frames
        return np.mean([np.abs(frames[i + 1].astype(float) - frames[i]).mean() for i in range(len(frames) - 1)])

    def psnr(frames):
        mse = np.mean([((f.astype(float) - c) ** 2).mean() for f, c in zip(frames, clean, strict=True)])
        return 10 * np.log10(255**2 / mse)

    smoothed = [f.permute(1, 2, 0).numpy() for f in out]
    assert jitter(smoothed) < 0.75 * jitter(flicker)
    assert psnr(smoothed) > psnr(flicker) + 2  # 24.7 → 27.9 dB here
    same = smooth_predicted(x0, decode=decode, encode=encode, guide=clean, mode="none", window=3)
    assert same is x0
    with pytest.raises(ConfigError, match="guide"):
        smooth_predicted(x0, decode=decode, encode=encode, guide=clean[:2], mode="fast", window=3)


# --- input ---------------------------------------------------------------------------------------


def _b64_png(image: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def test_read_input_from_folder_and_base64_video(tmp_path):
    from tests.videoclips import coded

    folder = tmp_path / "frames"
    folder.mkdir()
    for i, frame in enumerate(coded(5, 64, 48)):
        Image.fromarray(frame).save(folder / f"{i}.png")
    params = validate(StylizeParams, {"every": 2})
    with read_stylize_input(params, size=(32, 32), video_path=folder) as inp:
        assert len(inp.frames) == 3 and inp.frames[0].shape == (32, 32, 3) and inp.fps == 4.0
        assert inp.audio_source is None

    video = write_video(coded(6, 64, 48), tmp_path / "in.mp4", fps=12, crf=10)
    text = base64.b64encode(video.read_bytes()).decode()
    params = validate(StylizeParams, {"input_video": text, "max_frames": 4, "fps": 5, "keep_audio": True})
    inp = read_stylize_input(params, size=(64, 48))
    temp = inp._source.path
    assert len(inp.frames) == 4 and inp.fps == 5.0 and inp.audio_source is None  # no audio track
    assert temp is not None and temp.exists()
    inp.cleanup()
    assert not temp.exists()


def test_read_input_keeps_audio_of_a_video_with_sound(tmp_path):
    src = tmp_path / "tone.mp4"
    subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", "testsrc=size=64x48:rate=6:duration=1", "-f", "lavfi"]
        + ["-i", "sine=frequency=440:duration=1", "-c:v", "libx264", "-c:a", "aac", "-shortest", str(src)],
        check=True,
    )
    params = validate(StylizeParams, {"keep_audio": True})
    with read_stylize_input(params, size=(64, 48), video_path=src) as inp:
        assert inp.audio_source == src and len(inp.frames) == 6


def test_decode_references():
    ref = np.zeros((20, 40, 3), np.uint8)
    ref[:, 20:] = 255
    params = validate(
        StylizeParams,
        {"combine_pattern": "reference_0, 0", "reference_images": ["data:image/png;base64," + _b64_png(ref)]},
    )
    (out,) = decode_references(params, (32, 32))
    assert out.shape == (32, 32, 3) and out[:, :10].max() == 0 and out[:, 22:].min() == 255  # cropped centre
    bad = validate(StylizeParams, {"combine_pattern": "0", "reference_images": [_b64_png(ref), "bm90IGFuIGltYWdl"]})
    with pytest.raises(ConfigError, match=r"reference_images\[1\]"):
        decode_references(bad, (32, 32))


# --- the output job ------------------------------------------------------------------------------


def _rendered(n: int = 5, size: int = 64):
    """A smooth moving gradient (the source) and a flickering copy (the render)."""
    yy, xx = np.mgrid[0:size, 0:size]
    source = [
        np.stack([(xx * 3 + 5 * i) % 256, (yy * 3) % 256, (xx + yy + 7 * i) % 256], -1).astype(np.uint8)
        for i in range(n)
    ]
    gains = [1.0, 0.7, 1.2, 0.8, 1.1]
    rendered = [np.clip(s.astype(float) * gains[i % 5], 0, 255).astype(np.uint8) for i, s in enumerate(source)]
    return source, rendered


def test_job_writes_frames_and_videos_atomically(tmp_path):
    source, rendered = _rendered()
    params = validate(StylizeParams, {"post_deflicker": "fast", "post_window": 2, "format": ["mp4", "gif"]})
    text = stylize_infotext(params)
    assert text.startswith("combine_pattern: -10000 -1 0 1, ") and "post_deflicker: fast" in text
    job = StylizeJob(params, out_dir=tmp_path / "job", source=source, fps=6, infotext="a prompt\nSteps: 2")
    result = job.finish(rendered)
    names = sorted(p.name for p in (tmp_path / "job").iterdir())
    assert names == [f"frame_{i:05d}.png" for i in range(5)] + ["job.gif", "job.mp4"]
    assert [p.name for p in result.frame_paths] == names[:5] and len(result.videos) == 2
    assert all(probe(v).frame_count == 5 for v in result.videos) and result.fps == 6
    with Image.open(result.frame_paths[0]) as img:
        assert img.info["parameters"] == "a prompt\nSteps: 2"
        assert np.array_equal(np.asarray(img.convert("RGB")), result.frames[0])
    assert any(not np.array_equal(a, b) for a, b in zip(result.frames, rendered, strict=True))


def test_job_without_deflicker_keeps_frames_unless_contrast(tmp_path):
    source, rendered = _rendered(3)
    params = validate(StylizeParams, {"post_deflicker": "none", "format": []})
    result = StylizeJob(params, out_dir=tmp_path / "a", source=source, fps=8).finish(rendered)
    assert all(np.array_equal(a, b) for a, b in zip(result.frames, rendered, strict=True)) and result.videos == []
    params = validate(StylizeParams, {"post_deflicker": "none", "format": [], "contrast": 1.5})
    result = StylizeJob(params, out_dir=tmp_path / "b", source=source, fps=8).finish(rendered)
    assert all(not np.array_equal(a, b) for a, b in zip(result.frames, rendered, strict=True))


def test_job_checks(tmp_path):
    source, rendered = _rendered(3)
    params = validate(StylizeParams, {"post_deflicker": "none", "format": ["mp4"]})
    job = StylizeJob(params, out_dir=tmp_path / "c", source=source, fps=8)
    with pytest.raises(ConfigError, match="frames"):
        job.finish(rendered[:2])
    with pytest.raises(ConfigError, match="interp_model"):
        StylizeJob(validate(StylizeParams, {"interp": "film"}), out_dir=tmp_path, source=source, fps=8)
    with pytest.raises(ConfigError, match="interp_x"):
        StylizeJob(validate(StylizeParams, {"interp": "blend", "interp_x": 8}), out_dir=tmp_path, source=source, fps=60)

    class Stop:
        def stop_requested(self):
            return True

        def skip_requested(self):
            return False

    with pytest.raises(Interrupted):
        StylizeJob(params, out_dir=tmp_path / "d", source=source, fps=8, stop=Stop()).finish(rendered)
    assert not (tmp_path / "d").exists()


# --- DiffSynth's config --------------------------------------------------------------------------


def _config_1() -> dict:
    """The shape of DiffSynth's ``1_text_guided_video_stylization.json`` (ControlNets made supported)."""
    return {
        "controlnet_model_id": ["../models/controlnet_v11/control_v11f1e_sd15_tile", "../models/canny"],
        "controlnet_processor": ["ControlnetImageProcesserTile", "canny"],
        "controlnet_scale": [1.0, 0.5],
        "smoother": "PySynthSmoother",
        "smoother_config": {"gpu_id": 0, "speed": "fastest", "postprocessing": {"contrast": 1.5, "sharpness": 5.0}},
        "model_id": "../models/DreamShaper7",
        "input_video": "../data/video.mp4",
        "frame_height": 512,
        "frame_width": 960,
        "frame_interval": 1,
        "frame_maximum_count": 10,
        "prompt": "winter, snow, fishing rod, white, grass",
        "negative_prompt": "",
        "frames_reference": [],
        "num_inference_steps": 20,
        "seed_of_noise": 0,
        "combine_pattern": [-10000, -1, 0, 1],
        "img2img_strength": 1.0,
        "ignore_smoother_steps": 0,
        "smoother_interval": 5,
        "output_path": "output_video",
        "post_smoother": "PySynthSmoother",
        "post_smoother_config": {"gpu_id": 0, "speed": "slowest", "window_size": 60},
    }


def _config_2(ref_path: str) -> dict:
    """The shape of DiffSynth's ``2_fashion_video_synthesis.json`` (depth made tile; openpose has scale 0)."""
    return {
        "controlnet_model_id": ["../models/tile", "../models/controlnet_v11/control_v11p_sd15_openpose"],
        "controlnet_processor": ["ControlnetImageProcesserTile", "VideoControlnetImageProcesserOpenpose"],
        "controlnet_scale": [1.0, 0.0],
        "smoother": "PySynthSmoother",
        "smoother_config": {"gpu_id": 0, "speed": "slowest", "window_size": 3},
        "model_id": "../models/fashion_models/91GN31Z1rVS",
        "input_video": "../data/91EfnBTEE2S.mp4",
        "frame_height": 768,
        "frame_width": 512,
        "frame_interval": 2,
        "frame_maximum_count": 10,
        "prompt": "A woman. Fashion clothes.",
        "negative_prompt": "",
        "frames_reference": [ref_path],
        "num_inference_steps": 10,
        "seed_of_noise": None,
        "combine_pattern": ["reference_0", -1, 0, 1],
        "img2img_strength": 1.0,
        "ignore_smoother_steps": 1,
        "smoother_interval": 1,
        "output_path": "output_video",
    }


def test_diffsynth_config_1_field_by_field():
    style, gen, extras = diffsynth_config(_config_1())
    assert (gen.width, gen.height, gen.steps, gen.seed, gen.cfg_scale) == (960, 512, 20, 0, 7.5)
    assert gen.prompt == "winter, snow, fishing rod, white, grass" and gen.negative_prompt == ""
    assert gen.denoising_strength == 1.0 and gen.scheduler.value == "ddim"
    assert (style.every, style.max_frames, style.combine_pattern) == (1, 10, "-10000, -1, 0, 1")
    assert (style.smoother.value, style.smoother_window, style.smoother_interval, style.smoother_ignore_last) == (
        "fast",
        10,
        5,
        0,
    )
    assert (style.post_deflicker.value, style.post_window, style.contrast, style.sharpness) == (
        "balanced",
        60,
        1.0,
        1.0,
    )
    assert style.reference_images is None
    assert extras.model == "../models/DreamShaper7" and extras.input_path == "../data/video.mp4"
    assert extras.processors == ["tile", "canny"] and extras.controlnet_scales == [1.0, 0.5]
    assert extras.controlnets[0].endswith("sd15_tile") and extras.output_path == "output_video"
    assert (extras.smoother_contrast, extras.smoother_sharpness) == (1.5, 5.0)
    assert extras.smoother_patch_size is None and extras.smoother_guide_weight is None


def test_diffsynth_config_2_field_by_field(tmp_path):
    ref = tmp_path / "0.png"
    Image.fromarray(np.full((8, 8, 3), 200, np.uint8)).save(ref)
    style, gen, extras = diffsynth_config(_config_2("0.png"), base_dir=tmp_path)
    assert (gen.width, gen.height, gen.steps, gen.seed) == (512, 768, 10, -1)
    assert style.combine_pattern == "reference_0, -1, 0, 1" and len(style.reference_images) == 1
    assert base64.b64decode(style.reference_images[0]) == ref.read_bytes()
    assert (style.every, style.smoother.value, style.smoother_window, style.smoother_ignore_last) == (
        2,
        "balanced",
        3,
        1,
    )
    assert style.post_deflicker.value == "none"  # no post_smoother in the config
    assert extras.processors == ["tile"] and len(extras.controlnets) == 1  # the zero-scale openpose net is dropped
    assert (extras.smoother_contrast, extras.smoother_sharpness) == (1.0, 1.0)


def test_diffsynth_config_vidsd_names_and_fastblend():
    config = {
        "smoother": "FastBlendSmoother",
        "smoother_config": {
            "inference_mode": "accurate",
            "window_size": 4,
            "minimum_patch_size": 7,
            "guide_weight": 20,
        },
        "post_smoother": "fast",
        "post_smoother_config": {"window_size": 8, "postprocessing": {"contrast": 1.1}},
        "chunk_size": 2,
        "fixed_noise": False,
        "scheduler": "euler",
        "format": "mp4,gif",
    }
    style, gen, extras = diffsynth_config(config)
    assert (style.smoother.value, style.smoother_window, style.chunk_size, style.fixed_noise) == (
        "accurate",
        4,
        2,
        False,
    )
    assert (style.post_deflicker.value, style.post_window, style.contrast) == ("fast", 8, 1.1)
    assert (extras.smoother_patch_size, extras.smoother_guide_weight) == (7, 20.0)
    assert gen.scheduler.value == "euler" and [f.value for f in style.format] == ["mp4", "gif"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"nonsense": 1}, "nonsense"),
        ({"input_dir": "x"}, "input_dir"),
        ({"controlnet_processor": ["ControlnetImageProcesserDepth", "canny"]}, "controlnet_processor"),
        ({"controlnet_processor": ["canny"]}, "controlnet_processor"),
        ({"style_image": "style.jpg"}, "style_image"),
        ({"smoother": "EbsynthSmoother"}, "smoother"),
        ({"smoother_config": {"speed": "medium"}}, "smoother_config.speed"),
        ({"smoother_config": {"num_iter": 6}}, "smoother_config.num_iter"),
        ({"smoother_config": {"colour": 1}}, "smoother_config.colour"),
        ({"steps": 10}, "steps"),
        ({"frame_width": 500}, "width"),
        ({"combine_pattern": [-1, 1]}, "combine_pattern"),
        ({"frames_reference": ["missing.png"]}, r"frames_reference\[0\]"),
    ],
)
def test_diffsynth_config_errors_name_the_key(change, field):
    with pytest.raises(ConfigError, match=field) as info:
        diffsynth_config({**_config_1(), **change})
    if field == "nonsense":
        assert "model_id" in str(info.value) and "chunk_size" in str(info.value)


def test_local_paths_only(tmp_path):
    video = tmp_path / "in.mp4"
    video.write_bytes(b"x")
    with pytest.raises(ConfigError, match="local model paths only"):
        check_local_paths(DiffSynthExtras(model="runwayml/stable-diffusion-v1-5", input_path=str(video)))
    with pytest.raises(ConfigError, match=r"controlnet_model_id\[0\]"):
        check_local_paths(DiffSynthExtras(model=str(tmp_path), controlnets=["lllyasviel/x"], input_path=str(video)))
    with pytest.raises(ConfigError, match="input_video"):
        check_local_paths(DiffSynthExtras(model=str(tmp_path), input_path=str(tmp_path / "nope.mp4")))
    check_local_paths(DiffSynthExtras(model=str(tmp_path), input_path=str(video)))
    check_local_paths(DiffSynthExtras(model=None, input_path=str(video)))  # no model_id: the tiny built-in model
