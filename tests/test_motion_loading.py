"""Motion-module families, detection, skeletons vs the manifests, loading files, noise schedules."""

from __future__ import annotations

import json

import pytest
import torch

from lib_vidsd.errors import ConfigError, IncompatibleModelError
from lib_vidsd.motion import (
    FAMILIES,
    build_motion_module,
    canonical_keys,
    detect_family,
    get_family,
    load_motion_module,
    noise_schedule,
    probe_family,
    sinusoid_table,
)
from tests.rig.fixtures import require_fixture

MANIFESTS = {
    "mm_sd_v15": "v1",
    "mm_sd_v15_v2": "v2",
    "v3_sd15_mm": "v3",
    "mm_sdxl_v10_beta": "sdxl",
    "mm_sdxl_hotshot_converted": "hotshotxl",
    "hotshotxl_original_legacy": "hotshotxl",
    "animatelcm_sd15_t2v": "animatelcm",
}
TINY_CHANNELS = {"sd15": (32, 32, 32, 64), "sdxl": (32, 64, 32)}


def _manifest(name: str) -> dict:
    path = require_fixture(f"animatediff/manifests/{name}.json")
    return json.loads(path.read_text())


def _meta_state_dict(manifest: dict) -> dict:
    return {k: torch.empty(shape, device="meta") for k, shape in manifest["keys"]}


def _shapes(state_dict) -> dict:
    return {k: list(v.shape) for k, v in state_dict.items()}


def _random_module(family: str, seed: int = 0):
    channels = TINY_CHANNELS["sdxl" if get_family(family).is_sdxl else "sd15"]
    torch.manual_seed(seed)
    module = build_motion_module(family, channels)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn_like(p))
    return module


# --- manifests ------------------------------------------------------------------------------------


def test_manifest_index_lists_every_manifest():
    index = json.loads(require_fixture("animatediff/manifests/index.json").read_text())
    assert {f.removesuffix(".json") for f in index["files"]} == set(MANIFESTS)


@pytest.mark.parametrize("name", list(MANIFESTS))
def test_detects_every_manifest_from_names_and_shapes(name):
    manifest = _manifest(name)
    state_dict = _meta_state_dict(manifest)
    assert len(state_dict) == manifest["num_tensors"]
    assert detect_family(state_dict) == MANIFESTS[name]


@pytest.mark.parametrize("name", list(MANIFESTS))
def test_skeleton_state_dict_equals_manifest(name):
    manifest = _manifest(name)
    family = MANIFESTS[name]
    skeleton = build_motion_module(family, device="meta")
    expected = _shapes(canonical_keys(_meta_state_dict(manifest)))  # legacy HotShot: renamed
    assert _shapes(skeleton.state_dict()) == expected
    assert sum(v.numel() for v in skeleton.state_dict().values()) == manifest["num_elements"]
    facts = manifest["loader_facts"]
    assert skeleton.context_limit == facts["pos_encoding_max_len"]
    assert skeleton.is_sdxl == facts["is_xl"]
    assert (skeleton.mid_block is not None) == facts["has_mid_block"]
    assert skeleton.group_norm_over_frames == facts["groupnorm_hack"]
    assert list(skeleton.channels) == facts["level_channels"]


def test_legacy_hotshot_renames_onto_the_converted_layout():
    legacy = _manifest("hotshotxl_original_legacy")
    converted = _manifest("mm_sdxl_hotshot_converted")
    assert _shapes(canonical_keys(_meta_state_dict(legacy))) == _shapes(_meta_state_dict(converted))


# --- detection ------------------------------------------------------------------------------------


def test_tiny_inject_dicts_detected_by_table_length_not_by_a_32_in_the_shape():
    from safetensors.torch import load_file

    v2 = load_file(str(require_fixture("animatediff/tiny/inject/mm_tiny_v2.fp16.safetensors")))
    v3 = {k: v for k, v in v2.items() if not k.startswith("mid_block.")}
    v1 = {k: (v[:, :24] if k.endswith("pos_encoder.pe") else v) for k, v in v3.items()}
    assert [detect_family(d) for d in (v2, v3, v1)] == ["v2", "v3", "v1"]


