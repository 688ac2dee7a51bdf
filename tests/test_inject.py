"""Injection into both UNet kinds: placement numerics, GroupNorm trick, reversibility, refusals."""

from __future__ import annotations

import pytest
import torch

from lib_vidsd.errors import IncompatibleModelError
from lib_vidsd.motion import build_motion_module, inject, load_motion_module
from lib_vidsd.motion.families import to_diffusers_adapter_keys
from lib_vidsd.patching import is_patched, restore_all
from tests.rig.fixtures import require_fixture
from tests.rig.ldm import load_fixture_inject_io, load_fixture_ldm_unet

TOL = {"atol": 2e-4, "rtol": 1e-4}  # fixtures README, (e)


def _fixture_modules() -> dict[str, dict[str, torch.Tensor]]:
    """v2 as stored; v3 = v2 without mid_block.*; v1 = v3 with every pe cut to 24 rows (README (e))."""
    from safetensors.torch import load_file

    v2 = {
        k: t.float()
        for k, t in load_file(str(require_fixture("animatediff/tiny/inject/mm_tiny_v2.fp16.safetensors"))).items()
    }
    v3 = {k: t for k, t in v2.items() if not k.startswith("mid_block.")}
    v1 = {k: (t[:, :24] if k.endswith("pos_encoder.pe") else t) for k, t in v3.items()}
    return {"v1": v1, "v2": v2, "v3": v3}


def _run_ldm(unet, io):
    with torch.no_grad():
        return unet(io["x"], timesteps=io["timesteps"], context=io["context"])


@pytest.fixture(scope="module")
def fixture_unet_and_io():
    return load_fixture_ldm_unet(), load_fixture_inject_io()


@pytest.mark.parametrize("family", ["v1", "v2", "v3"])
def test_injection_fixture_end_to_end(fixture_unet_and_io, family):
    unet, io = fixture_unet_and_io
    mm = load_motion_module(_fixture_modules()[family])
    assert mm.family == family  # v1 has 32 channels: detected by table length, not "32 in a shape"
    state = {k: v.clone() for k, v in unet.state_dict().items()}
    plain = _run_ldm(unet, io)
    torch.testing.assert_close(plain, io["expected_plain_unet"], **TOL)
    with inject(unet, mm, frames=8):
        got = _run_ldm(unet, io)
        assert list(unet.state_dict()) == list(state)
    torch.testing.assert_close(got, io[f"expected_{family}"], **TOL)
    assert torch.equal(_run_ldm(unet, io), plain)
    assert not is_patched(unet)
    after = unet.state_dict()
    assert list(after) == list(state) and all(torch.equal(after[k], state[k]) for k in state)


def test_v1_groupnorm_trick_is_per_instance_and_restored(fixture_unet_and_io):
    unet, io = fixture_unet_and_io
    plain = _run_ldm(unet, io)
    norms = [m for m in unet.modules() if isinstance(m, torch.nn.GroupNorm)]
    class_forwards = {type(m): type(m).forward for m in norms}
    mm = load_motion_module(_fixture_modules()["v1"])
    with inject(unet, mm, frames=8) as patch:
        tricked = [m for m in norms if "forward" in vars(m)]
        assert len(tricked) == len(patch.layout.group_norms) == 45  # residual blocks + output norm only
        assert all(cls.forward is f for cls, f in class_forwards.items())
        patch.enabled = False  # switched off while applied: exactly the plain UNet
        assert torch.equal(_run_ldm(unet, io), plain)
    assert not any("forward" in vars(m) for m in norms)


def test_restored_after_exception_mid_forward(fixture_unet_and_io):
    unet, io = fixture_unet_and_io
    plain = _run_ldm(unet, io)
    mm = load_motion_module(_fixture_modules()["v1"])
    tm = mm.up_blocks[1].motion_modules[1]
    calls = []

    def explode(module, args, output):
        calls.append(1)
        raise RuntimeError("interrupted mid-forward")

    tm.register_forward_hook(explode)
    with pytest.raises(RuntimeError, match="mid-forward"):
        with inject(unet, mm, frames=8):
            _run_ldm(unet, io)
    assert calls and not is_patched(unet)
    assert torch.equal(_run_ldm(unet, io), plain)


