"""FreeInit: re-initialise the low frequencies of a video's starting noise and sample again.

Method: Wu et al. 2023, "FreeInit: Bridging Initialization Gap in Video Diffusion Models"
(arXiv:2312.07537). Sample once; diffuse the clean result ``z0`` back to the last training
timestep; keep that latent's low spatio-temporal frequencies (a low-pass filter over frames,
height and width of the 3-D FFT) and take the high ones from noise; sample again from the mix;
repeat.

Behaviour follows sd-webui-animatediff (``scripts/animatediff_freeinit.py``):

- the clean latent is diffused to timestep ``len(alphas_cumprod) - 1`` (999 for SD) with the
  model's own ``alphas_cumprod`` and the *initial* noise of the first iteration
  (``sqrt(a_T) z0 + sqrt(1 - a_T) eps_0``);
- the high frequencies come from that same initial noise again; the paper and diffusers draw
  fresh noise instead, which :func:`freeinit_loop` does when given a ``seed`` or ``generator``;
- the filter spans (frames, latent height, latent width) of the whole clip, identical for every
  channel; the first iteration samples the plain initial noise.

Filters are the paper's, in a normalised frequency grid where every axis runs over
``2 * k / N`` for the centred bin offsets ``k`` (``-N//2 .. (N-1)//2``, i.e. -1 .. 1 with the DC
bin at 0 after ``fftshift``). With ``rho^2 = (f_t / d_t)^2 + (f_h / d_s)^2 + (f_w / d_s)^2``
(the reference's ``((d_s/d_t) f_t)^2 + f_h^2 + f_w^2`` divided by ``d_s^2``):

=============  =================================================================================
butterworth    ``1 / (1 + rho^(2n))``, order ``n`` (4)
gaussian       ``exp(-rho^2 / 2)``
ideal          ``1`` where ``rho <= 1`` else ``0`` (a 0/1 ellipsoid)
box            ``1`` where ``|f_t| <= d_t`` and ``|f_h|, |f_w| <= d_s`` else ``0`` (a 0/1 box)
=============  =================================================================================

Where we differ from sd-webui-animatediff and diffusers' ``free_init_utils`` (which agree with
each other), on purpose:

- *ideal*: both test ``d^2 <= d_s * 2`` (twice ``d_s``, not its square), a cut-off radius of
  ``sqrt(2 d_s)`` (0.71 at the default 0.25) instead of ``d_s``. Ours cuts at ``rho = 1``
  (radius ``d_s``), where butterworth is 1/2: the usual ideal low-pass, comparable with the
  other kinds at the same ``d_s``.
- *box* (sd-webui-animatediff only): its mask spans bins ``c - r .. c + r - 1`` around the DC
  bin ``c`` with ``r = round(N // 2 * d)``, one bin short on the positive side; taking ``.real``
  after the inverse FFT then applies the mask averaged with its mirror image: 1 for
  ``|k| <= r - 1`` on every axis, 0.5 or 0 where some ``|k| = r``, and nothing at all once
  ``r`` rounds to 0. Ours is symmetric and 0/1, ``|k| <= d * N / 2`` (1 on that whole shell),
  and keeps the zero frequency at ``d = 0`` like the other kinds.
- *odd sizes*: their grid ``2 * i / N - 1`` puts 0 on the DC bin only for even ``N``; for odd
  ``N`` the filter is off-centre by half a bin. Ours is centred for every ``N``; for even ``N``
  butterworth and gaussian equal theirs (within float32 rounding).
- ``d_s == 0`` or ``d_t == 0``: theirs return an all-zero filter (FreeInit restarts from noise
  each time). Ours take the limit: that axis keeps its zero frequency only (``d_t = 0`` keeps the
  clip's per-pixel temporal mean at low spatial frequencies; ``d_s = d_t = 0`` the DC bin).

Layouts: A1111 holds one video as ``(F, C, H, W)`` (the batch is the frames); several videos are
``(B, F, C, H, W)``; both have frames at ``frame_dim=-4`` (the default). diffusers' AnimateDiff
pipelines hold ``(B, C, F, H, W)``: pass ``frame_dim=-3``. Filters are always ``(F, H, W)``.

Noise is in the variance-preserving parameterisation (unit-variance ``eps``), which is what
A1111 hands its samplers and what diffusers' DDIM-style schedulers start from; a sampler that
starts from ``sigma_max * eps`` scales it inside ``sample_fn``.
"""

