"""Motion LoRAs: both key layouts, weights, composition, bit-exact undo, refusals."""

from __future__ import annotations

import pytest
import torch

from lib_vidsd.errors import ConfigError, IncompatibleModelError
from lib_vidsd.motion import apply_motion_loras, build_motion_module, parse_motion_lora

CHANNELS = (32, 32, 32, 64)
ATTN = "temporal_transformer.transformer_blocks.0.attention_blocks"
PROJS = ("to_q", "to_k", "to_v", "to_out")


def _module(family="v2", channels=CHANNELS, dtype=torch.float32):
    torch.manual_seed(0)
    module = build_motion_module(family, channels, dtype=dtype)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(0.2 * torch.randn_like(p))
    return module


def _targets(channels=CHANNELS, mid=True):
    """(module path, channels) of every temporal module of an SD1.5 layout."""
    out = [(f"down_blocks.{i}.motion_modules.{j}", c) for i, c in enumerate(channels) for j in range(2)]
    out += [(f"up_blocks.{i}.motion_modules.{j}", c) for i, c in enumerate(reversed(channels)) for j in range(3)]
    if mid:
        out.append(("mid_block.motion_modules.0", channels[-1]))
    return out


def _original_lora(seed, rank=4, channels=CHANNELS, mid=True) -> dict:
    """guoyww layout: <path>.processor.to_q_lora.down.weight / .up.weight."""
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for path, c in _targets(channels, mid):
        for a in range(2):
            for proj in PROJS:
                base = f"{path}.{ATTN}.{a}.processor.{proj}_lora"
                sd[f"{base}.down.weight"] = torch.randn(rank, c, generator=g) * 0.1
                sd[f"{base}.up.weight"] = torch.randn(c, rank, generator=g) * 0.1
    return sd


def _kohya_from_original(sd: dict, alpha: float | None = None) -> dict:
    """The same weights in the A1111 layout: underscores, lora_down/lora_up, optional alpha."""
    out = {}
    for key, value in sd.items():
        layer, part = key.split(".processor.")
        proj, _, which = part.partition("_lora.")
        proj = "to_out.0" if proj == "to_out" else proj
        name = f"{layer}.{proj}".replace(".", "_")
        out[f"{name}.lora_{which}"] = value
        if alpha is not None:
            out[f"{name}.alpha"] = torch.tensor(alpha)
    return out


def _weights(module):
    return {k: v.clone() for k, v in module.state_dict().items()}


def _run(module, seed=1):
    torch.manual_seed(seed)
    x = torch.randn(16, 32, 2, 3)
    with torch.no_grad():
        return module.down_blocks[0](x, 8)


def _delta(sd, path, proj, scale=1.0):
    base = f"{path}.{ATTN}.0.processor.{proj}_lora"
    return scale * sd[f"{base}.up.weight"] @ sd[f"{base}.down.weight"]


def test_parse_original_layout_maps_to_out_to_its_linear():
    layers = parse_motion_lora(_original_lora(0))
    assert f"down_blocks.0.motion_modules.0.{ATTN}.0.to_out.0" in layers
    assert f"mid_block.motion_modules.0.{ATTN}.1.to_q" in layers
    assert len(layers) == 21 * 2 * 4


def test_apply_changes_output_and_undo_is_bit_exact():
    module = _module()
    before, out_before = _weights(module), _run(module)
    undo = apply_motion_loras(module, [(_original_lora(0), 0.8)])
    assert not torch.allclose(_run(module), out_before)
    undo()
    assert all(torch.equal(v, before[k]) for k, v in module.state_dict().items())
    assert torch.equal(_run(module), out_before)
    undo()  # a second call does nothing
    assert all(torch.equal(v, before[k]) for k, v in module.state_dict().items())


def test_weight_scales_the_update():
    module = _module()
    lora = _original_lora(0)
    key = f"down_blocks.1.motion_modules.1.{ATTN}.0.to_k.weight"
    w0 = module.state_dict()[key].clone()
    undo = apply_motion_loras(module, [(lora, 0.5)])
    expected = w0 + 0.5 * _delta(lora, "down_blocks.1.motion_modules.1", "to_k")
    torch.testing.assert_close(module.state_dict()[key], expected, atol=1e-6, rtol=1e-6)
    undo()