def test_restore_all_cleans_a_leftover_patch(fixture_unet_and_io):
    unet, io = fixture_unet_and_io
    plain = _run_ldm(unet, io)
    inject(unet, load_motion_module(_fixture_modules()["v2"]), frames=8)  # a crashed job never restored
    assert is_patched(unet) and not torch.equal(_run_ldm(unet, io), plain)
    assert restore_all(unet) == 1
    assert torch.equal(_run_ldm(unet, io), plain)


def test_sdxl_module_refused_by_sd15_unet_before_touching(ldm_unet):
    mm = build_motion_module("sdxl", channels=(32, 32, 32), device="cpu")
    with pytest.raises(IncompatibleModelError, match="SDXL"):
        inject(ldm_unet, mm, frames=8)
    assert not is_patched(ldm_unet)
    mm = build_motion_module("v3", channels=(64, 64, 64, 64))
    with pytest.raises(IncompatibleModelError, match="channels"):
        inject(ldm_unet, mm, frames=8)
    assert not is_patched(ldm_unet)


def test_frames_beyond_the_table_refused(ldm_unet):
    from lib_vidsd.errors import ConfigError

    mm = build_motion_module("v1", channels=(32, 32, 32, 32))
    with pytest.raises(ConfigError, match="batch_size"):
        inject(ldm_unet, mm, frames=25)
    assert not is_patched(ldm_unet)


# --- diffusers UNet ---------------------------------------------------------------------------


class _PerFrameNorm(torch.nn.Module):
    """diffusers' AnimateDiffTransformer3D normalises ``(B, C, F, H, W)`` over all frames at once; the
    original AnimateDiff code (and sd-webui-animatediff, whose numbers the fixtures hold) normalises
    each frame alone. This wrapper gives the reference model the original's per-frame statistics."""

    def __init__(self, norm: torch.nn.GroupNorm):
        super().__init__()
        self.norm = norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, f, h, w = x.shape
        y = self.norm(x.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w))
        return y.reshape(b, f, c, h, w).permute(0, 2, 1, 3, 4)


