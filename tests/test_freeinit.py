"""FreeInit: filters, frequency mixing, re-noising and the iteration driver.

diffusers' ``free_init_utils`` is an independent implementation of the same method (its filters
and mixing equal sd-webui-animatediff's): where the definitions coincide the results must agree.
"""

from __future__ import annotations

import math

import pytest
import torch

from lib_vidsd.config import AnimateDiffParams, FreeInitFilter, validate
from lib_vidsd.errors import ConfigError, Interrupted
from lib_vidsd.motion.freeinit import (
    FILTERS,
    diffuse,
    filter_for,
    freeinit_loop,
    freq_filter,
    mix_frequencies,
    renoise,
)
from lib_vidsd.progress import StopFlag

KINDS = ["butterworth", "gaussian", "ideal", "box"]
SHAPES = [(8, 16, 12), (5, 7, 9), (16, 8, 8)]


def _alphas(steps: int = 1000) -> torch.Tensor:
    """SD's scaled-linear training schedule (beta 0.00085 .. 0.012)."""
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, steps, dtype=torch.float32) ** 2
    return torch.cumprod(1.0 - betas, dim=0)


def _mirror(lpf: torch.Tensor) -> torch.Tensor:
    """The filter at -k for each k, in fftshift order (centre N // 2)."""
    out = lpf
    for dim, n in enumerate(lpf.shape):
        idx = torch.tensor([(2 * (n // 2) - i) % n for i in range(n)])
        out = out.index_select(dim, idx)
    return out


# --- filters ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("shape", SHAPES)
def test_filter_shape_dc_and_range(kind, shape):
    lpf = freq_filter(shape, kind, 0.25, 0.25)
    f, h, w = shape
    assert lpf.shape == shape and lpf.dtype == torch.float32
    assert lpf[f // 2, h // 2, w // 2].item() == 1.0
    assert lpf.min() >= 0 and lpf.max() <= 1


@pytest.mark.parametrize("kind", KINDS)
def test_filter_is_small_at_the_highest_frequency(kind):
    lpf = freq_filter((16, 32, 32), kind, 0.25, 0.25)
    assert lpf[0, 0, 0].item() < 1e-4  # the Nyquist corner (gaussian: exp(-24))
    assert lpf[8, 16, 0].item() < 1e-3  # spatial Nyquist, temporal DC (gaussian: exp(-8))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("shape", SHAPES)
def test_filter_is_symmetric(kind, shape):
    lpf = freq_filter(shape, kind, 0.3, 0.6)
    assert torch.equal(lpf, _mirror(lpf))


def test_each_kind_differs():
    lpfs = {k: freq_filter((8, 16, 16), k, 0.25, 0.25) for k in KINDS}
    for i, a in enumerate(KINDS):
        for b in KINDS[i + 1 :]:
            assert not torch.allclose(lpfs[a], lpfs[b]), (a, b)


@pytest.mark.parametrize("kind", ["ideal", "box"])
def test_ideal_and_box_are_zero_one(kind):
    lpf = freq_filter((8, 16, 12), kind, 0.4, 0.5)
    assert set(lpf.unique().tolist()) == {0.0, 1.0}


def test_ideal_is_the_ellipsoid_and_box_the_cuboid():
    # 16 bins: normalised frequencies are multiples of 1/8; d_s = 0.25 is 2 bins, d_t = 0.5 4 bins
    ideal = freq_filter((16, 16, 16), "ideal", 0.25, 0.5)
    box = freq_filter((16, 16, 16), "box", 0.25, 0.5)
    c = 8
    assert ideal[c, c, c + 2] == 1 and ideal[c, c, c + 3] == 0  # radius d_s spatially
    assert ideal[c + 4, c, c] == 1 and ideal[c + 5, c, c] == 0  # radius d_t in time
    assert ideal[c, c + 2, c + 2] == 0  # outside the circle, inside the square
    assert box[c, c + 2, c + 2] == 1 and box[c + 4, c - 2, c + 2] == 1
    assert box[c, c + 3, c] == 0 and box[c - 5, c, c] == 0
    assert ideal.sum() < box.sum()


def test_filters_take_values_of_the_formula():
    d_s, d_t = 0.25, 0.5
    lpf = {k: freq_filter((16, 16, 16), k, d_s, d_t) for k in ("butterworth", "gaussian")}
    # bin (+2 in time, +1 in height, 0 in width) from the centre: f = (2/8, 1/8, 0)
    rho2 = (0.25 / d_t) ** 2 + (0.125 / d_s) ** 2
    assert lpf["butterworth"][10, 9, 8].item() == pytest.approx(1 / (1 + rho2**4), rel=1e-6)
    assert lpf["gaussian"][10, 9, 8].item() == pytest.approx(math.exp(-rho2 / 2), rel=1e-6)


def test_butterworth_order():
    sharp = freq_filter((8, 16, 16), "butterworth", 0.25, 0.25, order=16)
    soft = freq_filter((8, 16, 16), "butterworth", 0.25, 0.25, order=1)
    assert sharp[4, 8, 8 + 1] > soft[4, 8, 8 + 1]  # inside the cut-off: closer to 1
    assert sharp[4, 8, 8 + 4] < soft[4, 8, 8 + 4]  # outside: closer to 0


@pytest.mark.parametrize("kind", KINDS)
def test_zero_stop_frequencies_keep_only_the_zero_frequency(kind):
    f, h, w = 8, 12, 10
    dc_only = freq_filter((f, h, w), kind, 0.0, 0.0)
    expected = torch.zeros(f, h, w)
    expected[f // 2, h // 2, w // 2] = 1
    assert torch.equal(dc_only, expected)
    # d_t = 0: the temporal-DC plane keeps its spatial low-pass, every other plane is 0
    static = freq_filter((f, h, w), kind, 0.5, 0.0)
    assert torch.equal(static[f // 2], freq_filter((1, h, w), kind, 0.5, 0.5)[0])
    assert static[: f // 2].abs().sum() == 0 and static[f // 2 + 1 :].abs().sum() == 0
    # d_s = 0: the spatial-DC line keeps its temporal low-pass
    line = freq_filter((f, h, w), kind, 0.0, 0.5)
    assert torch.equal(line[:, h // 2, w // 2], freq_filter((f, 1, 1), kind, 0.5, 0.5)[:, 0, 0])
    assert line.sum() == line[:, h // 2, w // 2].sum()


def test_full_stop_frequency_box_passes_everything():
    assert torch.equal(freq_filter((8, 16, 12), "box", 1.0, 1.0), torch.ones(8, 16, 12))


def test_filter_accepts_the_config_enum_and_device_dtype():
    a = freq_filter((4, 8, 8), FreeInitFilter.GAUSSIAN, 0.25, 0.25, dtype=torch.float64, device="cpu")
    b = freq_filter((4, 8, 8), "gaussian", 0.25, 0.25, dtype=torch.float64)
    assert a.dtype == torch.float64 and torch.equal(a, b)
    assert set(FILTERS) == set(FreeInitFilter.values())


def test_filter_for_params():
    params = validate(AnimateDiffParams, freeinit_filter="box", freeinit_ds=0.5, freeinit_dt=0.25)
    assert torch.equal(filter_for(params, 16, 8, 8), freq_filter((16, 8, 8), "box", 0.5, 0.25))


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(kind="lanczos"), "freeinit_filter"),
        (dict(d_s=1.5), "freeinit_ds"),
        (dict(d_t=-0.1), "freeinit_dt"),
        (dict(d_s="wide"), "freeinit_ds"),
        (dict(order=0), "order"),
        (dict(shape=(8, 16)), "shape"),
        (dict(shape=(8, 0, 16)), "shape"),
    ],
)
def test_filter_errors_name_the_field(kwargs, field):
    args = dict(shape=(8, 16, 16), kind="butterworth", d_s=0.25, d_t=0.25)
    args.update(kwargs)
    with pytest.raises(ConfigError) as e:
        freq_filter(**args)
    assert e.value.field == field


def test_unknown_filter_lists_the_known_ones():
    with pytest.raises(ConfigError) as e:
        freq_filter((8, 8, 8), "lanczos")
    assert "butterworth, gaussian, ideal, box" in str(e.value)


# --- mixing -------------------------------------------------------------------------------------


def _pair(shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g), torch.randn(shape, generator=g)


def test_mix_with_all_pass_returns_latents_and_all_stop_returns_noise():
    x, n = _pair((8, 4, 16, 12))
    assert torch.allclose(mix_frequencies(x, n, torch.ones(8, 16, 12)), x, atol=1e-5)
    assert torch.allclose(mix_frequencies(x, n, torch.zeros(8, 16, 12)), n, atol=1e-5)


def test_mix_is_real_and_keeps_the_latents_mean_and_low_band():
    x, n = _pair((8, 4, 16, 16))
    lpf = freq_filter((8, 16, 16), "box", 0.5, 0.5)
    out = mix_frequencies(x, n, lpf)
    assert out.dtype == x.dtype and out.shape == x.shape
    # per channel the clip's mean (the DC bin) comes from the latents
    assert torch.allclose(out.mean(dim=(0, 2, 3)), x.mean(dim=(0, 2, 3)), atol=1e-5)
    # mixing twice with the same noise changes nothing (a projection)
    assert torch.allclose(mix_frequencies(out, n, lpf), out, atol=1e-5)


def test_mix_batch_of_videos_equals_each_video():
    x, n = _pair((3, 8, 4, 8, 8))
    lpf = freq_filter((8, 8, 8), "butterworth", 0.25, 0.25)
    batch = mix_frequencies(x, n, lpf)
    for b in range(3):
        assert torch.allclose(batch[b], mix_frequencies(x[b], n[b], lpf), atol=1e-6)


def test_mix_layouts_agree():
    x, n = _pair((2, 8, 4, 8, 6))  # (B, F, C, H, W)
    lpf = freq_filter((8, 8, 6), "gaussian", 0.25, 0.25)
    a1111 = mix_frequencies(x, n, lpf, frame_dim=-4)
    diffusers = mix_frequencies(x.transpose(1, 2), n.transpose(1, 2), lpf, frame_dim=-3)
    assert torch.allclose(a1111, diffusers.transpose(1, 2), atol=1e-6)


def test_mix_half_precision_comes_back_half():
    x, n = _pair((4, 4, 8, 8))
    out = mix_frequencies(x.half(), n.half(), freq_filter((4, 8, 8), "gaussian", 0.25, 0.25))
    assert out.dtype == torch.float16


@pytest.mark.parametrize(
    "latents, noise, lpf, field",
    [
        ((8, 4, 8, 8), (8, 4, 8, 6), (8, 8, 8), "noise"),
        ((8, 4, 8, 8), (8, 4, 8, 8), (4, 8, 8), "filter"),
        ((4, 8, 8), (4, 8, 8), (4, 8, 8), "latents"),
    ],
)
def test_mix_shape_errors(latents, noise, lpf, field):
    with pytest.raises(ConfigError) as e:
        mix_frequencies(torch.zeros(latents), torch.zeros(noise), torch.zeros(lpf))
    assert e.value.field == field


# --- against diffusers --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def diffusers_freeinit():
    module = pytest.importorskip("diffusers.pipelines.free_init_utils")
    return module.FreeInitMixin


def _their_filter(mixin, shape, kind, d_s, d_t, order=4):
    return mixin._get_free_init_freq_filter(None, (1, 1, *shape), "cpu", kind, order, d_s, d_t)[0, 0]


@pytest.mark.parametrize("kind", ["butterworth", "gaussian"])
@pytest.mark.parametrize("shape", [(8, 16, 12), (16, 8, 8), (4, 10, 14)])
@pytest.mark.parametrize("d_s, d_t", [(0.25, 0.25), (0.5, 0.125), (1.0, 0.75)])
def test_filters_equal_diffusers_for_even_sizes(diffusers_freeinit, kind, shape, d_s, d_t):
    ours = freq_filter(shape, kind, d_s, d_t)
    theirs = _their_filter(diffusers_freeinit, shape, kind, d_s, d_t)
    assert (ours - theirs).abs().max().item() <= 1e-6


def test_butterworth_order_equals_diffusers(diffusers_freeinit):
    ours = freq_filter((8, 8, 8), "butterworth", 0.25, 0.5, order=2)
    assert (ours - _their_filter(diffusers_freeinit, (8, 8, 8), "butterworth", 0.25, 0.5, order=2)).abs().max() <= 1e-6


def test_ideal_differs_from_diffusers_by_its_radius(diffusers_freeinit):
    """diffusers (and sd-webui-animatediff) test ``d^2 <= 2 d_s``: our ideal with the stop
    frequencies that give that ellipsoid, ``sqrt(2 d_s)`` and ``d_t sqrt(2 / d_s)``, equals it."""
    d_s, d_t = 0.32, 0.19  # chosen so that no grid point lies on either boundary
    theirs = _their_filter(diffusers_freeinit, (8, 16, 16), "ideal", d_s, d_t)
    assert not torch.equal(freq_filter((8, 16, 16), "ideal", d_s, d_t), theirs)
    same = freq_filter((8, 16, 16), "ideal", math.sqrt(2 * d_s), d_t * math.sqrt(2 / d_s))
    assert torch.equal(same, theirs)


def test_odd_sizes_are_centred_unlike_diffusers(diffusers_freeinit):
    ours = freq_filter((5, 7, 9), "gaussian", 0.25, 0.25)
    theirs = _their_filter(diffusers_freeinit, (5, 7, 9), "gaussian", 0.25, 0.25)
    assert ours[2, 3, 4] == 1 and theirs[2, 3, 4] < 1


def test_zero_stop_frequency_diffusers_returns_zeros(diffusers_freeinit):
    assert _their_filter(diffusers_freeinit, (4, 8, 8), "gaussian", 0.0, 0.25).abs().sum() == 0
    assert freq_filter((4, 8, 8), "gaussian", 0.0, 0.25).sum() > 0


@pytest.mark.parametrize("kind", ["butterworth", "gaussian"])
def test_mixing_equals_diffusers(diffusers_freeinit, kind):
    x, n = _pair((2, 4, 8, 16, 12))  # diffusers' (B, C, F, H, W)
    lpf = freq_filter((8, 16, 12), kind, 0.25, 0.25)
    theirs = diffusers_freeinit._apply_freq_filter(None, x, n, lpf)
    ours = mix_frequencies(x, n, lpf, frame_dim=-3)
    assert (ours - theirs).abs().max().item() <= 1e-6
    ours_a1111 = mix_frequencies(x.transpose(1, 2), n.transpose(1, 2), lpf).transpose(1, 2)
    assert (ours_a1111 - theirs).abs().max().item() <= 1e-6


def test_renoise_and_loop_equal_diffusers_apply_free_init(diffusers_freeinit):
    """One whole re-initialisation: diffusers' ``_apply_free_init`` with a DDIM scheduler and a
    seeded generator against :func:`renoise` and :func:`freeinit_loop` with the same generator."""
    from diffusers import DDIMScheduler

    class Pipe(diffusers_freeinit):
        scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")

    pipe = Pipe()
    pipe.enable_free_init(num_iters=2, method="butterworth", order=4)
    noise, z0 = _pair((1, 4, 8, 16, 12))
    pipe._apply_free_init(noise, 0, 10, "cpu", torch.float32, None)
    theirs, _ = pipe._apply_free_init(z0, 1, 10, "cpu", torch.float32, torch.Generator().manual_seed(7))

    alphas = pipe.scheduler.alphas_cumprod
    lpf = freq_filter((8, 16, 12), "butterworth", 0.25, 0.25)
    fresh = torch.randn(noise.shape, generator=torch.Generator().manual_seed(7))
    ours = renoise(z0, noise, lpf, alphas, fresh_noise=fresh, frame_dim=-3)
    assert (ours - theirs).abs().max().item() <= 1e-6

    inputs = []

    def sample(x):
        inputs.append(x)
        return z0  # the first sampling "produces" z0; the second's input is the re-initialised noise

    freeinit_loop(
        sample, noise, 2, lpf=lpf, alphas_cumprod=alphas, generator=torch.Generator().manual_seed(7), frame_dim=-3
    )
    assert (inputs[1] - theirs).abs().max().item() <= 1e-6


# --- diffusion and the loop ---------------------------------------------------------------------


def test_diffuse_is_the_forward_process():
    z0, eps = _pair((4, 4, 8, 8))
    alphas = _alphas()
    a = alphas[999].item()
    assert torch.allclose(diffuse(z0, eps, alphas), math.sqrt(a) * z0 + math.sqrt(1 - a) * eps, atol=1e-6)
    a5 = alphas[500].item()
    assert torch.allclose(diffuse(z0, eps, alphas, 500), math.sqrt(a5) * z0 + math.sqrt(1 - a5) * eps, atol=1e-6)
    assert torch.allclose(diffuse(z0, eps, torch.ones(10), 3), z0)


@pytest.mark.parametrize("timestep", [1000, -1, 2.5])
def test_diffuse_rejects_timesteps_outside_the_schedule(timestep):
    z0, eps = _pair((4, 4, 8, 8))
    with pytest.raises(ConfigError) as e:
        diffuse(z0, eps, _alphas(), timestep)
    assert e.value.field == "timestep"


def test_renoise_defaults_to_the_initial_noise_for_high_frequencies():
    """sd-webui-animatediff: diffuse with the initial noise, then take its high band again."""
    z0, eps = _pair((8, 4, 8, 8))
    alphas = _alphas()
    lpf = freq_filter((8, 8, 8), "butterworth", 0.25, 0.25)
    expected = mix_frequencies(diffuse(z0, eps, alphas), eps, lpf)
    assert torch.allclose(renoise(z0, eps, lpf, alphas), expected, atol=1e-6)
    # with everything high-pass the next noise is the initial noise itself
    assert torch.allclose(renoise(z0, eps, torch.zeros(8, 8, 8), alphas), eps, atol=1e-5)


class _Sampler:
    """A deterministic stand-in for a sampler: records its inputs, returns a fixed function of them."""

    def __init__(self):
        self.inputs: list[torch.Tensor] = []

    def __call__(self, noise: torch.Tensor) -> torch.Tensor:
        self.inputs.append(noise.clone())
        return 0.5 * noise.roll(1, dims=0) + 0.1


def _run(iters=3, **kwargs):
    noise, _ = _pair((8, 4, 8, 8), seed=3)
    sampler = _Sampler()
    kwargs.setdefault("lpf", freq_filter((8, 8, 8), "butterworth", 0.25, 0.25))
    kwargs.setdefault("alphas_cumprod", _alphas())
    out = freeinit_loop(sampler, noise, iters, **kwargs)
    return out, sampler, noise


def test_loop_calls_sample_fn_iters_times_first_plain():
    out, sampler, noise = _run(iters=4)
    assert len(sampler.inputs) == 4
    assert torch.equal(sampler.inputs[0], noise)
    lpf = freq_filter((8, 8, 8), "butterworth", 0.25, 0.25)
    z0 = 0.5 * noise.roll(1, dims=0) + 0.1  # what the first sampling returned
    assert torch.allclose(sampler.inputs[1], renoise(z0, noise, lpf, _alphas()), atol=1e-6)
    assert torch.equal(out, 0.5 * sampler.inputs[3].roll(1, dims=0) + 0.1)


def test_loop_with_one_iteration_is_plain_sampling():
    out, sampler, noise = _run(iters=1)
    assert len(sampler.inputs) == 1 and torch.equal(out, sampler(noise))


def test_loop_leaves_the_initial_noise_alone():
    noise, _ = _pair((8, 4, 8, 8))
    before = noise.clone()

    def in_place(x):
        return x.mul_(3.0)

    freeinit_loop(in_place, noise, 3, lpf=freq_filter((8, 8, 8), "gaussian", 0.25, 0.25), alphas_cumprod=_alphas())
    assert torch.equal(noise, before)


def test_loop_is_deterministic_for_a_seed_and_the_seed_matters():
    a, sa, _ = _run(seed=11)
    b, sb, _ = _run(seed=11)
    c, _, _ = _run(seed=12)
    d, _, _ = _run()  # initial noise reused: deterministic without any seed
    e, _, _ = _run()
    assert torch.equal(a, b) and all(torch.equal(x, y) for x, y in zip(sa.inputs, sb.inputs, strict=True))
    assert not torch.allclose(a, c)
    assert torch.equal(d, e) and not torch.allclose(a, d)


def test_loop_fresh_noise_keeps_the_low_band():
    """Fresh noise changes only the high frequencies: the low-pass of each re-initialised noise
    is the same with or without a seed."""
    lpf = freq_filter((8, 8, 8), "box", 0.5, 0.5)
    _, fresh, _ = _run(lpf=lpf, seed=5)
    _, reused, _ = _run(lpf=lpf)
    zero = torch.zeros(8, 4, 8, 8)
    for a, b in zip(fresh.inputs[1:], reused.inputs[1:], strict=True):
        assert torch.allclose(mix_frequencies(a, zero, lpf), mix_frequencies(b, zero, lpf), atol=1e-5)
        assert not torch.allclose(a, b)


def test_loop_stops_before_the_next_iteration():
    flag = StopFlag()
    noise, _ = _pair((8, 4, 8, 8))
    calls = []

    def sample(x):
        calls.append(1)
        if len(calls) == 2:
            flag.stop()
        return x

    with pytest.raises(Interrupted):
        freeinit_loop(
            sample, noise, 5, lpf=freq_filter((8, 8, 8), "ideal", 0.5, 0.5), alphas_cumprod=_alphas(), stop=flag
        )
    assert len(calls) == 2


def test_loop_reports_progress():
    seen = []
    _run(iters=3, progress=lambda done, total, text="": seen.append((done, total)))
    assert seen == [(1, 3), (2, 3), (3, 3)]


def test_loop_batch_and_diffusers_layouts():
    noise, _ = _pair((2, 4, 8, 8, 6))  # (B, C, F, H, W)
    lpf = freq_filter((8, 8, 6), "gaussian", 0.25, 0.25)
    out = freeinit_loop(lambda x: x * 0.5, noise, 2, lpf=lpf, alphas_cumprod=_alphas(), frame_dim=-3, seed=1)
    assert out.shape == noise.shape
    with pytest.raises(ConfigError) as e:
        freeinit_loop(lambda x: x, noise, 2, lpf=lpf, alphas_cumprod=_alphas())  # frames on -4: 4 != 8
    assert e.value.field == "filter"


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(iters=0), "freeinit_iters"),
        (dict(seed=1, generator=torch.Generator()), "seed"),
        (dict(timestep=5000), "timestep"),
        (dict(lpf=torch.ones(4, 8, 8)), "filter"),
    ],
)
def test_loop_argument_errors(kwargs, field):
    with pytest.raises(ConfigError) as e:
        _run(**kwargs)
    assert e.value.field == field


def test_loop_rejects_a_sampler_returning_another_shape():
    with pytest.raises(ConfigError) as e:
        freeinit_loop(lambda x: x[:1], torch.zeros(8, 4, 8, 8), 2, lpf=torch.ones(8, 8, 8), alphas_cumprod=_alphas())
    assert e.value.field == "sample_fn"
