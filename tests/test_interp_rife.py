"""RIFE IFNet 4.x: the tiny reference fixtures, version detection on the manifests, loading, frames."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from lib_vidsd.errors import ConfigError, IncompatibleModelError
from lib_vidsd.interpolate.rife import (
    RIFE_VERSIONS,
    IFNet,
    canonical_version,
    default_scale_list,
    detect_rife_version,
    load_rife,
    rife_frames,
    rife_run,
    rife_widths_from_state_dict,
)
from tests.rig.fixtures import require_fixture

ROOT = "interpolation"
ATOL = 1e-4  # the fixture README's tolerance (observed run-to-run spread: 3e-6)
TINY_VERSIONS = {"v4_7": "4.7", "v4_6": "4.6", "v4_26": "4.26"}
CASES = [
    "v4_7.out_64_t0p5",
    "v4_7.out_64_t0p25",
    "v4_7.out_96x128_t0p5",
    "v4_7.out_96x128_t0p25",
    "v4_7.out_64_t0p5_scale0p5",
    "v4_7.out_64_batch",
    "v4_6.out_64_t0p5",
    "v4_6.out_64_t0p25",
    "v4_6.out_96x128_t0p5",
    "v4_6.out_64_t0p5_deforum_pad128",
    "v4_26.out_64_t0p5",
    "v4_26.out_64_t0p25",
    "v4_26.out_96x128_t0p5",
]
MANIFESTS = {
    "4.0": "rife_ifnet_v4_0.json",
    "4.6": "rife_ifnet_v4_6.json",
    "4.7": "rife_ifnet_v4_7.json",
    "4.17": "rife_ifnet_v4_17.json",
    "4.26": "rife_ifnet_v4_26.json",
}


def _json(relative: str) -> dict:
    return json.loads(require_fixture(f"{ROOT}/{relative}").read_text())


def _weights_path(tag: str) -> str:
    return str(require_fixture(f"{ROOT}/tiny/rife_{tag}_tiny.weights.safetensors"))


@pytest.fixture(scope="module")
def io() -> dict[str, torch.Tensor]:
    return load_file(str(require_fixture(f"{ROOT}/tiny/rife_tiny.io.safetensors")))


@pytest.fixture(scope="module")
def tiny() -> dict[str, IFNet]:
    """The three tiny fixture networks, keyed by fixture tag (``v4_7``, ``v4_6``, ``v4_26``)."""
    return {tag: load_rife(_weights_path(tag)) for tag in TINY_VERSIONS}


def _case(tag: str, output: str) -> dict:
    spec = _json("tiny/rife_tiny.json")["archs"][TINY_VERSIONS[tag]]
    return next(c for c in spec["cases"] if c["output"] == f"{tag}.{output}")


def _frames(io: dict[str, torch.Tensor], spec: str) -> torch.Tensor:
    """``"x0_64"`` or ``"cat(x0_64, x0_64_b)"`` → the (concatenated) input tensor."""
    return torch.cat([io[name] for name in re.findall(r"x[01]_[0-9a-z_]+", spec)])


@pytest.mark.parametrize("key", CASES)
def test_tiny_fixture_case(io, tiny, key):
    tag, output = key.split(".", 1)
    case = _case(tag, output)
    timestep = case["timestep"] if isinstance(case["timestep"], float) else io["t_batch"]
    pad = "deforum" if "deforum" in output else "comfyui"
    scale_list = case["scale_list"]
    assert scale_list == default_scale_list(TINY_VERSIONS[tag], 1 / scale_list[-1])
    with torch.inference_mode():
        out = tiny[tag](_frames(io, case["x0"]), _frames(io, case["x1"]), timestep, scale_list, pad=pad)
    assert list(out.shape) == case["output_shape"]
    torch.testing.assert_close(out, io[key], rtol=0, atol=ATOL)


def test_every_fixture_case_is_tested():
    archs = _json("tiny/rife_tiny.json")["archs"]
    assert sorted(c["output"] for a in archs.values() for c in a["cases"]) == sorted(CASES)


def test_block_outputs_match_debug_tensors(io, tiny):
    with torch.inference_mode():
        _, steps = tiny["v4_7"].forward_with_blocks(io["x0_64"], io["x1_64"], 0.5, [8, 4, 2, 1])
    assert len(steps) == 4
    for i, step in enumerate(steps):
        torch.testing.assert_close(step.flow, io[f"v4_7.dbg_64_t0p5.block{i}.flow"], rtol=0, atol=ATOL)
        torch.testing.assert_close(step.mask, io[f"v4_7.dbg_64_t0p5.block{i}.mask"], rtol=0, atol=ATOL)


@pytest.mark.parametrize("tag", sorted(TINY_VERSIONS))
def test_float_and_tensor_timestep_are_identical(io, tiny, tag):
    x0, x1 = io["x0_96x128"], io["x1_96x128"]
    with torch.inference_mode():
        as_float = tiny[tag](x0, x1, 0.25)
        as_tensor = tiny[tag](x0, x1, torch.full((1, 1, 1, 1), 0.25))
    assert torch.equal(as_float, as_tensor)


def test_default_scale_list():
    assert default_scale_list("4.7") == [8, 4, 2, 1]
    assert default_scale_list("4.0", 0.5) == [16, 8, 4, 2]
    assert default_scale_list("4.26") == [16, 8, 4, 2, 1]
    assert default_scale_list("4.25", 0.25) == [64, 32, 16, 8, 4]
    with pytest.raises(ConfigError, match="scale"):
        default_scale_list("4.7", 0)
    with pytest.raises(ConfigError, match="version"):
        canonical_version("3.9")


# ------------------------------------------------------------------------- manifests and detection


@pytest.fixture(scope="module")
def manifest_dicts() -> dict[str, dict[str, torch.Tensor]]:
    """Zero tensors with every manifest's names and shapes (no prefix), built on first use."""
    cache: dict[str, dict[str, torch.Tensor]] = {}

    def build(version: str) -> dict[str, torch.Tensor]:
        if version not in cache:
            entries = _json(f"manifests/{MANIFESTS[version]}")["state_dict"]
            cache[version] = {e["key"]: torch.zeros(e["shape"]) for e in entries}
        return cache[version]

    return build