def _layout_dict(family: str, *, table_length=None, mid=None, levels=None, table_name="pe"):
    spec = get_family(family)
    levels = levels or spec.levels
    channels = (32,) * levels
    keys = {}
    mid = spec.has_mid_block if mid is None else mid
    length = table_length if table_length is not None else spec.table_length
    blocks = [f"down_blocks.{i}" for i in range(levels)] + [f"up_blocks.{i}" for i in range(levels)]
    for block in blocks + (["mid_block"] if mid else []):
        prefix = f"{block}.motion_modules.0.temporal_transformer."
        keys[prefix + "norm.weight"] = torch.empty(channels[0], device="meta")
        if length:
            name = f"{prefix}transformer_blocks.0.attention_blocks.0.pos_encoder.{table_name}"
            keys[name] = torch.empty(1, length, 32, device="meta")
    return keys


def test_animatelcm_recognised_without_tables_or_by_table_length():
    assert detect_family(_layout_dict("animatelcm", table_length=0)) == "animatelcm"
    assert detect_family(_layout_dict("animatelcm", table_name="pe")) == "animatelcm"  # pe, length 64
    assert detect_family(_layout_dict("v2")) == "v2"


@pytest.mark.parametrize(
    "state_dict,why",
    [
        ({}, "no motion-module tensors"),
        ({"model.diffusion_model.input_blocks.0.0.weight": torch.empty(4, 4, device="meta")}, "no motion"),
        (_layout_dict("v1", table_length=16), "table length 16"),
        (_layout_dict("sdxl", mid=True), "a mid_block"),
        (_layout_dict("v3", table_length=0), "table length None"),
        (_layout_dict("v3", levels=2), "2 levels"),
    ],
)
def test_unknown_layout_says_what_was_expected_and_found(state_dict, why):
    with pytest.raises(IncompatibleModelError) as e:
        detect_family(state_dict)
    text = str(e.value)
    assert why in text
    for spec in FAMILIES.values():
        assert spec.describe() in text
    assert f"Found {len(state_dict)} tensors, first keys:" in text


def test_get_family_unknown_lists_names():
    with pytest.raises(ConfigError) as e:
        get_family("v4")
    assert e.value.field == "family" and "v1, v2, v3, sdxl, hotshotxl, animatelcm" in str(e.value)


# --- loading files --------------------------------------------------------------------------------


@pytest.mark.parametrize("family", list(FAMILIES))
def test_round_trip_safetensors_fp16(tmp_path, family):
    from safetensors.torch import save_file

    module = _random_module(family)
    state = {k: v.half().contiguous() for k, v in module.state_dict().items()}
    path = tmp_path / "mm.safetensors"
    save_file(state, str(path))
    assert probe_family(path) == family
    loaded = load_motion_module(path)
    assert loaded.family == family and loaded.channels == module.channels
    assert not loaded.training and not any(p.requires_grad for p in loaded.parameters())
    for key, value in loaded.state_dict().items():
        assert value.dtype == torch.float32
        assert torch.equal(value, state[key].float()), key


@pytest.mark.parametrize("wrapped", [False, True])
@pytest.mark.parametrize("suffix", [".ckpt", ".pt", ".pth"])
def test_round_trip_pickled_checkpoint(tmp_path, wrapped, suffix):
    module = _random_module("v2", seed=3)
    state = module.state_dict()
    obj = {"state_dict": state, "global_step": 10} if wrapped else dict(state, epoch=1)
    path = tmp_path / f"mm{suffix}"
    torch.save(obj, path)
    loaded = load_motion_module(path, dtype=torch.float64)
    assert loaded.family == "v2"
    for key, value in loaded.state_dict().items():
        assert value.dtype == torch.float64
        assert torch.equal(value, state[key].double()), key


def test_state_dict_source_is_copied_not_shared():
    module = _random_module("v3")
    state = {k: v.clone() for k, v in module.state_dict().items()}
    loaded = load_motion_module(state)
    key = "down_blocks.0.motion_modules.0.temporal_transformer.proj_in.weight"
    with torch.no_grad():
        loaded.get_parameter(key).add_(1)
    assert torch.equal(state[key], module.state_dict()[key])


def test_tiny_inject_module_loads_as_v2_in_float32():
    path = require_fixture("animatediff/tiny/inject/mm_tiny_v2.fp16.safetensors")
    module = load_motion_module(path)
    assert (module.family, module.context_limit, module.channels) == ("v2", 32, (32, 32, 32, 32))
    assert module.mid_block is not None and not module.group_norm_over_frames
    table = module.down_blocks[0].motion_modules[0].temporal_transformer.transformer_blocks[0]
    assert torch.equal(table.attention_blocks[1].pos_encoder.pe, sinusoid_table(32, 32))
    assert all(v.dtype == torch.float32 for v in module.state_dict().values())


