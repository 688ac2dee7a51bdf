"""FILM and RIFE through the suite: the weights folder, the registry, retiming, the CLI."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from lib_vidsd.errors import ConfigError
from lib_vidsd.interpolate import interpolate, interpolate_at, retime_positions
from lib_vidsd.interpolate.film import film_frames
from lib_vidsd.interpolate.rife import rife_frames
from lib_vidsd.interpolate.weights import DEFAULT_FILES, find_weights, load_network
from tests.rig.vfi import write_film_archive, write_rife_file
from tests.test_interpolate import _texture


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def vfi_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("VFI")
    write_rife_file(folder)
    write_film_archive(folder)
    return folder


def _clip(n=3, size=64):
    base = _texture(size, size + 8 * n, seed=1)
    return [np.ascontiguousarray(base[:, 8 * i : 8 * i + size]) for i in range(n)]


def test_find_weights_defaults_names_and_errors(vfi_dir, tmp_path):
    assert find_weights("rife", "", [vfi_dir]).name == "rife47.pth"
    assert find_weights("film", "film_net_fp16.pt", [vfi_dir]).name == "film_net_fp16.pt"
    with pytest.raises(ConfigError) as e:
        find_weights("rife", "", [tmp_path])
    assert e.value.field == "interp_model" and str(tmp_path) in str(e.value.allowed)
    assert all(name in str(e.value.allowed) for name in DEFAULT_FILES["rife"])
    for bad in ("../rife47.pth", "/etc/passwd", "sub/x.pth"):
        with pytest.raises(ConfigError, match="not a path"):
            find_weights("rife", bad, [vfi_dir])
    with pytest.raises(ConfigError, match="found: film_net_fp16.pt, rife47.pth"):
        find_weights("rife", "rife426.pth", [vfi_dir])


def test_loaded_once_per_file(vfi_dir):
    a = load_network("rife", vfi_dir / "rife47.pth")
    assert load_network("rife", vfi_dir / "rife47.pth") is a and a.version == "4.7"
    film = load_network("film", vfi_dir / "film_net_fp16.pt")
    assert next(film.parameters()).dtype == torch.float32  # the fp16 archive, as float32 on the CPU


@pytest.mark.parametrize("method", ["film", "rife"])
def test_registry_runs_the_networks(vfi_dir, method):
    path = find_weights(method, "", [vfi_dir])
    model = load_network(method, path)
    frames = _clip()
    out = interpolate(frames, 4, method, model)
    assert len(out) == 9 and all(np.array_equal(out[4 * i], f) for i, f in enumerate(frames))
    direct = (film_frames if method == "film" else rife_frames)(model, frames[0], frames[1], [0.25, 0.5, 0.75])
    assert all(np.array_equal(x, y) for x, y in zip(out[1:4], direct, strict=True))
    with pytest.raises(ConfigError, match="model"):
        interpolate(frames, 2, method)


def test_retime_keeps_the_duration(vfi_dir):
    assert retime_positions(3, 8, 24) == [k / 3 for k in range(7)] + [2.0, 2.0]
    assert len(retime_positions(10, 30, 24)) == 8
    model = load_network("rife", vfi_dir / "rife47.pth")
    frames = _clip()
    out = interpolate_at(frames, [0, 0.5, 1.25, 2], "rife", model)
    assert np.array_equal(out[0], frames[0]) and np.array_equal(out[3], frames[2])
    (half,) = rife_frames(model, frames[0], frames[1], [0.5])
    assert np.array_equal(out[1], half)
    with pytest.raises(ConfigError, match="positions"):
        interpolate_at(frames, [2.5], "blend")


def test_cli_interpolates_with_rife_and_names_the_missing_folder(vfi_dir, tmp_path):
    from lib_vidsd.video import probe, write_video

    src = write_video(_clip(4), tmp_path / "in.mp4", fps=4)
    out = tmp_path / "out.mp4"
    cmd = [sys.executable, "-m", "lib_vidsd", "interpolate", str(src), "-o", str(out), "--method", "rife"]
    done = subprocess.run([*cmd, "-x", "3", "--vfi-dir", str(vfi_dir)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    info = probe(out)
    assert info.frame_count == 10 and info.fps == pytest.approx(12)
    empty = tmp_path / "empty"
    empty.mkdir()
    done = subprocess.run([*cmd, "--vfi-dir", str(empty)], capture_output=True, text=True)
    assert done.returncode != 0 and str(empty) in done.stderr and "rife47.pth" in done.stderr


needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@needs_cuda
@pytest.mark.parametrize("method", ["film", "rife"])
def test_cuda_float32_matches_the_fixture_and_float16_stays_close(method, tmp_path):
    """The tiny fixture case t = 0.5 on 64x64 on the GPU: float32 (TF32 off) within the fixtures'
    1e-4, float16 (Deforum runs FILM in half precision) within 1e-2 of it."""
    from safetensors.torch import load_file

    from tests.rig.fixtures import require_fixture

    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    if method == "film":
        io = load_file(str(require_fixture("interpolation/tiny/film_tiny.io.safetensors")))
        x0, x1, want = io["x0_64"], io["x1_64"], io["out_64_dt0p5"]
        path = write_film_archive(tmp_path, half=False)
    else:
        io = load_file(str(require_fixture("interpolation/tiny/rife_tiny.io.safetensors")))
        x0, x1, want = io["x0_64"], io["x1_64"], io["v4_7.out_64_t0p5"]
        path = write_rife_file(tmp_path)
    for half, tol in ((False, 1e-4), (True, 1e-2)):
        model = load_network(method, path, device="cuda", half=half)
        dtype = torch.float16 if half else torch.float32
        a, b = x0.to("cuda", dtype), x1.to("cuda", dtype)
        with torch.inference_mode():
            got = model(a, b, a.new_full((1, 1), 0.5)) if method == "film" else model(a, b, 0.5)
        err = (got.float().cpu() - want).abs().max().item()
        assert err <= tol, (method, half, err)


def test_tiles_bound_the_frame_and_blend_seamlessly(vfi_dir):
    from lib_vidsd.interpolate.core import run_tiled

    a = _texture(150, 200, seed=3)
    b = np.roll(a, 2, axis=1)
    seen = []

    def spy(x, y, ts):
        seen.append(x.shape)
        return [np.round(x * (1 - t) + y * t).astype(np.uint8) for t in ts]

    out = run_tiled(spy, a, b, [0.5], 96, 32)
    assert max(s[0] for s in seen) <= 96 and max(s[1] for s in seen) <= 96 and len(seen) == 2 * 3
    whole = spy(a, b, [0.5])[0]
    assert np.abs(out[0].astype(int) - whole).max() <= 1  # a per-pixel method tiles exactly
    model = load_network("rife", vfi_dir / "rife47.pth")
    frames = [a, b]
    tiled = interpolate(frames, 2, "rife", model, tile=128, tile_overlap=32)
    (corner,) = rife_frames(model, a[:128, :128].copy(), b[:128, :128].copy(), [0.5])
    assert tiled[1].shape == a.shape  # tiles start at rows 0, 22 and columns 0, 72: the first alone covers 22x72
    assert np.abs(tiled[1][:22, :72].astype(int) - corner[:22, :72]).max() <= 1
    with pytest.raises(ConfigError, match="tile_overlap"):
        interpolate(frames, 2, "blend", tile=128, tile_overlap=100)
