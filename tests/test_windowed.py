"""Windowed denoising: fusion by weighted average, cond/uncond layout, per-row slicing, the frame
count hook, interruption and bounded memory."""

from __future__ import annotations

import weakref

import pytest
import torch

from lib_vidsd.errors import ConfigError, IncompatibleModelError, Interrupted
from lib_vidsd.motion.windowed import FUSERS, denoise_windowed, fuse_weights
from lib_vidsd.progress import StopFlag
from lib_vidsd.schedule.context import context_windows

SCHEDULE = {"num_frames": 20, "context_size": 8, "stride": 2, "overlap": 2, "closed_loop": "A", "step": 3}


def _x(halves, frames=20, dtype=torch.float64, seed=0):
    return torch.randn(halves * frames, 3, 2, 2, generator=torch.Generator().manual_seed(seed), dtype=dtype)


@pytest.mark.parametrize("fuse", sorted(FUSERS))
@pytest.mark.parametrize("halves", [1, 2])
@pytest.mark.parametrize("together", [True, False])
def test_identity_model_gives_x(fuse, halves, together):
    x = _x(halves)
    out = denoise_windowed(lambda v: v.clone(), x, fuse=fuse, cond_uncond_together=together, **SCHEDULE)
    torch.testing.assert_close(out, x)


def _hand_fused(x, fuse, halves, windows):
    """The window-mean model fused by hand: row r = weighted mean over windows (and occurrences in
    a window) of x[r] + mean(window)."""
    frames = x.shape[0] // halves
    acc, total = torch.zeros_like(x), torch.zeros(frames, dtype=x.dtype)
    for window in windows:
        rows = [h * frames + f for h in range(halves) for f in window]
        mean = x[rows].mean()
        weights = fuse_weights(fuse, len(window)).to(x.dtype)
        for pos, f in enumerate(window):
            total[f] += weights[pos]
            for h in range(halves):
                acc[h * frames + f] += weights[pos] * (x[h * frames + f] + mean)
    return acc / total.repeat(halves).view(-1, 1, 1, 1)


@pytest.mark.parametrize("fuse", sorted(FUSERS))
def test_window_dependent_model_matches_hand_average(fuse):
    x = _x(2)
    out = denoise_windowed(lambda v: v + v.mean(), x, fuse=fuse, **SCHEDULE)
    torch.testing.assert_close(out, _hand_fused(x, fuse, 2, context_windows(3, 20, 8, 2, 2, "A")))


@pytest.mark.parametrize("halves", [1, 2])
def test_frame_twice_in_a_window_counts_twice(halves):
    windows = context_windows(0, 12, 8, stride=2, overlap=2)
    assert any(len(set(w)) < len(w) for w in windows)  # [0, 2, 4, 6, 8, 10, 0, 2]
    x = _x(halves, frames=12)
    out = denoise_windowed(lambda v: v + v.mean(), x, num_frames=12, context_size=8, stride=2, overlap=2)
    torch.testing.assert_close(out, _hand_fused(x, "flat", halves, windows))


def test_fuse_weights():
    assert fuse_weights("flat", 3).tolist() == [1, 1, 1]
    assert fuse_weights("pyramid", 5).tolist() == [1, 2, 3, 2, 1]
    assert fuse_weights("pyramid", 4).tolist() == [1, 2, 2, 1]
    with pytest.raises(ConfigError) as info:
        fuse_weights("gauss", 4)
    assert info.value.field == "fuse" and "flat, pyramid" in str(info.value)


def test_together_and_separate_agree_for_a_rowwise_model():
    x = _x(2)
    t = torch.arange(40, dtype=torch.float64)

    def model(v, t):
        return v * 2 + t.view(-1, 1, 1, 1)

    a = denoise_windowed(model, x, per_row={"t": t}, cond_uncond_together=True, fuse="pyramid", **SCHEDULE)
    b = denoise_windowed(model, x, per_row={"t": t}, cond_uncond_together=False, fuse="pyramid", **SCHEDULE)
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(a, x * 2 + t.view(-1, 1, 1, 1))


def test_per_row_sliced_like_x_and_halves_layout():
    frames = 20
    x = torch.arange(2 * frames, dtype=torch.float32).view(-1, 1, 1, 1).expand(-1, 2, 1, 1).contiguous()
    context = torch.arange(2 * frames, dtype=torch.float32).view(-1, 1).repeat(1, 5)
    calls = []

    def model(v, context):
        rows = v[:, 0, 0, 0]
        assert torch.equal(context[:, 0], rows)
        n = len(rows) // 2
        assert torch.equal(rows[n:], rows[:n] + frames)  # cond half first, then the same frames uncond
        calls.append(n)
        return v

    denoise_windowed(model, x, per_row={"context": context}, **SCHEDULE)
    windows = context_windows(3, frames, 8, 2, 2, "A")
    assert calls == [len(w) for w in windows]


@pytest.mark.parametrize("together", [True, False])
def test_set_frames_told_each_window_length(together):
    told, windows = [], context_windows(3, 20, 8, 2, 2, "A")
    denoise_windowed(lambda v: v, _x(2), set_frames=told.append, cond_uncond_together=together, **SCHEDULE)
    assert told == [len(w) for w in windows]


def test_fewer_frames_than_context():
    x, told, shapes = _x(2, frames=5), [], []

    def model(v):
        shapes.append(tuple(v.shape))
        return v + 1

    out = denoise_windowed(model, x, num_frames=5, context_size=8, set_frames=told.append)
    assert told == [5] and shapes == [(10, 3, 2, 2)]
    torch.testing.assert_close(out, x + 1)


def test_stop_between_windows():
    flag, calls = StopFlag(), []

    def model(v):
        calls.append(1)
        flag.stop()
        return v

    with pytest.raises(Interrupted):
        denoise_windowed(model, _x(2), stop=flag, **SCHEDULE)
    assert len(calls) == 1


def test_outputs_released_window_by_window():
    """Memory does not grow with the windows: no earlier output is alive when the model runs."""
    alive = []

    def model(v):  # CPython frees by reference count: no gc.collect() needed (and it is slow)
        assert all(ref() is None for ref in alive)
        out = v * 1.5
        alive.append(weakref.ref(out))
        return out

    for together in (True, False):
        alive.clear()
        denoise_windowed(model, _x(2), cond_uncond_together=together, **SCHEDULE)
        assert len(alive) > 4


def test_dtype_kept():
    x = _x(2, dtype=torch.float16)
    out = denoise_windowed(lambda v: v, x, **SCHEDULE)
    assert out.dtype == torch.float16
    torch.testing.assert_close(out, x)


def test_errors():
    x = _x(2)
    with pytest.raises(ConfigError) as info:
        denoise_windowed(lambda v: v, x[:-1], **SCHEDULE)
    assert info.value.field == "x"
    with pytest.raises(ConfigError) as info:
        denoise_windowed(lambda v, t: v, x, per_row={"t": torch.zeros(20)}, **SCHEDULE)
    assert info.value.field == "per_row['t']"
    with pytest.raises(ConfigError) as info:
        denoise_windowed(lambda v: v, x, fuse="gauss", **SCHEDULE)
    assert info.value.field == "fuse"
    with pytest.raises(IncompatibleModelError):
        denoise_windowed(lambda v: v[:1], x, **SCHEDULE)