def test_legacy_hotshot_file_loads(tmp_path):
    from safetensors.torch import save_file

    module = _random_module("hotshotxl", seed=5)
    legacy = {}
    for key, value in module.state_dict().items():
        key = key.replace(".motion_modules.", ".temporal_attentions.").replace(".temporal_transformer.", ".")
        legacy[key.replace("pos_encoder.pe", "pos_encoder.positional_encoding")] = value
    save_file(legacy, str(tmp_path / "hsxl_temporal_layers.safetensors"))
    loaded = load_motion_module(tmp_path / "hsxl_temporal_layers.safetensors")
    assert loaded.family == "hotshotxl" and loaded.group_norm_over_frames and loaded.is_sdxl
    for key, value in module.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value)


def test_animatelcm_tolerates_missing_tables_and_extra_entries():
    module = _random_module("animatelcm", seed=7)
    state = {k: v for k, v in module.state_dict().items() if not k.endswith("pos_encoding")}
    state["first_stage_model.decoder.conv_in.weight"] = torch.zeros(3)
    loaded = load_motion_module(state)
    assert loaded.family == "animatelcm" and loaded.context_limit == 64
    tables = [v for k, v in loaded.state_dict().items() if k.endswith("pos_encoder.pos_encoding")]
    assert len(tables) == 2 * 21
    assert all(torch.equal(t, sinusoid_table(64, t.shape[-1])) for t in tables)


def test_animatelcm_tables_named_pe_are_accepted():
    module = _random_module("animatelcm", seed=8)
    state = {k.replace("pos_encoding", "pe"): v for k, v in module.state_dict().items()}
    loaded = load_motion_module(state)
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in module.state_dict().items())


@pytest.mark.parametrize("damage", ["missing", "unexpected", "shape"])
def test_strict_loading_names_the_problem(damage):
    state = dict(_random_module("v3").state_dict())
    key = "up_blocks.1.motion_modules.2.temporal_transformer.proj_out.bias"
    if damage == "missing":
        del state[key]
    elif damage == "unexpected":
        state["up_blocks.1.motion_modules.3.temporal_transformer.proj_out.bias"] = torch.zeros(32)
    else:
        state[key] = torch.zeros(16)
    with pytest.raises(IncompatibleModelError) as e:
        load_motion_module(state)
    text = str(e.value)
    assert "AnimateDiff V3" in text and ("motion_modules.3" if damage == "unexpected" else key) in text
    assert {"missing": "1 missing", "unexpected": "1 unexpected", "shape": "1 wrong shape"}[damage] in text


class _NotATensor:
    pass


def test_pickles_beyond_tensors_are_refused(tmp_path):
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {"x": torch.zeros(1)}, "payload": _NotATensor()}, path)
    with pytest.raises(IncompatibleModelError, match="refused to unpickle"):
        load_motion_module(path)


def test_bad_paths_are_config_errors(tmp_path):
    with pytest.raises(ConfigError) as e:
        load_motion_module(tmp_path / "mm.onnx")
    assert e.value.field == "model" and ".safetensors" in str(e.value)
    with pytest.raises(ConfigError, match="an existing motion-module file"):
        load_motion_module(tmp_path / "absent.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a file")
    with pytest.raises(IncompatibleModelError, match="safetensors"):
        load_motion_module(tmp_path / "junk.safetensors")


# --- noise schedules ------------------------------------------------------------------------------


def test_noise_schedules_match_the_extension_tables():
    from safetensors.torch import load_file

    tables = load_file(str(require_fixture("animatediff/tiny/inject/alphas_cumprod.safetensors")))
    assert set(tables) == {"sd15_families", "hotshot_xl", "animatediff_sdxl"}
    for family in ("v1", "v2", "v3", "animatelcm"):
        assert torch.equal(noise_schedule(family), tables["sd15_families"]), family
    assert torch.equal(noise_schedule("hotshotxl"), tables["hotshot_xl"])
    assert torch.equal(noise_schedule("sdxl"), tables["animatediff_sdxl"])
    assert noise_schedule("v3").dtype == torch.float32 and noise_schedule("v3").shape == (1000,)