from __future__ import annotations

import enum
import logging
import math
import operator
from typing import TYPE_CHECKING, Callable, Optional, Sequence, Union

import torch
import torch.fft as fft

from ..errors import ConfigError
from ..progress import ProgressSink, StopToken, check_stop

if TYPE_CHECKING:  # pragma: no cover
    from ..config import AnimateDiffParams

log = logging.getLogger("vidsd.motion.freeinit")

Tensor = torch.Tensor
# A filter builder gets the three per-axis terms (f_t/d_t)^2 (T,1,1), (f_h/d_s)^2 (1,H,1),
# (f_w/d_s)^2 (1,1,W) in float64 and the order, and returns the (T, H, W) filter.
FilterFn = Callable[[Tensor, Tensor, Tensor, float], Tensor]

# Inclusion of a grid point lying exactly on an ideal/box boundary must not hinge on rounding.
_EDGE = 1e-9


def _butterworth(t: Tensor, h: Tensor, w: Tensor, order: float) -> Tensor:
    return 1.0 / (1.0 + (t + h + w) ** order)


def _gaussian(t: Tensor, h: Tensor, w: Tensor, order: float) -> Tensor:
    return torch.exp(-0.5 * (t + h + w))


def _ideal(t: Tensor, h: Tensor, w: Tensor, order: float) -> Tensor:
    return ((t + h + w) <= 1.0 + _EDGE).to(torch.float64)


def _box(t: Tensor, h: Tensor, w: Tensor, order: float) -> Tensor:
    edge = 1.0 + _EDGE
    return ((t <= edge) & (h <= edge) & (w <= edge)).to(torch.float64)


FILTERS: dict[str, FilterFn] = {
    "butterworth": _butterworth,
    "gaussian": _gaussian,
    "ideal": _ideal,
    "box": _box,
}
"""Low-pass filter shapes by name (the values of :class:`lib_vidsd.config.FreeInitFilter`)."""


def _filter_name(kind: object) -> str:
    name = kind.value if isinstance(kind, enum.Enum) else kind
    if isinstance(name, str) and name.strip().lower() in FILTERS:
        return name.strip().lower()
    raise ConfigError("freeinit_filter", name, list(FILTERS))


def _stop_frequency(field: str, value: object) -> float:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ConfigError(field, value, "0..1") from None
    if isinstance(value, bool) or not 0.0 <= number <= 1.0:
        raise ConfigError(field, value, "0..1")
    return number


