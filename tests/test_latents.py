"""img2img animation: per-frame weights of the first/last frame's latent (sd-webui-animatediff's
``scripts/animatediff_latent.py``) and the blend itself."""

from __future__ import annotations

import pytest
import torch

from lib_vidsd.config import AnimateDiffParams, validate
from lib_vidsd.errors import ConfigError
from lib_vidsd.motion.latents import blend_for, blend_init_latents, blend_weights, frame_weights


def test_frame_weights_follow_the_formula():
    # 1 - i / 4 for i = 0..5, clamped at 0
    assert frame_weights(6, 1, 4).tolist() == [1.0, 0.75, 0.5, 0.25, 0.0, 0.0]
    # 1 - i^2 / 8: 1, 7/8, 1/2, -1/8 -> 0
    assert frame_weights(4, 2, 8).tolist() == [1.0, 0.875, 0.5, 0.0]
    # defaults of the API (power 1, scale 32): frame i keeps 1 - i/32
    w = frame_weights(16, 1.0, 32.0)
    assert w.dtype == torch.float32 and w.shape == (16,)
    assert torch.equal(w, torch.tensor([1 - i / 32 for i in range(16)], dtype=torch.float32))


def test_first_frame_weight_is_one_unless_power_is_zero():
    assert frame_weights(8, 0.5, 3)[0].item() == 1.0
    # Python's 0 ** 0 == 1, as in the reference: every frame gets 1 - 1/scale
    assert frame_weights(3, 0, 4).tolist() == [0.75, 0.75, 0.75]


@pytest.mark.parametrize("power, scale", [(1, 32), (2.5, 10), (0.3, 1.5), (4, 1000)])
def test_frame_weights_do_not_increase(power, scale):
    w = frame_weights(24, power, scale)
    assert torch.all(w[1:] <= w[:-1]) and w.min() >= 0 and w.max() <= 1


def test_reverse_mirrors():
    assert torch.equal(frame_weights(7, 1.5, 6, reverse=True), frame_weights(7, 1.5, 6).flip(0))


def test_weights_without_last_frame():
    a, b = blend_weights(5, 1, 2)
    assert b is None and a.tolist() == [1.0, 0.5, 0.0, 0.0, 0.0]


def test_weights_with_last_frame_hand_computed():
    # first: 1 - i/2 -> [1, .5, 0, 0, 0]; last: 1 - j^2/8 counted from the end -> [0, 0, .5, .875, 1]
    # sums never exceed 1, so no normalisation; the ends are pinned (already so here)
    a, b = blend_weights(5, 1, 2, with_last=True, power_last=2, scale_last=8)
    assert a.tolist() == [1.0, 0.5, 0.0, 0.0, 0.0]
    assert b.tolist() == [0.0, 0.0, 0.5, 0.875, 1.0]
    assert (1 - a - b).tolist() == [0.0, 0.5, 0.5, 0.125, 0.0]


def test_weights_with_last_frame_are_normalised_where_they_overlap():
    # first [1, .75, .5], last [.5, .75, 1]: every sum is 1.5 -> divided by 1.5, then ends pinned
    a, b = blend_weights(3, 1, 4, with_last=True, power_last=1, scale_last=4)
    assert torch.allclose(a, torch.tensor([1.0, 0.5, 0.0]))
    assert torch.allclose(b, torch.tensor([0.0, 0.5, 1.0]))
    # frame 1 is exactly as the reference computes it: 0.75 * float32(1 / 1.5)
    assert a[1].item() == (torch.tensor(0.75) * (1 / torch.tensor(1.5))).item()


def test_weights_with_last_frame_sum_to_at_most_one_and_pin_the_ends():
    a, b = blend_weights(16, 0.5, 1.5, with_last=True, power_last=1.2, scale_last=2.0)
    assert torch.all(a + b <= 1 + 1e-6) and torch.all(a >= 0) and torch.all(b >= 0)
    assert (a[0].item(), b[0].item(), a[-1].item(), b[-1].item()) == (1.0, 0.0, 0.0, 1.0)


def test_single_frame_with_last_frame_is_the_last_frame():
    a, b = blend_weights(1, 1, 32, with_last=True)
    assert a.tolist() == [0.0] and b.tolist() == [1.0]


def _latents(frames=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    first = torch.randn(4, 8, 6, generator=g)
    last = torch.randn(4, 8, 6, generator=g)
    noise = torch.randn(frames, 4, 8, 6, generator=g)
    return first, last, noise


def test_blend_without_last_frame():
    first, _, noise = _latents()
    out = blend_init_latents(first, noise, power=1, scale=2)
    assert out.shape == (5, 4, 8, 6)
    assert torch.equal(out[0], first)  # weight 1
    assert torch.allclose(out[1], 0.5 * first + 0.5 * noise[1])
    assert torch.equal(out[2:], noise[2:])  # weight 0


def test_blend_with_last_frame():
    first, last, noise = _latents()
    out = blend_init_latents(first, noise, power=1, scale=2, last=last[None], power_last=2, scale_last=8)
    assert torch.equal(out[0], first) and torch.equal(out[-1], last)
    assert torch.allclose(out[3], 0.875 * last + 0.125 * noise[3])
    assert torch.allclose(out[2], 0.5 * last + 0.5 * noise[2])


def test_blend_accepts_a1111_repeated_init_latent():
    first, _, noise = _latents()
    single = blend_init_latents(first, noise, power=1.5, scale=5)
    repeated = blend_init_latents(first.expand(5, -1, -1, -1), noise, power=1.5, scale=5)
    assert torch.equal(single, repeated)


def test_blend_dtype_promotes_as_the_reference():
    first, _, noise = _latents()
    assert blend_init_latents(first.half(), noise.half()).dtype == torch.float32


def test_blend_for_params():
    params = validate(AnimateDiffParams, latent_power=2, latent_scale=8, latent_power_last=1, latent_scale_last=2)
    first, last, noise = _latents()
    expected = blend_init_latents(first, noise, power=2, scale=8, last=last, power_last=1, scale_last=2)
    assert torch.equal(blend_for(params, first, noise, last), expected)


@pytest.mark.parametrize(
    "args, field",
    [
        (dict(num_frames=0), "video_length"),
        (dict(num_frames=2.5), "video_length"),
        (dict(power=-1), "latent_power"),
        (dict(scale=0), "latent_scale"),
        (dict(scale=float("inf")), "latent_scale"),
        (dict(power=-1, reverse=True), "latent_power_last"),
        (dict(scale=0, reverse=True), "latent_scale_last"),
    ],
)
def test_weight_errors_name_the_field(args, field):
    kwargs = dict(num_frames=4, power=1, scale=32)
    kwargs.update(args)
    with pytest.raises(ConfigError) as e:
        frame_weights(**kwargs)
    assert e.value.field == field


def test_blend_shape_errors():
    first, last, noise = _latents()
    with pytest.raises(ConfigError) as e:
        blend_init_latents(first[:, :4], noise)
    assert e.value.field == "init_latent"
    with pytest.raises(ConfigError) as e:
        blend_init_latents(first, noise, last=last.expand(5, -1, -1, -1))
    assert e.value.field == "last_frame"
    with pytest.raises(ConfigError) as e:
        blend_init_latents(first, noise[0])
    assert e.value.field == "noise"
    with pytest.raises(ConfigError) as e:
        blend_init_latents(first, noise, last=last, scale_last=0)
    assert e.value.field == "latent_scale_last"
