"""Model-free frame interpolation: counts, endpoints, blend maths, errors, scene cuts, flow quality."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from lib_vidsd.errors import ConfigError, Interrupted
from lib_vidsd.interpolate import METHODS, interpolate
from lib_vidsd.progress import StopFlag

MODEL_FREE = sorted(name for name, m in METHODS.items() if not m.needs_model)


def _frames(n: int, h: int = 16, w: int = 20, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(n)]


def _texture(h: int, w: int, seed: int = 0) -> np.ndarray:
    """Seeded noise smoothed by a separable box blur (3 passes ~ Gaussian): ``uint8 (h, w, 3)``."""
    img = np.random.default_rng(seed).random((h, w, 3)).astype(np.float32)
    kernel = np.ones(5, np.float32) / 5
    for _ in range(3):
        img = np.apply_along_axis(np.convolve, 0, img, kernel, mode="same")
        img = np.apply_along_axis(np.convolve, 1, img, kernel, mode="same")
    img = (img - img.min()) / (img.max() - img.min())
    return np.round(img * 255).astype(np.uint8)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * np.log10(255.0**2 / max(mse, 1e-12))


@pytest.mark.parametrize("method", MODEL_FREE)
@pytest.mark.parametrize("factor", [1, 2, 4])
def test_counts_and_endpoints(method, factor):
    frames = _frames(4)
    out = interpolate(frames, factor, method)
    assert len(out) == (len(frames) - 1) * factor + 1
    for i, f in enumerate(frames):
        assert np.array_equal(out[i * factor], f)
    assert all(o.dtype == np.uint8 and o.shape == (16, 20, 3) for o in out)


@pytest.mark.parametrize("factor", [1, 2, 4])
def test_loop_fills_last_gap(factor):
    frames = _frames(3)
    out = interpolate(frames, factor, "blend", loop=True)
    assert len(out) == len(frames) * factor
    for i, f in enumerate(frames):
        assert np.array_equal(out[i * factor], f)
    if factor > 1:  # the gap last -> first: its midpoint mixes frame 2 and frame 0
        mid = out[2 * factor + factor // 2]
        expect = np.rint((frames[2].astype(np.float32) + frames[0]) / 2).astype(np.uint8)
        assert np.array_equal(mid, expect)


def test_factor_one_returns_frames_unchanged():
    frames = _frames(3)
    out = interpolate(frames, 1, "flow")
    assert len(out) == 3 and all(o is f for o, f in zip(out, frames, strict=True))


def test_blend_midpoint_hand_case():
    a = np.zeros((2, 2, 3), np.uint8)
    b = np.full((2, 2, 3), 100, np.uint8)
    b[0, 0] = 255
    out = interpolate([a, b], 4, "blend")
    assert out[2][1, 1, 0] == 50 and out[2][0, 0, 0] == 128  # 127.5 rounds to even: 128
    assert out[1][1, 1, 0] == 25 and out[3][1, 1, 0] == 75
    assert out[1][0, 0, 0] == 64 and out[3][0, 0, 0] == 191  # 63.75, 191.25


def test_pil_images_accepted():
    frames = [Image.fromarray(f) for f in _frames(2)]
    out = interpolate(frames, 2)
    assert len(out) == 3 and isinstance(out[1], np.ndarray)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"method": "rife-nope"}, "method"),
        ({"factor": 0}, "factor"),
        ({"factor": 65}, "factor"),
        ({"factor": 2.0}, "factor"),
        ({"factor": True}, "factor"),
        ({"scene_threshold": -1}, "scene_threshold"),
        ({"method": "blend", "flow_algorithm": "dis"}, "flow_algorithm"),
        ({"method": "flow", "flow_algorithm": "lucas"}, "flow_algorithm"),
    ],
)
def test_errors_name_the_field(kwargs, field):
    args = {"frames": _frames(2), "factor": 2, **kwargs}
    with pytest.raises(ConfigError) as info:
        interpolate(**args)
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: got")


def test_unknown_method_lists_known_ones():
    with pytest.raises(ConfigError) as info:
        interpolate(_frames(2), 2, "nope")
    assert "blend" in str(info.value) and "flow" in str(info.value)


def test_frame_errors():
    with pytest.raises(ConfigError, match="frames") as info:
        interpolate(_frames(1, 16, 20) + _frames(1, 16, 22), 2)
    assert info.value.field == "frames"
    with pytest.raises(ConfigError) as info:
        interpolate([np.zeros((4, 4), np.uint8)] * 2, 2)
    assert info.value.field == "frames"
    with pytest.raises(ConfigError) as info:
        interpolate([np.zeros((4, 4, 3), np.float32)] * 2, 2)
    assert info.value.field == "frames"
    with pytest.raises(ConfigError):
        interpolate([], 2)


@pytest.mark.parametrize("method", MODEL_FREE)
def test_scene_cut_repeats_first_frame(method):
    a = np.full((16, 20, 3), 10, np.uint8)
    b = np.full((16, 20, 3), 12, np.uint8)  # small change: interpolated
    c = np.full((16, 20, 3), 200, np.uint8)  # cut
    out = interpolate([a, b, c], 4, method, scene_threshold=30)
    assert len(out) == 9
    assert all(np.array_equal(o, b) for o in out[4:8])
    assert np.array_equal(out[8], c)
    assert np.array_equal(out[2], np.full_like(a, 11))


def test_progress_and_stop():
    calls = []
    interpolate(_frames(4), 2, progress=lambda d, t, text="": calls.append((d, t)))
    assert calls == [(1, 3), (2, 3), (3, 3)]
    flag = StopFlag()
    flag.stop()
    with pytest.raises(Interrupted):
        interpolate(_frames(4), 2, stop=flag)


def _pan_clip(n: int, dx: int, dy: int, h: int = 96, w: int = 128) -> list[np.ndarray]:
    tex = _texture(h + abs(dy) * n + 8, w + abs(dx) * n + 8, seed=3)
    x0 = 4 if dx >= 0 else 4 + abs(dx) * n
    y0 = 4 if dy >= 0 else 4 + abs(dy) * n
    return [tex[y0 + i * dy : y0 + i * dy + h, x0 + i * dx : x0 + i * dx + w].copy() for i in range(n)]


def _drop_and_restore(truth: list[np.ndarray], method: str, **options) -> float:
    kept = truth[::2]
    out = interpolate(kept, 2, method, **options)
    assert len(out) == len(truth)
    return float(np.mean([_psnr(out[i], truth[i]) for i in range(1, len(truth), 2)]))


@pytest.mark.parametrize("flow_algorithm", ["dis", "farneback"])
def test_flow_beats_blend_on_a_pan(flow_algorithm):
    truth = _pan_clip(9, dx=3, dy=-2)  # 3 px right, 2 px up per frame; 6 and 4 px per kept gap
    psnr_blend = _drop_and_restore(truth, "blend")
    psnr_flow = _drop_and_restore(truth, "flow", flow_algorithm=flow_algorithm)
    print(f"pan PSNR: blend {psnr_blend:.2f} dB, flow/{flow_algorithm} {psnr_flow:.2f} dB")
    assert psnr_flow >= psnr_blend + 3.0
