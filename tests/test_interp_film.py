"""FILM: the tiny reference fixture, both weight generations, TorchScript archives read without running
them, the caller schedule, frame helpers and errors."""

from __future__ import annotations

import copy
import io
import json
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from lib_vidsd.errors import ConfigError, IncompatibleModelError
from lib_vidsd.interpolate.film import (
    Conv,
    FILMNet,
    code_ignores_dt,
    film_config_from_state_dict,
    film_frames,
    film_names_version,
    film_run,
    film_schedule,
    film_tensors,
    load_film,
    to_current_names,
)
from lib_vidsd.interpolate.torchscript import read_torchscript
from tests.rig.fixtures import require_fixture

pytestmark = [
    pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel:UserWarning"),
]
TOL = {"atol": 1e-4, "rtol": 0}  # the fixture README's tolerance: ~40x float32 noise
TINY = "interpolation/tiny/film_tiny"


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """The tiny model gains nothing from threads, and OpenMP threads sharing a busy core spin: with
    another process on one of two cores a 64x64 forward went from 12 ms to 2.7 s."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _json(relative: str) -> dict:
    return json.loads(require_fixture(relative).read_text())


@pytest.fixture(scope="module")
def tiny_meta() -> dict:
    return _json(f"{TINY}.json")


@pytest.fixture(scope="module")
def io_tensors() -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(require_fixture(f"{TINY}.io.safetensors")))


@pytest.fixture(scope="module")
def weights() -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(require_fixture(f"{TINY}.weights.safetensors")))


@pytest.fixture(scope="module")
def tiny() -> FILMNet:
    return load_film(require_fixture(f"{TINY}.weights.safetensors"))


def _dt(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32)[:, None]


def _same_state(a: nn.Module, b: nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for k in sa:
        assert sa[k].dtype == sb[k].dtype and torch.equal(sa[k], sb[k]), k


# --- the tiny reference fixture ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("output", "pair", "dt"),
    [
        ("out_64_dt0p5", "64", 0.5),
        ("out_64_dt0p25", "64", 0.25),
        ("out_96x128_dt0p5", "96x128", 0.5),
        ("out_96x128_dt0p25", "96x128", 0.25),
    ],
)
def test_tiny_cases_unpadded(tiny, io_tensors, output, pair, dt):
    with torch.no_grad():
        out = tiny(io_tensors[f"x0_{pair}"], io_tensors[f"x1_{pair}"], _dt(dt))
    torch.testing.assert_close(out, io_tensors[output], **TOL)


def test_tiny_batch_of_two_with_own_dt(tiny, io_tensors):
    x0 = torch.cat([io_tensors["x0_64"], io_tensors["x0_64_b"]])
    x1 = torch.cat([io_tensors["x1_64"], io_tensors["x1_64_b"]])
    with torch.no_grad():
        out = tiny(x0, x1, io_tensors["dt_batch"])
    torch.testing.assert_close(out, io_tensors["out_64_batch"], **TOL)


@pytest.mark.parametrize(("pad", "suffix"), [("64", "_pad64"), (None, "")])
@pytest.mark.parametrize("dt", [0.5, 0.25])
def test_tiny_96x128_through_film_tensors(tiny, io_tensors, pad, suffix, dt):
    """Deforum pads 96x128 to 128x128 (16 rows each side) and crops; ComfyUI feeds it as is."""
    (out,) = film_tensors(tiny, io_tensors["x0_96x128"], io_tensors["x1_96x128"], [dt], pad=pad)
    expected = io_tensors[f"out_96x128{suffix}_dt{str(dt).replace('.', 'p')}"]
    torch.testing.assert_close(out, expected.clamp(0, 1), **TOL)  # film_tensors clamps, as every caller does


def test_tiny_debug_tensors(tiny, io_tensors):
    with torch.no_grad():
        stages = tiny.stages(io_tensors["x0_64"], io_tensors["x1_64"], _dt(0.5))
    prefix = "dbg_64_dt0p5."
    names = {k[len(prefix) :].rsplit(".", 1)[0] for k in io_tensors if k.startswith(prefix)}
    assert names == set(stages) - {"image"}
    for name in names:
        expected = [io_tensors[f"{prefix}{name}.{i}"] for i in range(len(stages[name]))]
        assert f"{prefix}{name}.{len(expected)}" not in io_tensors
        for got, want in zip(stages[name], expected, strict=True):
            torch.testing.assert_close(got, want, **TOL)


# --- names, generations, configuration -----------------------------------------------------------


def test_config_read_from_shapes(weights, tiny_meta):
    constructor = tiny_meta["constructor"]  # filters 6, flow_filters (4, 8, 12, 24): nothing told
    expected = {k: tuple(v) if isinstance(v, list) else v for k, v in constructor.items()}
    assert film_config_from_state_dict(weights) == expected


@pytest.mark.parametrize("column", ["key", "key_v1_0_0"])
def test_manifest_names_and_shapes(column):
    manifest = _json("interpolation/manifests/film_net.json")
    entries = manifest["state_dict"]
    state = {e[column]: torch.empty(e["shape"], device="meta") for e in entries}
    assert film_names_version(state) == ("1.0.2" if column == "key" else "1.0.0")
    config = film_config_from_state_dict(state)
    assert config == {k: tuple(v) if isinstance(v, list) else v for k, v in manifest["hyperparameters"].items()}
    with torch.device("meta"):
        skeleton = FILMNet()  # the published defaults
    assert [(k, list(v.shape)) for k, v in skeleton.state_dict().items()] == [(e["key"], e["shape"]) for e in entries]
    assert list(to_current_names(state)) == [e["key"] for e in entries]


def test_v1_0_0_names_load_to_the_same_module(weights, tiny_meta, tiny):
    rename = tiny_meta["weights"]["rename_to_v1_0_0"]
    legacy = {rename.get(k, k): v for k, v in weights.items()}
    assert len(set(legacy) - set(weights)) == 16
    assert film_names_version(weights) == "1.0.2" and film_names_version(legacy) == "1.0.0"
    assert to_current_names(legacy) == weights
    model = load_film(legacy)
    assert not model.ignores_dt  # plain weights carry no code: dt is honoured
    _same_state(model, tiny)


def test_ignoring_dt_gives_the_midpoint(weights, io_tensors):
    legacy = FILMNet(**film_config_from_state_dict(weights), ignores_dt=True).eval()
    legacy.load_state_dict(weights)
    with torch.no_grad():
        out = legacy(io_tensors["x0_64"], io_tensors["x1_64"], _dt(0.25))
    torch.testing.assert_close(out, io_tensors["out_64_dt0p5"], **TOL)
    assert (out - io_tensors["out_64_dt0p25"]).abs().max() > 0.1


def test_code_ignores_dt_reads_the_full_like_call():
    assert code_ignores_dt({"code/__torch__/interpolator.py": "  mid_time = torch.full_like(batch_dt, 0.5)\n"})
    assert code_ignores_dt(["x = torch.full_like( dt ,0.5)"])
    assert not code_ignores_dt({"code/__torch__/interpolator.py": "_0 = torch.mul(flow, batch_dt)"})


# --- TorchScript archives ------------------------------------------------------------------------


TINY_CONFIG = {"filters": 6, "flow_filters": (4, 8, 12, 24)}  # the fixture's widths


def _seeded_tiny(ignores_dt: bool = False) -> FILMNet:
    torch.manual_seed(20240501)
    return FILMNet(**TINY_CONFIG, ignores_dt=ignores_dt).eval().requires_grad_(False)


def _legacy_layout(model: FILMNet) -> FILMNet:
    """A copy whose activation-free convs are bare ``nn.Conv2d(padding="same")``, as in the v1.0.0 code."""
    legacy = copy.deepcopy(model)
    for name, module in list(legacy.named_modules()):
        if isinstance(module, Conv) and not module.activate:
            parent_path, index = name.rsplit(".", 1)
            conv = module[0]
            bare = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, padding="same")
            bare.load_state_dict(conv.state_dict())
            legacy.get_submodule(parent_path)[int(index)] = bare
    return legacy


@pytest.fixture(scope="module")
def archives(tmp_path_factory) -> dict[str, Path]:
    """Scripted and saved seeded tiny models: v1.0.2 in fp32 and fp16, and a v1.0.0-style export (names
    without the ``.0`` of activation-free convs, ``dt`` ignored in the code)."""
    folder = tmp_path_factory.mktemp("film_archives")
    modules = {
        "tiny_v102": _seeded_tiny(),
        "tiny_v102_fp16": _seeded_tiny().half(),
        "tiny_v100": _legacy_layout(_seeded_tiny(ignores_dt=True)),
    }
    paths = {}
    for name, module in modules.items():
        paths[name] = folder / f"{name}.pt"
        torch.jit.script(module).save(str(paths[name]))
    return paths


@pytest.mark.parametrize("name", ["tiny_v102", "tiny_v102_fp16", "tiny_v100"])
def test_reader_equals_jit_load(archives, name):
    archive = read_torchscript(archives[name])
    reference = torch.jit.load(str(archives[name]), map_location="cpu").state_dict()
    assert archive.folder == name
    assert list(archive.tensors) == list(reference)
    for k, v in reference.items():
        assert archive.tensors[k].dtype == v.dtype and torch.equal(archive.tensors[k], v), k
    assert archive.code and all(k.startswith("code/") and k.endswith(".py") for k in archive.code)
    assert code_ignores_dt(archive.code) == (name == "tiny_v100")
    assert film_names_version(archive.tensors) == ("1.0.0" if name == "tiny_v100" else "1.0.2")


def test_reader_ignores_the_storage_device(archives, tmp_path):
    """Exports made on a GPU record storages as cuda:0; the bytes are the same."""
    source = archives["tiny_v102"]
    moved = tmp_path / "tiny_v102.pt"
    with zipfile.ZipFile(source) as z, zipfile.ZipFile(moved, "w") as out:
        for member in z.namelist():
            data = z.read(member)
            if member.endswith("/data.pkl"):
                assert b"X\x03\x00\x00\x00cpu" in data
                data = data.replace(b"X\x03\x00\x00\x00cpu", b"X\x06\x00\x00\x00cuda:0")
            out.writestr(member, data)
    expected = read_torchscript(source).tensors
    got = read_torchscript(moved).tensors
    assert list(got) == list(expected) and all(torch.equal(got[k], v) for k, v in expected.items())


def test_load_film_from_archives(archives):
    eager = _seeded_tiny()
    torch.manual_seed(1)
    x0, x1 = torch.rand(2, 1, 3, 64, 64)
    with torch.no_grad():
        at_half, at_quarter = eager(x0, x1, _dt(0.5)), eager(x0, x1, _dt(0.25))

    current = load_film(archives["tiny_v102"])
    assert not current.ignores_dt
    _same_state(current, eager)
    with torch.no_grad():
        torch.testing.assert_close(current(x0, x1, _dt(0.25)), at_quarter, atol=0, rtol=0)

    legacy = load_film(archives["tiny_v100"])  # v1.0.0 names and dt-ignoring code, as Deforum's file
    assert legacy.ignores_dt
    _same_state(legacy, eager)
    with torch.no_grad():
        torch.testing.assert_close(legacy(x0, x1, _dt(0.25)), at_half, atol=0, rtol=0)

    half = load_film(archives["tiny_v102_fp16"])
    for k, v in half.state_dict().items():
        assert v.dtype == torch.float32 and torch.equal(v, eager.state_dict()[k].half().float()), k


def test_pickled_state_dict_file(tmp_path, weights, tiny):
    path = tmp_path / "film.pth"
    torch.save({"state_dict": weights}, path)
    _same_state(load_film(path), tiny)


def _zip_archive(path: Path, data_pkl: bytes) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("evil/data.pkl", data_pkl)
        z.writestr("evil/code/__torch__.py", "class M(Module):\n  pass\n")
        z.writestr("evil/version", "3\n")
    return path


class _EvalOnLoad:
    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return (eval, (self.command,))


def test_hostile_archives_are_refused_unexecuted(tmp_path):
    marker = tmp_path / "pwned"
    via_global = b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR."
    via_stack_global = pickle.dumps(_EvalOnLoad(f"open({str(marker)!r}, 'w')"), protocol=4)
    for name, data, refused in [("os.pt", via_global, "os.system"), ("eval.pt", via_stack_global, "builtins.eval")]:
        path = _zip_archive(tmp_path / name, data)
        with pytest.raises(IncompatibleModelError, match=refused):
            read_torchscript(path)
        with pytest.raises(IncompatibleModelError, match=refused):
            load_film(path)
    assert not marker.exists()


def test_reader_refuses_non_archives(tmp_path):
    plain = tmp_path / "plain.pt"
    plain.write_bytes(b"not a zip")
    with pytest.raises(IncompatibleModelError, match="not a zip"):
        read_torchscript(plain)
    buffer = io.BytesIO()
    pickle.dump({"a": 1}, buffer, protocol=2)
    with pytest.raises(IncompatibleModelError, match="not a TorchScript module"):
        read_torchscript(_zip_archive(tmp_path / "dict.pt", buffer.getvalue()))


# --- loading errors ------------------------------------------------------------------------------


def test_missing_key_and_wrong_shape_are_named(weights):
    missing = {k: v for k, v in weights.items() if k != "fuse.convs.1.2.0.bias"}
    with pytest.raises(IncompatibleModelError, match=r"1 missing: fuse\.convs\.1\.2\.0\.bias"):
        load_film(missing)
    misshapen = {**weights, "fuse.output_conv.weight": torch.zeros(3, 5, 1, 1)}
    with pytest.raises(IncompatibleModelError, match=r"wrong shape: fuse\.output_conv\.weight: file \[3, 5, 1, 1\]"):
        load_film(misshapen)
    with pytest.raises(IncompatibleModelError, match="1 unexpected: extra"):
        load_film({**weights, "extra": torch.zeros(1)})
    with pytest.raises(IncompatibleModelError, match="not a FILM"):
        load_film({"conv.weight": torch.zeros(1, 1, 1, 1)})
    with pytest.raises(ConfigError, match="existing FILM model file"):
        load_film(os.path.join("no", "such", "film_net.pt"))


# --- schedule and frames -------------------------------------------------------------------------


def test_schedule_matches_the_callers():
    tables = _json("interpolation/schedules.json")["film_closest_to_midpoint"]["schedules"]
    assert set(tables) == {str(n) for n in range(1, 17)}
    for n, table in tables.items():
        calls = film_schedule(int(n))
        expected = table["calls_in_order"]
        assert [c[:3] for c in calls] == [(e["left"], e["right"], e["target"]) for e in expected], n
        assert [round(c[3], 7) for c in calls] == [e["dt"] for e in expected], n  # the table keeps 7 decimals


class _Recorder(nn.Module):
    """Stand-in model: records (mean x0, mean x1, dt) per call and returns the linear blend."""

    def __init__(self):
        super().__init__()
        self.calls: list[tuple[float, float, list[float]]] = []

    def forward(self, x0, x1, dt):
        self.calls.append((round(x0.mean().item(), 4), round(x1.mean().item(), 4), dt.flatten().tolist()))
        return x0 + (x1 - x0) * dt[:, :, None, None]


def _grey(value: int, size: int = 64) -> np.ndarray:
    return np.full((size, size, 3), value, np.uint8)


def test_uniform_times_bisect_between_available_frames():
    model = _Recorder()
    out = film_frames(model, _grey(0), _grey(255), [0.25, 0.5, 0.75])
    assert model.calls == [(0.0, 1.0, [0.5]), (0.0, 0.5, [0.5]), (0.5, 1.0, [0.5])]
    assert [int(f[0, 0, 0]) for f in out] == [64, 128, 191]  # 63.75, 127.5, 191.25 rounded


def test_uniform_thirds_use_the_callers_dt():
    model = _Recorder()
    out = film_frames(model, _grey(0), _grey(255), [1 / 3, 2 / 3])
    (first, second) = model.calls
    assert first[:2] == (0.0, 1.0) and first[2] == pytest.approx([2 / 3], abs=1e-6)
    assert second[:2] == (0.0, round(170 / 255, 4)) and second[2] == pytest.approx([0.5], abs=1e-6)
    assert [int(f[0, 0, 0]) for f in out] == [85, 170]


def test_explicit_times_are_direct_calls_in_batches():
    model = _Recorder()
    out = film_frames(model, _grey(0), _grey(255), [0.1, 0.3, 0.7], batch_size=2)
    assert [c[:2] for c in model.calls] == [(0.0, 1.0), (0.0, 1.0)]
    assert [c[2] for c in model.calls] == [pytest.approx([0.1, 0.3]), pytest.approx([0.7])]
    assert [int(f[0, 0, 0]) for f in out] == [26, 76, 178]


def test_small_frames_need_padding():
    tiny = _seeded_tiny()
    a, b = _grey(10, 32), _grey(200, 32)
    with pytest.raises(ConfigError, match="pad"):
        film_frames(tiny, a, b, [0.5], pad=None)
    out = film_run(a, b, [0.5], model=tiny)  # padded to 64x64 and cropped back
    assert len(out) == 1 and out[0].shape == (32, 32, 3) and out[0].dtype == np.uint8


def test_film_run_matches_the_tensor_path(tiny, io_tensors):
    frames = [(io_tensors[f"x{i}_64"][0].permute(1, 2, 0) * 255).round().to(torch.uint8).numpy() for i in (0, 1)]
    out = film_run(frames[0], frames[1], [0.25, 0.5, 0.75], model=tiny, pad=None)
    x0, x1 = (torch.from_numpy(f).permute(2, 0, 1)[None].float() / 255 for f in frames)
    with torch.no_grad():
        expected = film_tensors(tiny, x0, x1, [0.25, 0.5, 0.75], pad=None)
    for got, want in zip(out, expected, strict=True):
        assert np.array_equal(got, (want[0].permute(1, 2, 0) * 255).round().to(torch.uint8).numpy())


def test_frame_argument_errors():
    with pytest.raises(ConfigError, match="model"):
        film_run(_grey(0), _grey(255), [0.5], model=_Recorder())
    with pytest.raises(ConfigError, match="pad"):
        film_frames(_Recorder(), _grey(0), _grey(255), [0.5], pad="128")
    with pytest.raises(ConfigError, match="ts"):
        film_frames(_Recorder(), _grey(0), _grey(255), [1.5])
    with pytest.raises(ConfigError, match="same size"):
        film_frames(_Recorder(), _grey(0), _grey(255, 128), [0.5])
