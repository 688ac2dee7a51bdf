"""Keyframe animation: the per-frame plan, the render loop and the diffusers renderer.

The plan is checked against Giffusion's ``BYOPFlow`` fixture (per-frame initial latents and prompt
embeddings): :func:`plan_animation` gives each frame its two keys, seeds and weight, and
:func:`frame_noise` / a slerp of the two embeddings rebuild the anchor's tensors. Frames before the
first key get the first key's prompt and noise here (the anchor leaves them empty, so the renderer
would fail there: the defect we fix); the fixture lists only the frames it defines.
"""

from __future__ import annotations

import json
import wave
from functools import cache

import numpy as np
import pytest
import torch
from PIL import Image

from lib_vidsd.config import KeyframeParams, validate
from lib_vidsd.errors import ConfigError, Interrupted, VidsdError
from lib_vidsd.keyframe import slerp, warp2d
from lib_vidsd.keyframe.job import KeyframeJob
from lib_vidsd.keyframe.latents import seed_schedule
from lib_vidsd.keyframe.plan import animation_fps, plan_animation
from lib_vidsd.pipelines.keyframes import frame_noise
from lib_vidsd.video import probe
from tests.rig.fixtures import require_fixture

SIZE = (32, 24)


@cache
def _latents_fixture() -> dict:
    return json.loads(require_fixture("keyframes/giffusion_latents_public.json").read_text())


def _t(value) -> torch.Tensor:
    return torch.tensor(value, dtype=torch.float64)


@pytest.mark.parametrize("index", range(4))
def test_plan_rebuilds_giffusion_latents_and_embeddings(index):
    case = _latents_fixture()["cases"][index]
    params = validate(
        KeyframeParams,
        prompts=case["text"],
        interpolation=case["interpolation_type"],
        interpolation_args=case["interpolation_args"],
        fixed_latent=case["use_fixed_latent"],
    )
    plan = plan_animation(params, prompt="", seed=case["seed"])
    assert plan.num_frames == case["max_frames"]
    embeds = {prompt.strip(): _t(value).float() for prompt, value in case["embeddings_by_prompt"].items()}
    for frame, expected in case["init_latents"].items():
        f = plan.frames[int(frame)]
        noise = frame_noise(f, case["latent_shape"])
        torch.testing.assert_close(noise.double(), _t(expected), rtol=0, atol=1e-6, msg=f"{case['id']} frame {frame}")
        embed = slerp(embeds[f.prompt_a], embeds[f.prompt_b], f.weight)
        torch.testing.assert_close(embed.double(), _t(case["prompt_embeddings"][frame]), rtol=0, atol=1e-6)
    first_key = case["key_frames"][0][0]
    for f in plan.frames[:first_key]:  # the anchor leaves these frames empty; we hold the first key
        assert (f.prompt_a, f.prompt_b, f.weight, f.seed_a) == (plan.frames[first_key].prompt_a,) * 2 + (
            0.0,
            case["seed"],
        )


def _plan(**fields):
    fields.setdefault("prompts", "0: a corgi\n6: a lion")
    return plan_animation(validate(KeyframeParams, **fields), prompt="oil painting", seed=7, cfg_scale=5.0)


def test_plan_prompts_seeds_and_weights():
    plan = _plan(max_frames=10)
    lion_seed = seed_schedule(7, 7)[6]
    assert [f.prompt_a for f in plan.frames[:6]] == ["a corgi, oil painting"] * 6
    assert plan.frames[6].prompt_b == "a lion, oil painting" and plan.frames[6].weight == 1.0
    assert [round(f.weight, 4) for f in plan.frames[:7]] == [round(i / 6, 4) for i in range(7)]
    assert all((f.seed_a, f.seed_b) == (7, lion_seed) for f in plan.frames[:7])
    assert all((f.prompt_a, f.seed_a, f.weight) == ("a lion, oil painting", lion_seed, 0.0) for f in plan.frames[7:])
    assert all(f.cfg_scale == 5.0 and f.strength == 0.65 for f in plan.frames)
    assert plan.frames[3].travels and not plan.frames[8].travels


def test_plan_fixed_latent_seed_schedule_and_empty_prompts():
    assert {(f.seed_a, f.seed_b) for f in _plan(fixed_latent=True).frames} == {(7, 7)}
    plan = _plan(seed_schedule="0: (100), 6: (200)")
    assert (plan.frames[2].seed_a, plan.frames[2].seed_b) == (100, 200)
    plan = _plan(seed_schedule="0: (-1), 6: (200)")  # -1: the seed Giffusion would give that key
    assert (plan.frames[2].seed_a, plan.frames[2].seed_b) == (7, 200)
    single = plan_animation(validate(KeyframeParams, max_frames=3), prompt="a cat", seed=1)
    assert [(f.prompt_a, f.weight, f.seed_a) for f in single.frames] == [("a cat", 0.0, 1)] * 3