def test_matches_diffusers_unet_motion_model():
    """Independent implementation: diffusers' UNetMotionModel from the same UNet and MotionAdapter weights."""
    from diffusers import MotionAdapter, UNetMotionModel

    from tests.rig.hf import build_diffusers_unet

    state = _fixture_modules()["v2"]
    unet = build_diffusers_unet(seed=3)
    adapter = MotionAdapter(
        block_out_channels=(32, 32, 32, 32),
        motion_layers_per_block=2,
        motion_mid_block_layers_per_block=1,
        motion_num_attention_heads=8,
        motion_norm_num_groups=32,
        motion_max_seq_length=32,
        use_motion_mid_block=True,
    )
    adapter.load_state_dict(to_diffusers_adapter_keys(state), strict=True)
    reference = UNetMotionModel.from_unet2d(unet, adapter).eval()
    for module in reference.modules():  # see _PerFrameNorm: the one known difference, aligned here
        if type(module).__name__ == "AnimateDiffTransformer3D":
            module.norm = _PerFrameNorm(module.norm)

    frames, halves = 8, 2
    g = torch.Generator().manual_seed(0)
    sample = torch.randn(halves, 4, frames, 16, 16, generator=g)
    context = torch.randn(halves, 8, 32, generator=g)
    t = torch.tensor(481)
    rows = sample.permute(0, 2, 1, 3, 4).reshape(halves * frames, 4, 16, 16)
    row_context = context.repeat_interleave(frames, dim=0)  # diffusers' AnimateDiff pipeline does the same
    with torch.no_grad():
        expected = reference(sample, t, encoder_hidden_states=row_context).sample  # (B, C, F, H, W)
        plain = unet(rows, t, encoder_hidden_states=row_context).sample
        with inject(unet, load_motion_module(state), frames=frames):
            ours = unet(rows, t, encoder_hidden_states=row_context).sample
        assert torch.equal(unet(rows, t, encoder_hidden_states=row_context).sample, plain)
    ours = ours.reshape(halves, frames, 4, 16, 16).permute(0, 2, 1, 3, 4)
    assert not torch.allclose(ours, plain.reshape(halves, frames, 4, 16, 16).permute(0, 2, 1, 3, 4), atol=1e-3)
    torch.testing.assert_close(ours, expected, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("family", ["v1", "v3"])
def test_diffusers_unet_round_trip(family):
    from tests.rig.hf import build_diffusers_unet

    unet = build_diffusers_unet(seed=1)
    x = torch.randn(16, 4, 16, 16, generator=torch.Generator().manual_seed(1))
    c = torch.randn(16, 8, 32, generator=torch.Generator().manual_seed(2))
    keys = list(unet.state_dict())
    with torch.no_grad():
        plain = unet(x, 500, encoder_hidden_states=c).sample
        try:
            patch = inject(unet, load_motion_module(_fixture_modules()[family]), frames=8)
            patched = unet(x, 500, encoder_hidden_states=c).sample
            assert list(unet.state_dict()) == keys
        finally:
            patch.restore()
        assert not torch.allclose(patched, plain, atol=1e-3)
        assert torch.equal(unet(x, 500, encoder_hidden_states=c).sample, plain)


def test_noise_schedule_returned_as_data(fixture_unet_and_io):
    from safetensors.torch import load_file

    unet, _ = fixture_unet_and_io
    tables = load_file(str(require_fixture("animatediff/tiny/inject/alphas_cumprod.safetensors")))
    with inject(unet, load_motion_module(_fixture_modules()["v3"]), frames=8) as patch:
        schedule = patch.alphas_cumprod
    assert schedule.shape == (1000,)
    assert any(torch.allclose(schedule.double(), t.double(), atol=1e-7) for t in tables.values()), list(tables)


def test_motion_loras_applied_with_the_patch_and_removed_with_it(fixture_unet_and_io):
    from tests.test_motion_lora import _original_lora

    unet, io = fixture_unet_and_io
    mm = load_motion_module(_fixture_modules()["v2"])
    weights = {k: v.clone() for k, v in mm.state_dict().items()}
    lora = _original_lora(seed=5, channels=(32, 32, 32, 32))
    with inject(unet, mm, frames=8) as patch:
        without = _run_ldm(unet, io)
    with inject(unet, mm, frames=8, loras=[(lora, 0.8), (_original_lora(seed=6, channels=(32, 32, 32, 32)), 0.5)]):
        with_loras = _run_ldm(unet, io)
    assert not patch.active and not torch.allclose(with_loras, without, atol=1e-4)
    assert all(torch.equal(mm.state_dict()[k], v) for k, v in weights.items())


@pytest.mark.parametrize("family", ["sdxl", "hotshotxl"])
def test_sdxl_families_on_a_three_level_unet(family):
    """SDXL layout (three levels, no attention at the top level): placement by structure, round trip."""
    from tests.rig.hf import build_diffusers_unet

    unet = build_diffusers_unet(
        seed=2,
        block_out_channels=(32, 32, 32),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    )
    mm = build_motion_module(family, channels=(32, 32, 32))
    x = torch.randn(16, 4, 16, 16, generator=torch.Generator().manual_seed(1))
    c = torch.randn(16, 8, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        plain = unet(x, 500, encoder_hidden_states=c).sample
        with inject(unet, mm, frames=8) as patch:
            assert [s.name for s in patch.layout.down[0]] == ["down_blocks.0.resnets.0", "down_blocks.0.resnets.1"]
            patched = unet(x, 500, encoder_hidden_states=c).sample
        assert not torch.allclose(patched, plain, atol=1e-3)
        assert torch.equal(unet(x, 500, encoder_hidden_states=c).sample, plain)
    with pytest.raises(IncompatibleModelError, match="SD1.5"):
        inject(unet, build_motion_module("v2", channels=(32, 32, 32, 32)), frames=8)