@pytest.mark.parametrize("version", RIFE_VERSIONS)
def test_network_layout_is_the_manifest(version):
    entries = _json(f"manifests/{MANIFESTS[version]}")["state_dict"]
    with torch.device("meta"):
        net = IFNet(version)
    assert [(k, list(v.shape)) for k, v in net.state_dict().items()] == [(e["key"], e["shape"]) for e in entries]
    assert all(e["key_practical_rife"] == "module." + e["key"] for e in entries)


@pytest.mark.parametrize("version", RIFE_VERSIONS)
@pytest.mark.parametrize("variant", ["plain", "module_prefix_and_extra", "names_only"])
def test_detect_version_of_each_manifest(manifest_dicts, version, variant):
    sd = manifest_dicts(version)
    if variant == "module_prefix_and_extra":
        sd = {"module." + k: v for k, v in sd.items()} | {"module.caltime.weight": torch.zeros(4)}
    elif variant == "names_only":
        sd = list(sd)
    assert detect_rife_version(sd) == version


def test_zero_state_dict_loads_at_full_size(manifest_dicts):
    model = load_rife({"module." + k: v for k, v in manifest_dicts("4.26").items()})
    assert model.version == "4.26" and model.widths == (192, 128, 96, 64, 32)


def test_detection_names_a_missing_tensor(manifest_dicts):
    sd = dict(manifest_dicts("4.17"))
    del sd["block2.convblock.3.beta"]
    with pytest.raises(IncompatibleModelError, match=r"4\.17.*missing.*block2\.convblock\.3\.beta"):
        detect_rife_version(sd)


def test_detection_names_a_wrong_shape(manifest_dicts):
    sd = dict(manifest_dicts("4.7"))
    sd["encode.1.weight"] = torch.zeros(16, 8, 4, 4)
    with pytest.raises(
        IncompatibleModelError, match=r"encode\.1\.weight: got \[16, 8, 4, 4\], expected \[16, 4, 4, 4\]"
    ):
        detect_rife_version(sd)


def test_detection_refuses_other_dicts(manifest_dicts):
    with pytest.raises(IncompatibleModelError, match="not a RIFE 4.x state dict"):
        detect_rife_version({"conv.weight": torch.zeros(3, 3, 1, 1)})
    v45 = dict(manifest_dicts("4.6"))
    v45["block0.lastconv.0.weight"] = torch.zeros(192, 20, 4, 4)
    with pytest.raises(IncompatibleModelError, match=r"4\.5.*not supported"):
        detect_rife_version(v45)


# ---------------------------------------------------------------------------------------- loading


def test_widths_are_read_from_the_weights():
    sd = load_file(_weights_path("v4_26"))
    assert rife_widths_from_state_dict(sd) == (24, 16, 12, 8, 8)
    assert rife_widths_from_state_dict({"module." + k: v for k, v in sd.items()}) == (24, 16, 12, 8, 8)