def test_plan_series_and_motion():
    plan = _plan(mode="2d", max_frames=11, zoom="0: (1.0), 10: (2.0)", angle="0: (t*2)", cfg_scale="0: (4), 5: (9)")
    assert [f.zoom for f in plan.frames] == pytest.approx([1 + i / 10 for i in range(11)])
    assert [f.angle for f in plan.frames] == [2.0 * i for i in range(11)]
    assert plan.frames[5].cfg_scale == 9.0 and plan.frames[0].cfg_scale == 4.0
    assert plan.frames[0].motion() == {
        "zoom": 1.0,
        "angle": 0.0,
        "translate_x": 0.0,
        "translate_y": 0.0,
        "pivot": (0.5, 0.5),
    }
    still = _plan(max_frames=4, zoom="0: (3)")  # motion is read only in mode 2d
    assert {f.zoom for f in still.frames} == {1.0}


@pytest.mark.parametrize(
    "fields, field, words",
    [
        ({"strength": "0: (0.5), 4: (1.5)"}, "strength", "frame 3 gets 1.25"),
        ({"mode": "2d", "zoom": "0: (1.0), 3: (0)"}, "zoom", "frame 3"),
        ({"strength": "0: (0.5"}, "strength", "unclosed"),
        ({"prompts": "0: a\nnope"}, "prompts", "character 5"),
        ({"interpolation": "sine", "interpolation_args": "x"}, "interpolation_args", "'x'"),
        ({"mode": "video"}, "video", "mode 'video'"),
        ({"audio_keys": True}, "audio_keys", "onsets"),
        ({"seed_schedule": "0: (-5)"}, "seed_schedule", "frame 0"),
        ({"seed_schedule": "0: (18446744073709551615)"}, "seed_schedule", "2**53"),
        ({"seed_schedule": "0: (1), 4: (2)", "prompts": "0: a\n2: b"}, "seed_schedule", "frame 2 gets 1.5"),
    ],
)
def test_plan_errors_name_the_field(fields, field, words):
    with pytest.raises(ConfigError) as info:
        _plan(max_frames=8, **fields)
    assert info.value.field == field
    assert words in str(info.value)


def test_plan_lengths_fps_and_audio_keys():
    params = validate(KeyframeParams, prompts="0: a\n1: b", audio_keys=True)
    plan = plan_animation(params, prompt="", seed=1, audio_frames=31, onsets=[0, 7, 7, 12, 40])
    assert plan.num_frames == 31
    assert plan.keys == [(0, "a"), (7, "b"), (12, "a")]
    video = validate(KeyframeParams, mode="video", video_every=2)
    assert plan_animation(video, prompt="x", seed=1, video_frames=9).num_frames == 9
    assert animation_fps(video, 24.0) == 12.0 and animation_fps(validate(KeyframeParams)) == 10.0
    assert animation_fps(validate(KeyframeParams, fps=8, mode="video"), 30.0) == 8.0


def test_batches_follow_what_ties_frames():
    plan = _plan(max_frames=10, strength="0: (0.5), 5: (0.5), 6: (0.7)")
    sizes = [[f.index for f in b] for b in plan.batches(4)]
    assert sizes == [[0, 1, 2, 3], [4, 5], [6, 7, 8, 9]]  # frame 5 ramps 0.5 → 0.5, 6 starts 0.7
    assert [len(b) for b in plan.batches(4, start=8)] == [2]
    assert {len(b) for b in plan.batches(4, sequential=True)} == {1}
    assert {len(b) for b in _plan(mode="2d", max_frames=5).batches(4)} == {1}
    img = plan_animation(validate(KeyframeParams, max_frames=4), prompt="x", seed=1, img2img=True)
    assert img.uses_init(0) and [len(b) for b in img.batches(2)] == [2, 2]


# --- the loop --------------------------------------------------------------------------------------