def _axis_term(size: int, stop: float) -> Tensor:
    """``(f / stop)^2`` over one axis's centred bins (float64); ``stop == 0`` keeps f = 0 only."""
    freq = (torch.arange(size, dtype=torch.float64) - size // 2) * (2.0 / size)
    if stop == 0.0:
        return torch.where(freq == 0, torch.zeros_like(freq), torch.full_like(freq, math.inf))
    return (freq / stop) ** 2


def freq_filter(
    shape: Sequence[int],
    kind: Union[str, enum.Enum] = "butterworth",
    d_s: float = 0.25,
    d_t: float = 0.25,
    order: float = 4,
    *,
    device: Union[torch.device, str, None] = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """The FreeInit low-pass filter over a clip's 3-D spectrum, centred (``fftshift`` order).

    Args:
        shape: ``(F, H, W)``: frames and the *latent* height and width (pixels / 8 for SD).
        kind: a name in :data:`FILTERS` (``butterworth``, ``gaussian``, ``ideal``, ``box``) or a
            :class:`~lib_vidsd.config.FreeInitFilter`.
        d_s: spatial normalised stop frequency, 0..1 (the API's ``freeinit_ds``).
        d_t: temporal normalised stop frequency, 0..1 (the API's ``freeinit_dt``).
        order: Butterworth order ``n`` (4 in the paper and both references); ignored otherwise.

    Returns:
        ``(F, H, W)`` values in 0..1, 1 at the DC bin ``(F//2, H//2, W//2)`` and symmetric under
        ``k -> -k`` (so mixing keeps real signals real). The formulas and where they differ from
        sd-webui-animatediff and diffusers are in this module's docstring.

    Raises:
        ConfigError: unknown ``kind`` (naming the known ones), a stop frequency outside 0..1,
            a bad shape or order.
    """
    name = _filter_name(kind)
    ds = _stop_frequency("freeinit_ds", d_s)
    dt = _stop_frequency("freeinit_dt", d_t)
    try:
        dims = tuple(operator.index(n) for n in shape)
    except TypeError:
        dims = ()
    if len(dims) != 3 or min(dims) < 1:
        raise ConfigError("shape", shape, "(frames, height, width), three positive integers")
    if not (isinstance(order, (int, float)) and math.isfinite(order) and order > 0):
        raise ConfigError("order", order, "a positive number (4 in the paper)")
    frames, height, width = dims
    t = _axis_term(frames, dt)[:, None, None]
    h = _axis_term(height, ds)[None, :, None]
    w = _axis_term(width, ds)[None, None, :]
    lpf = FILTERS[name](t, h, w, float(order)).expand(frames, height, width)
    return lpf.to(device=device, dtype=dtype).contiguous()


def filter_for(
    params: AnimateDiffParams,
    num_frames: int,
    latent_height: int,
    latent_width: int,
    *,
    device: Union[torch.device, str, None] = None,
) -> Tensor:
    """:func:`freq_filter` for a job's ``freeinit_filter``, ``freeinit_ds`` and ``freeinit_dt``.

    ``latent_height``/``latent_width`` are the latent's (pixels / 8 for SD); returns ``(F, H, W)``.
    """
    return freq_filter(
        (num_frames, latent_height, latent_width),
        params.freeinit_filter,
        params.freeinit_ds,
        params.freeinit_dt,
        device=device,
    )


def _check_frame_dim(frame_dim: int, x: Tensor, field: str) -> None:
    if frame_dim not in (-4, -3):
        raise ConfigError("frame_dim", frame_dim, "-4 for (F, C, H, W) / (B, F, C, H, W), -3 for (B, C, F, H, W)")
    if x.dim() < -frame_dim or x.dim() > 5:
        want = "(F, C, H, W) or (B, F, C, H, W)" if frame_dim == -4 else "(B, C, F, H, W) or (C, F, H, W)"
        raise ConfigError(field, tuple(x.shape), want)


def _compute_dtype(*xs: Tensor) -> torch.dtype:
    return torch.float64 if any(x.dtype == torch.float64 for x in xs) else torch.float32


def mix_frequencies(latents: Tensor, noise: Tensor, lpf: Tensor, *, frame_dim: int = -4) -> Tensor:
    """Low frequencies of ``latents`` plus high frequencies of ``noise`` (FreeInit's noise mixing).

    ``IFFT(FFT(latents) * L + FFT(noise) * (1 - L))`` over (frames, H, W), per channel and video,
    with ``L`` the centred filter (Wu et al. 2023, noise reinitialization; sd-webui-animatediff
    ``freq_mix_3d``; diffusers ``FreeInitMixin._apply_freq_filter``). Computed in float32 (float64 if an input is).

    Args:
        latents: ``(F, C, H, W)`` or ``(B, F, C, H, W)`` with ``frame_dim=-4`` (A1111), or
            ``(B, C, F, H, W)`` with ``frame_dim=-3`` (diffusers).
        noise: same shape as ``latents``.
        lpf: ``(F, H, W)`` from :func:`freq_filter`.

    Returns:
        The mix, shape, dtype and device of ``latents``. ``lpf == 1`` gives ``latents``,
        ``lpf == 0`` gives ``noise`` (both up to FFT rounding).
    """
    _check_frame_dim(frame_dim, latents, "latents")
    if noise.shape != latents.shape:
        raise ConfigError("noise", tuple(noise.shape), f"the latents' shape {tuple(latents.shape)}")
    want = (latents.shape[frame_dim], latents.shape[-2], latents.shape[-1])
    if tuple(lpf.shape) != want:
        raise ConfigError("filter", tuple(lpf.shape), f"{want} (frames, height, width of the latents)")
    dtype = _compute_dtype(latents, noise)
    dims = (frame_dim, -2, -1)
    # shifting the filter once to FFT order is the same as shifting both spectra and back
    low = fft.ifftshift(lpf.to(device=latents.device, dtype=dtype), dim=(0, 1, 2))
    if frame_dim == -4:
        low = low[:, None]  # (F, 1, H, W) broadcasts over the channel axis
    x_freq = fft.fftn(latents.to(dtype), dim=dims)
    n_freq = fft.fftn(noise.to(device=latents.device, dtype=dtype), dim=dims)
    mixed = fft.ifftn(x_freq * low + n_freq * (1.0 - low), dim=dims).real
    return mixed.to(latents.dtype)


def _timestep(alphas_cumprod: Tensor, timestep: Optional[int]) -> int:
    count = int(alphas_cumprod.numel())
    if alphas_cumprod.dim() != 1 or count == 0:
        raise ConfigError("alphas_cumprod", tuple(alphas_cumprod.shape), "a non-empty 1-D tensor (one per timestep)")
    if timestep is None:
        return count - 1
    try:
        step = operator.index(timestep)
    except TypeError:
        step = -1
    if isinstance(timestep, bool) or not 0 <= step < count:
        raise ConfigError("timestep", timestep, f"0..{count - 1}")
    return step


def diffuse(z0: Tensor, noise: Tensor, alphas_cumprod: Tensor, timestep: Optional[int] = None) -> Tensor:
    """Forward diffusion ``q(z_t | z_0)``: ``sqrt(a_t) z0 + sqrt(1 - a_t) noise``.

    Ho et al. 2020 (DDPM) eq. 4, as sd-webui-animatediff's ``ddim_add_noise`` and diffusers'
    ``DDIMScheduler.add_noise`` compute it. ``alphas_cumprod``: ``(T,)`` cumulative products of the
    model's training schedule (``shared.sd_model.alphas_cumprod`` in A1111,
    ``scheduler.alphas_cumprod`` in diffusers); ``timestep`` defaults to ``T - 1`` (999 for SD),
    the step FreeInit diffuses to (sd-webui-animatediff: ``1000 - 1``; diffusers:
    ``num_train_timesteps - 1``). While a motion module is injected the schedule is the module's
    (``lib_vidsd.motion.noise_schedule(family)``), as A1111's swapped ``alphas_cumprod`` is then.
    Any layout; computed and returned in float32 (float64 if an input is).
    """
    t = _timestep(torch.as_tensor(alphas_cumprod), timestep)
    a_t = float(torch.as_tensor(alphas_cumprod)[t])
    if noise.shape != z0.shape:
        raise ConfigError("noise", tuple(noise.shape), f"the latents' shape {tuple(z0.shape)}")
    dtype = _compute_dtype(z0, noise)
    return math.sqrt(a_t) * z0.to(dtype) + math.sqrt(1.0 - a_t) * noise.to(device=z0.device, dtype=dtype)


def renoise(
    z0: Tensor,
    initial_noise: Tensor,
    lpf: Tensor,
    alphas_cumprod: Tensor,
    timestep: Optional[int] = None,
    *,
    fresh_noise: Optional[Tensor] = None,
    frame_dim: int = -4,
) -> Tensor:
    """The noise for the next FreeInit iteration (Wu et al. 2023, noise reinitialization).

    ``mix_frequencies(diffuse(z0, initial_noise, alphas_cumprod, timestep), high, lpf)`` with
    ``high = initial_noise`` (sd-webui-animatediff) or ``fresh_noise`` when given (the paper,
    diffusers' ``_apply_free_init``).

    Args:
        z0: the clean latent the previous iteration sampled, layout per ``frame_dim``.
        initial_noise: the first iteration's noise (unit variance), same shape.
        lpf: ``(F, H, W)`` filter.
        alphas_cumprod: ``(T,)`` training schedule; ``timestep`` defaults to ``T - 1``.
        fresh_noise: unit-variance noise for the high frequencies, same shape, or ``None``.

    Returns:
        Noise to sample from, in the dtype and on the device of ``initial_noise``.
    """
    z_t = diffuse(z0, initial_noise, alphas_cumprod, timestep)
    high = initial_noise if fresh_noise is None else fresh_noise
    mixed = mix_frequencies(z_t, high.to(z_t.device), lpf, frame_dim=frame_dim)
    return mixed.to(device=initial_noise.device, dtype=initial_noise.dtype)


def _fresh_noise(like: Tensor, generator: torch.Generator) -> Tensor:
    # drawn on the generator's device in float32, as diffusers' randn_tensor does, so a seed
    # gives the same noise whatever device the latents are on
    noise = torch.randn(like.shape, generator=generator, device=generator.device, dtype=torch.float32)
    return noise.to(like.device)


def freeinit_loop(
    sample_fn: Callable[[Tensor], Tensor],
    initial_noise: Tensor,
    iters: int,
    *,
    lpf: Tensor,
    alphas_cumprod: Tensor,
    timestep: Optional[int] = None,
    seed: Optional[int] = None,
    generator: Optional[torch.Generator] = None,
    frame_dim: int = -4,
    stop: Optional[StopToken] = None,
    progress: Optional[ProgressSink] = None,
) -> Tensor:
    """Sample ``iters`` times, re-initialising the noise between samplings; return the last ``z0``.

    Iteration 1 samples ``initial_noise`` as it is; each later one samples
    :func:`renoise` of the previous result. High frequencies come from ``initial_noise`` again
    (sd-webui-animatediff) unless ``seed`` or ``generator`` is given: then each iteration draws
    fresh unit noise of ``initial_noise``'s shape from it (the paper; with diffusers' own generator
    and ``frame_dim=-3`` this reproduces ``FreeInitMixin`` exactly).

    Args:
        sample_fn: ``noise -> z0``: one full sampling from unit-variance noise, same shape.
            A1111 txt2img: ``lambda x: sampler.sample(p, x, cond, uncond, image_conditioning=...)``;
            img2img: ``lambda x: sampler.sample_img2img(p, p.init_latent, x, cond, uncond, ...)``;
            diffusers: run the denoising loop from ``x * scheduler.init_noise_sigma``.
        initial_noise: ``(F, C, H, W)`` / ``(B, F, C, H, W)`` (``frame_dim=-4``) or
            ``(B, C, F, H, W)`` (``frame_dim=-3``); never modified.
        iters: samplings in all (the API's ``freeinit_iters``; 1 is plain sampling).
        lpf: ``(F, H, W)`` from :func:`freq_filter` / :func:`filter_for`.
        alphas_cumprod, timestep: see :func:`diffuse`.
        seed, generator: source of fresh high-frequency noise (one of them, or neither).
        stop: checked before each sampling; raises :class:`~lib_vidsd.errors.Interrupted`.
        progress: called ``(done, iters, text)`` after each sampling.
    """
    if isinstance(iters, bool) or not isinstance(iters, int) or iters < 1:
        raise ConfigError("freeinit_iters", iters, "1 or more")
    if seed is not None and generator is not None:
        raise ConfigError("seed", seed, "a seed or a generator, not both")
    if seed is not None:
        generator = torch.Generator().manual_seed(int(seed))
    _check_frame_dim(frame_dim, initial_noise, "initial_noise")
    want = (initial_noise.shape[frame_dim], initial_noise.shape[-2], initial_noise.shape[-1])
    if tuple(lpf.shape) != want:
        raise ConfigError("filter", tuple(lpf.shape), f"{want} (frames, height, width of the noise)")
    _timestep(torch.as_tensor(alphas_cumprod), timestep)  # fail before the first (long) sampling

    z0: Optional[Tensor] = None
    for it in range(iters):
        check_stop(stop, f"before FreeInit iteration {it + 1}/{iters}")
        if z0 is None:
            noise = initial_noise.clone()  # a sampler may work in place; the original is reused
        else:
            fresh = None if generator is None else _fresh_noise(initial_noise, generator)
            noise = renoise(z0, initial_noise, lpf, alphas_cumprod, timestep, fresh_noise=fresh, frame_dim=frame_dim)
        log.debug("FreeInit iteration %d/%d", it + 1, iters)
        z0 = sample_fn(noise)
        if z0.shape != initial_noise.shape:
            raise ConfigError(
                "sample_fn", tuple(z0.shape), f"a latent of the noise's shape {tuple(initial_noise.shape)}"
            )
        if progress is not None:
            progress(it + 1, iters, f"FreeInit iteration {it + 1}/{iters}")
    return z0  # type: ignore[return-value]  # iters >= 1, so it was set