def test_prefixed_pickle_loads_like_the_safetensors(tmp_path, io, tiny):
    sd = load_file(_weights_path("v4_7"))
    path = tmp_path / "flownet.pkl"
    torch.save({"module." + k: v for k, v in sd.items()} | {"module.caltime.weight": torch.zeros(2)}, path)
    model = load_rife(path)
    assert model.version == "4.7" and not model.training
    assert not any(p.requires_grad for p in model.parameters())
    reference = tiny["v4_7"].state_dict()
    assert all(torch.equal(v, reference[k]) for k, v in model.state_dict().items())
    with torch.inference_mode():
        assert torch.equal(model(io["x0_64"], io["x1_64"], 0.5), tiny["v4_7"](io["x0_64"], io["x1_64"], 0.5))


def test_a_given_version_that_does_not_fit_is_refused():
    with pytest.raises(IncompatibleModelError, match=r"RIFE 4\.6.*wrong shape.*block0\.conv0\.0\.0\.weight"):
        load_rife(_weights_path("v4_7"), version="4.6")


_CALLS: list[str] = []


def _record(text: str) -> str:
    _CALLS.append(text)
    return text


class _Payload:
    """Unpickles by calling :func:`_record`: what a hostile file's code would do."""

    def __reduce__(self):
        return (_record, ("unpickled",))


def test_pickled_code_is_refused(tmp_path):
    path = tmp_path / "rife46.pth"
    torch.save({"module.block0.conv0.0.0.bias": torch.zeros(96), "module.extra": _Payload()}, path)
    with pytest.raises(IncompatibleModelError, match="refused to unpickle"):
        load_rife(path)
    assert _CALLS == []


# ----------------------------------------------------------------------------------- sizes, frames


def test_padded_size_must_fit_the_scale(io, tiny):
    scales = default_scale_list("4.7", 0.25)  # [32, 16, 8, 4]: needs multiples of 128
    with pytest.raises(ConfigError, match=r"4 × scale_list\[0\] = 128.*padded \('comfyui'\) to 64x64"):
        tiny["v4_7"](io["x0_64"], io["x1_64"], 0.5, scales)
    with torch.inference_mode():  # Deforum pads to max(128, 128 / 0.25) = 512 first
        out = tiny["v4_7"](io["x0_64"], io["x1_64"], 0.5, scales, pad="deforum")
    assert out.shape == (1, 3, 64, 64) and torch.isfinite(out).all()


def _uint8(x: torch.Tensor) -> np.ndarray:
    return np.round(x[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8)


def test_rife_frames_batches_and_rounds(io, tiny):
    model = tiny["v4_6"]
    a, b = _uint8(io["x0_96x128"]), _uint8(io["x1_96x128"])
    ts = [0.25, 0.5, 0.75]
    frames = rife_frames(model, a, b, ts, batch_size=2)
    assert len(frames) == 3 and all(f.dtype == np.uint8 and f.shape == (96, 128, 3) for f in frames)
    x0 = torch.from_numpy(a).permute(2, 0, 1)[None] / 255.0
    x1 = torch.from_numpy(b).permute(2, 0, 1)[None] / 255.0
    for t, frame in zip(ts, frames, strict=True):
        with torch.inference_mode():
            expected = _uint8(model(x0, x1, t).clamp(0, 1))
        assert np.abs(frame.astype(int) - expected).max() <= 1  # batched vs single: float noise may flip a rounding
    assert all(np.array_equal(f, g) for f, g in zip(rife_run(a, b, ts, model=model), frames, strict=True))


def test_deforum_padding_changes_64x64_frames(io, tiny):
    a, b = _uint8(io["x0_64"]), _uint8(io["x1_64"])  # ComfyUI pads nothing here, Deforum to 128x128
    comfyui, deforum = (rife_run(a, b, [0.5], model=tiny["v4_6"], pad=pad)[0] for pad in ("comfyui", "deforum"))
    assert np.abs(deforum.astype(int) - comfyui).max() > 50


def test_rife_frames_refuses_bad_arguments(tiny):
    model = tiny["v4_7"]
    a = np.zeros((64, 64, 3), np.uint8)
    with pytest.raises(ConfigError, match="frames"):
        rife_frames(model, a, a.astype(np.float32), [0.5])
    with pytest.raises(ConfigError, match="ts"):
        rife_frames(model, a, a, [1.5])
    with pytest.raises(ConfigError, match="pad"):
        rife_frames(model, a, a, [0.5], pad="symmetric")
    with pytest.raises(ConfigError, match="model"):
        rife_frames(object(), a, a, [0.5])


@pytest.mark.parametrize("version", ["4.0", "4.17"])
def test_versions_without_fixture_run(version):
    torch.manual_seed(0)
    model = IFNet(version, (8, 8, 8, 8)).eval()
    x0, x1 = torch.rand(2, 3, 40, 72), torch.rand(2, 3, 40, 72)
    with torch.inference_mode():
        out = model(x0, x1, torch.tensor([0.2, 0.8]).view(2, 1, 1, 1))
    assert out.shape == (2, 3, 40, 72) and torch.isfinite(out).all()