class FakeRenderer:
    """Answers each frame with a picture made from its index (and its init image when there is one)."""

    def __init__(self):
        self.requests = []

    def __call__(self, request):
        self.requests.append(request)
        out = []
        for i, frame in enumerate(request.frames):
            rng = np.random.default_rng(frame.index)
            image = rng.integers(0, 256, (request.height, request.width, 3), dtype=np.uint8)
            if request.init_images is not None:
                image = (image // 2 + request.init_images[i] // 2).astype(np.uint8)
            out.append(image)
        return out


class Stopper:
    def __init__(self, after: int, renderer: FakeRenderer, skip: bool = False):
        self.after, self.renderer, self.skip = after, renderer, skip

    def stop_requested(self) -> bool:
        return not self.skip and len(self.renderer.requests) >= self.after

    def skip_requested(self) -> bool:
        return self.skip and len(self.renderer.requests) >= self.after


def _job(tmp_path, fields, renderer=None, **kwargs):
    params = validate(KeyframeParams, **{"format": [], **fields})
    plan = plan_animation(params, prompt="p", seed=3, cfg_scale=7.0, img2img=kwargs.get("init_image") is not None)
    renderer = renderer or FakeRenderer()
    job = KeyframeJob(params, plan, renderer, out_dir=tmp_path / "kf", size=SIZE, **kwargs)
    return job, renderer


def _frame(path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


def test_2d_loopback_feeds_the_warped_previous_frame(tmp_path):
    fields = {"mode": "2d", "max_frames": 5, "zoom": "0: (1.2)", "angle": "0: (5)", "border": "wrap"}
    job, renderer = _job(tmp_path, fields)
    result = job.run()
    assert result.rendered == 5 and [len(r.frames) for r in renderer.requests] == [1] * 5
    assert renderer.requests[0].init_images is None  # frame 0: txt2img
    for k in range(1, 5):
        expected = warp2d(
            _frame(result.frames[k - 1]), zoom=1.2, angle=5.0, translate_x=0.0, translate_y=0.0, border="wrap"
        )
        np.testing.assert_array_equal(renderer.requests[k].init_images[0], expected)
    text = Image.open(result.frames[2]).info["parameters"]
    assert text.startswith("p\n") and "Denoising strength: 0.65" in text and "frame: 2" in text


def test_color_match_to_first_frame(tmp_path):
    job, _ = _job(tmp_path, {"max_frames": 3, "color_match": 1.0})
    frames = job.run().frames
    plain, _ = _job(tmp_path / "plain", {"max_frames": 3})
    raw = plain.run().frames
    from lib_vidsd.keyframe import match_colors

    np.testing.assert_array_equal(_frame(frames[0]), _frame(raw[0]))
    np.testing.assert_array_equal(_frame(frames[2]), match_colors(_frame(raw[2]), _frame(raw[0]), "lab"))


def test_batches_init_image_and_video(tmp_path):
    init = np.full((SIZE[1], SIZE[0], 3), 200, np.uint8)
    job, renderer = _job(tmp_path, {"max_frames": 6}, init_image=init, batch_size=4)
    job.run()
    assert [len(r.frames) for r in renderer.requests] == [4, 2]
    assert all(np.array_equal(img, init) for r in renderer.requests for img in r.init_images)
    video = [np.full((SIZE[1], SIZE[0], 3), 10 * k, np.uint8) for k in range(5)]
    params = validate(KeyframeParams, mode="video", format=[])
    plan = plan_animation(params, prompt="p", seed=3, video_frames=len(video))
    renderer = FakeRenderer()
    KeyframeJob(params, plan, renderer, out_dir=tmp_path / "v", size=SIZE, video=iter(video), batch_size=2).run()
    fed = [img for r in renderer.requests for img in r.init_images]
    assert [int(img[0, 0, 0]) for img in fed] == [0, 10, 20, 30, 40]


def test_interrupt_then_resume_continues_the_loopback(tmp_path):
    fields = {"mode": "2d", "max_frames": 6, "zoom": "0: (1.1)"}
    renderer = FakeRenderer()
    job, _ = _job(tmp_path, fields, renderer, stop=Stopper(3, renderer))
    with pytest.raises(Interrupted):
        job.run()
    kept = sorted(p.name for p in (tmp_path / "kf").iterdir())
    assert kept == ["00000.png", "00001.png"]  # the frame being rendered when the stop came is not saved
    with pytest.raises(ConfigError, match="resume"):
        _job(tmp_path, fields)[0].run()
    job, renderer = _job(tmp_path, {**fields, "resume": True, "format": ["gif"]})
    result = job.run()
    assert result.rendered == 4 and len(result.frames) == 6 and result.videos
    expected = warp2d(_frame(tmp_path / "kf" / "00001.png"), zoom=1.1, angle=0, translate_x=0, translate_y=0)
    np.testing.assert_array_equal(renderer.requests[0].init_images[0], expected)


def test_skip_ends_the_clip_with_what_was_done(tmp_path):
    renderer = FakeRenderer()
    job, _ = _job(tmp_path, {"max_frames": 5, "format": ["gif"]}, renderer, stop=Stopper(2, renderer, skip=True))
    result = job.run()
    assert not result.complete and len(result.frames) == 1 and result.videos


def test_renderer_giving_the_wrong_count_is_an_error(tmp_path):
    job, _ = _job(tmp_path, {"max_frames": 4}, lambda request: [], batch_size=2)
    with pytest.raises(VidsdError, match="0 images for 2 frames"):
        job.run()


def _wav(path, seconds=1.0, rate=8000):
    t = np.arange(int(seconds * rate)) / rate
    samples = (np.sin(2 * np.pi * 440 * t) * 12000).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.tobytes())
    return path


def test_audio_is_muxed_into_mp4_only(tmp_path):
    audio = _wav(tmp_path / "tone.wav")
    job, _ = _job(tmp_path, {"max_frames": 4, "format": ["mp4", "gif"], "fps": 4}, audio_path=audio)
    videos = job.run().videos
    assert probe(videos[0]).has_audio and not probe(videos[1]).has_audio
    job, _ = _job(tmp_path / "off", {"max_frames": 4, "format": ["mp4"], "mux_audio": False}, audio_path=audio)
    assert not probe(job.run().videos[0]).has_audio


# --- the diffusers renderer ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_sd():
    from lib_vidsd.pipelines.animate import load_sd

    return load_sd(None)


def _render(sd, params, frames_wanted=None, batch_size=1, **kwargs):
    from lib_vidsd.config import GenerationParams
    from lib_vidsd.pipelines.keyframes import DiffusersKeyframeRenderer

    gen = GenerationParams(prompt="", steps=2, width=64, height=64, seed=11)
    plan = plan_animation(params, prompt="", seed=11, cfg_scale=gen.cfg_scale)
    renderer = DiffusersKeyframeRenderer(sd, gen)
    images = []
    from lib_vidsd.keyframe.job import KeyframeRequest

    for batch in plan.batches(batch_size):
        images += renderer(KeyframeRequest(tuple(batch), None, 64, 64, **kwargs))
    return plan, [np.asarray(i) for i in images]


def _close(a: np.ndarray, b: np.ndarray) -> None:
    """Equal but for rounding: the text encoder ran on a batch of another size (one level, rarely)."""
    diff = np.abs(a.astype(int) - b.astype(int))
    assert diff.max() <= 1 and diff.mean() < 0.01


def test_diffusers_keyframe_frame_equals_its_key_alone(tiny_sd):
    travel = validate(KeyframeParams, prompts="0: a red ball\n2: a blue cube", seed_schedule="0: (5), 2: (9)")
    plan, frames = _render(tiny_sd, travel)
    assert (plan.frames[2].seed_b, plan.frames[2].weight) == (9, 1.0)
    alone = validate(KeyframeParams, prompts="0: a blue cube", seed_schedule="0: (9)", max_frames=1)
    _close(frames[2], _render(tiny_sd, alone)[1][0])
    first = validate(KeyframeParams, prompts="0: a red ball", seed_schedule="0: (5)", max_frames=1)
    _close(frames[0], _render(tiny_sd, first)[1][0])
    assert not np.array_equal(frames[1], frames[0]) and not np.array_equal(frames[1], frames[2])


def test_diffusers_batches_match_single_frames(tiny_sd):
    travel = validate(KeyframeParams, prompts="0: a red ball\n3: a blue cube", format=[])
    _, single = _render(tiny_sd, travel)
    _, batched = _render(tiny_sd, travel, batch_size=2)
    for a, b in zip(single, batched, strict=True):
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 1


def test_diffusers_coherence_pulls_and_carries_its_reference(tiny_sd):
    from lib_vidsd.keyframe import LatentCoherence

    travel = validate(KeyframeParams, prompts="0: a red ball\n3: a blue cube", format=[])
    _, plain = _render(tiny_sd, travel)
    coherence = LatentCoherence(64.0, 0.5)  # 2·64/256 elements: half way to the reference per step
    _, pulled = _render(tiny_sd, travel, coherence=coherence)
    assert coherence.reference is not None and coherence.reference.shape == (1, 4, 8, 8)
    assert not np.array_equal(plain[3], pulled[3])

    def spread(frames):
        return np.mean([np.abs(a.astype(float) - b).mean() for a, b in zip(frames, frames[1:], strict=False)])

    assert spread(pulled) < spread(plain)


def test_audio_shorter_than_the_clip_keeps_every_frame(tmp_path):
    audio = _wav(tmp_path / "short.wav", seconds=0.5)
    job, _ = _job(tmp_path, {"max_frames": 8, "format": ["mp4", "webm"], "fps": 8}, audio_path=audio)
    for video in job.run().videos:
        info = probe(video)
        assert info.has_audio and info.frame_count == 8, video.name
