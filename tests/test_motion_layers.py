"""Motion-module layers: the shared numeric fixtures, diffusers' own implementation, limits."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from lib_vidsd.errors import ConfigError
from lib_vidsd.motion import MotionLevel, TemporalModule, sinusoid_table
from tests.rig.fixtures import require_fixture

TINY = "animatediff/tiny"
FIXTURES = ["module_v1_c32", "module_v2_c64", "level_v1_down_c32", "level_v2_up_c32"]
TOL = {"atol": 1e-4, "rtol": 1e-4}


def _fixture(name: str):
    from safetensors.torch import load_file

    folder = require_fixture(TINY)
    spec = next(f for f in json.loads((folder / "fixtures.json").read_text())["fixtures"] if f["name"] == name)
    return spec, load_file(str(folder / spec["weights_file"])), load_file(str(folder / spec["io_file"]))


def _level(spec, weights) -> MotionLevel:
    c = spec["constructor"]
    level = MotionLevel(c["in_channels"], c["num_modules"], c["temporal_position_encoding_max_len"])
    level.load_state_dict(weights, strict=True)
    return level.eval()


def _seeded_module(channels=32, length=24, seed=0) -> TemporalModule:
    torch.manual_seed(seed)
    module = TemporalModule(channels, length)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if "norm" in name and name.endswith("weight"):
                p.copy_(1 + 0.2 * torch.randn_like(p))
            else:
                p.copy_(0.2 * torch.randn_like(p))
    return module.eval()


@pytest.mark.parametrize("name", FIXTURES)
def test_reproduces_fixture(name):
    spec, weights, io = _fixture(name)
    level = _level(spec, weights)
    assert list(io["input"].shape) == spec["input_shape"]
    with torch.no_grad():
        out = level(io["input"], spec["frames"])
    assert out.shape == io["input"].shape and out.is_contiguous()
    torch.testing.assert_close(out, io["expected_output"], **TOL)


def test_transformer_block_alone():
    """block_input is in the reference layout (halves·F, H·W, C); our block takes (halves·H·W, F, C)."""
    spec, weights, io = _fixture("module_v1_c32")
    block = _level(spec, weights).motion_modules[0].temporal_transformer.transformer_blocks[0]
    tokens = io["block_input"]
    rows, hw, c = tokens.shape
    frames = spec["frames"]
    halves = rows // frames
    seqs = tokens.view(halves, frames, hw, c).transpose(1, 2).reshape(halves * hw, frames, c)
    with torch.no_grad():
        out = block(seqs)
    out = out.view(halves, hw, frames, c).transpose(1, 2).reshape(rows, hw, c)
    torch.testing.assert_close(out, io["block_expected_output"], **TOL)


@pytest.mark.parametrize("name", FIXTURES)
def test_computed_table_equals_stored_bit_for_bit(name):
    spec, weights, _ = _fixture(name)
    c = spec["constructor"]
    table = sinusoid_table(c["temporal_position_encoding_max_len"], c["in_channels"])
    tables = [v for k, v in weights.items() if k.endswith("pos_encoder.pe")]
    assert tables and all(torch.equal(t, table) for t in tables)


def test_frames_over_table_length_is_a_config_error():
    module = _seeded_module(length=24)
    with pytest.raises(ConfigError) as e:
        module(torch.randn(50, 32, 2, 2), 25)
    assert e.value.field == "batch_size" and e.value.value == 25
    assert "1..24" in str(e.value) and "24 frames" in str(e.value)
    with pytest.raises(ValueError, match="multiple of frames=8"):
        module(torch.randn(12, 32, 2, 2), 8)


@pytest.mark.parametrize("halves", [1, 2, 3])
def test_halves_are_independent(halves):
    module = _seeded_module()
    frames = 6
    x = torch.randn(halves * frames, 32, 3, 2)
    with torch.no_grad():
        whole = module(x, frames)
        parts = torch.cat([module(x[h * frames : (h + 1) * frames], frames) for h in range(halves)])
    torch.testing.assert_close(whole, parts, atol=1e-5, rtol=1e-5)


def test_frames_attend_only_within_their_window():
    """A change in one frame moves the other frames of its half, never the other half."""
    module = _seeded_module()
    x = torch.randn(16, 32, 2, 3)
    y = x.clone()
    y[2] += 1.0
    with torch.no_grad():
        a, b = module(x, 8), module(y, 8)
    assert (a[:8] - b[:8]).abs().amax(dim=(1, 2, 3)).min() > 0
    assert torch.equal(a[8:], b[8:])


# --- diffusers' own motion module ---------------------------------------------------------------


class _PerFrameGroupNorm(nn.Module):
    """diffusers' AnimateDiffTransformer3D normalises the 5-D ``(B, C, F, H, W)`` tensor, i.e. over
    all frames of a batch entry; AnimateDiff and sd-webui-animatediff normalise every frame alone.
    This wraps the same GroupNorm to work per frame, so the rest can be compared."""

    def __init__(self, norm: nn.GroupNorm):
        super().__init__()
        self.inner = norm

    def forward(self, x):
        b, c, f, h, w = x.shape
        y = self.inner(x.transpose(1, 2).reshape(b * f, c, h, w))
        return y.reshape(b, f, c, h, w).transpose(1, 2)


def _to_diffusers_names(state_dict):
    renames = [
        ("temporal_transformer.", ""),
        (".attention_blocks.0.", ".attn1."),
        (".attention_blocks.1.", ".attn2."),
        (".norms.0.", ".norm1."),
        (".norms.1.", ".norm2."),
        (".ff_norm.", ".norm3."),
    ]
    out = {}
    for key, value in state_dict.items():
        if key.endswith("pos_encoder.pe"):
            if ".attention_blocks.0." in key:  # diffusers keeps one table per block
                out["transformer_blocks.0.pos_embed.pe"] = value
            continue
        for old, new in renames:
            key = key.replace(old, new)
        out[key] = value
    return out


@pytest.mark.parametrize("channels,length,frames", [(32, 24, 16), (64, 32, 28)])
def test_matches_diffusers_animatediff_transformer(channels, length, frames):
    from diffusers.models.unets.unet_motion_model import AnimateDiffTransformer3D

    ours = _seeded_module(channels, length, seed=channels)
    theirs = AnimateDiffTransformer3D(
        num_attention_heads=8,
        attention_head_dim=channels // 8,
        in_channels=channels,
        num_layers=1,
        norm_num_groups=32,
        cross_attention_dim=None,
        activation_fn="geglu",
        attention_bias=False,
        double_self_attention=True,
        positional_embeddings="sinusoidal",
        num_positional_embeddings=length,
    ).eval()
    theirs.load_state_dict(_to_diffusers_names(ours.state_dict()), strict=True)
    theirs.norm = _PerFrameGroupNorm(theirs.norm)
    torch.manual_seed(1)
    x = torch.randn(2 * frames, channels, 3, 5)
    with torch.no_grad():
        expected = theirs(x, num_frames=frames)
        got = ours(x, frames)
    torch.testing.assert_close(got, expected, **TOL)


def test_grad_enabled_and_half_precision_agree():
    module = _seeded_module()
    x = torch.randn(16, 32, 3, 2)
    with torch.no_grad():
        plain = module(x, 8)
    torch.testing.assert_close(module(x, 8).detach(), plain, atol=0, rtol=0)
    half = _seeded_module().half()
    with torch.no_grad():
        out = half(x.half(), 8)
    assert out.dtype == torch.float16
    torch.testing.assert_close(out.float(), plain, atol=2e-2, rtol=1e-2)