def test_two_loras_compose_additively():
    module = _module()
    a, b = _original_lora(1), _original_lora(2)
    key = f"up_blocks.2.motion_modules.0.{ATTN}.0.to_out.0.weight"
    w0 = module.state_dict()[key].clone()
    undo = apply_motion_loras(module, [(a, 1.0), (b, -0.7)])
    path = "up_blocks.2.motion_modules.0"
    expected = w0 + _delta(a, path, "to_out") - 0.7 * _delta(b, path, "to_out")
    torch.testing.assert_close(module.state_dict()[key], expected, atol=1e-6, rtol=1e-6)
    together = _weights(module)
    undo()
    # order does not matter: the updates are summed before they touch the weights
    undo = apply_motion_loras(module, [(b, -0.7), (a, 1.0)])
    assert all(torch.equal(v, together[k]) for k, v in module.state_dict().items())
    undo()


def test_a1111_layout_with_alpha_from_files(tmp_path):
    from safetensors.torch import save_file

    original = _original_lora(3, rank=4)
    module = _module()
    key = f"down_blocks.0.motion_modules.1.{ATTN}.0.to_v.weight"
    w0 = module.state_dict()[key].clone()
    save_file(_kohya_from_original(original, alpha=2.0), str(tmp_path / "mm_sd15_v2_lora_PanLeft.safetensors"))
    torch.save({"state_dict": original}, tmp_path / "v2_lora_PanLeft.ckpt")
    undo = apply_motion_loras(module, [(tmp_path / "mm_sd15_v2_lora_PanLeft.safetensors", 1.0)])
    delta = _delta(original, "down_blocks.0.motion_modules.1", "to_v")
    torch.testing.assert_close(module.state_dict()[key], w0 + 0.5 * delta, atol=1e-6, rtol=1e-6)  # alpha/rank
    undo()
    undo = apply_motion_loras(module, [(str(tmp_path / "v2_lora_PanLeft.ckpt"), 1.0)])
    torch.testing.assert_close(module.state_dict()[key], w0 + delta, atol=1e-6, rtol=1e-6)
    undo()
    assert torch.equal(module.state_dict()[key], w0)


def test_half_precision_undo_is_bit_exact():
    module = _module(dtype=torch.float16)
    before = _weights(module)
    undo = apply_motion_loras(module, [(_original_lora(4), 0.3), (_kohya_from_original(_original_lora(5)), 0.3)])
    assert any(not torch.equal(v, before[k]) for k, v in module.state_dict().items())
    undo()
    assert all(torch.equal(v, before[k]) for k, v in module.state_dict().items())


def test_wrong_shapes_refused_and_nothing_changed():
    module = _module()
    before = _weights(module)
    wrong = _original_lora(6, channels=(64, 64, 64, 64))
    with pytest.raises(IncompatibleModelError, match="made for another motion module") as e:
        apply_motion_loras(module, [(_original_lora(7), 1.0), (wrong, 1.0)])
    assert "[32, 32]" in str(e.value)
    assert all(torch.equal(v, before[k]) for k, v in module.state_dict().items())


def test_v2_lora_on_v3_module_refused():
    module = _module("v3")
    with pytest.raises(IncompatibleModelError, match="mid_block.*v3 motion module does not have"):
        apply_motion_loras(module, [(_original_lora(8), 1.0)])
    apply_motion_loras(module, [(_original_lora(8, mid=False), 1.0)])()  # without the mid block it fits


def test_unrecognised_keys_and_arguments():
    module = _module()
    with pytest.raises(IncompatibleModelError, match="not a motion-LoRA key"):
        apply_motion_loras(module, [({"down_blocks.0.weird": torch.zeros(1)}, 1.0)])
    lora = _original_lora(9)
    del lora[f"mid_block.motion_modules.0.{ATTN}.1.processor.to_q_lora.up.weight"]
    with pytest.raises(IncompatibleModelError, match="has no up weight"):
        apply_motion_loras(module, [(lora, 1.0)])
    with pytest.raises(ConfigError) as e:
        apply_motion_loras(module, [(_original_lora(9), "strong")])
    assert e.value.field == "motion_lora[0]"
