"""Cross-frame attention on both UNet kinds: sites, exactness, hand-computed references, undo, memory."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch

from lib_vidsd.attention import CrossFrameAttention, crossframe, self_attention_sites
from lib_vidsd.errors import ConfigError, IncompatibleModelError
from lib_vidsd.patching import PatchError, is_patched, restore_all
from tests.rig.ldm import ldm_inputs

SIZE = 8  # latent side: attention at 64, 16 and 4 tokens, the middle block at 1
TOL = {"atol": 1e-5, "rtol": 1e-5}


@dataclass
class Rig:
    """A tiny UNet of one kind and how to call it with a fixed timestep and prompt: ``x (B, 4, 8, 8)``."""

    kind: str
    unet: torch.nn.Module
    call: Callable[[torch.Tensor], torch.Tensor]


@pytest.fixture(scope="module")
def _pristine_diffusers_unet():
    from lib_vidsd.pipelines.tiny import build_diffusers_unet

    return build_diffusers_unet(seed=0)


@pytest.fixture(params=["ldm", "diffusers"])
def rig(request) -> Rig:
    _, t, c = ldm_inputs(batch=4, size=SIZE, seed=100)
    if request.param == "ldm":
        unet = request.getfixturevalue("ldm_unet")

        def call(x):
            return unet(x, timesteps=t[: len(x)], context=c[: len(x)])
    else:
        unet = copy.deepcopy(request.getfixturevalue("_pristine_diffusers_unet"))

        def call(x):
            return unet(x, t[: len(x)], encoder_hidden_states=c[: len(x)]).sample

    return Rig(request.param, unet, torch.no_grad()(call))


def _latents(seed: int, batch: int = 2) -> torch.Tensor:
    return ldm_inputs(batch=batch, size=SIZE, seed=seed)[0]


def _capture(module: torch.nn.Module, calls: list[tuple[torch.Tensor, torch.Tensor]]):
    """A test-only hook keeping each call's ``(input hidden states, output)``; returns its handle."""
    return module.register_forward_hook(lambda mod, args, out: calls.append((args[0].clone(), out.clone())))


def _render(xfa: CrossFrameAttention, rig: Rig, index: int, *latents: torch.Tensor) -> list[torch.Tensor]:
    """One frame: a UNet call per latent (one per sampling step)."""
    xfa.begin_frame(index)
    outs = [rig.call(x) for x in latents]
    xfa.end_frame()
    return outs


def _by_hand(module: torch.nn.Module, x: torch.Tensor, refs: list[torch.Tensor]) -> torch.Tensor:
    """Self-attention with keys/values from ``[x, *refs]`` along tokens, in plain einsum/softmax maths."""
    kv = torch.cat([x, *refs], dim=1)
    q, k, v = module.to_q(x), module.to_k(kv), module.to_v(kv)
    heads = module.heads
    q, k, v = (t.reshape(t.shape[0], t.shape[1], heads, -1).permute(0, 2, 1, 3) for t in (q, k, v))
    weights = (torch.einsum("bhid,bhjd->bhij", q, k) * q.shape[-1] ** -0.5).softmax(dim=-1)
    out = torch.einsum("bhij,bhjd->bhid", weights, v).permute(0, 2, 1, 3).flatten(2)
    return module.to_out[1](module.to_out[0](out))


def _attn1_input_shapes(rig: Rig, x: torch.Tensor) -> list[torch.Size]:
    """The input shape of every self-attention call of one unpatched UNet call."""
    shapes: list[torch.Size] = []
    hooks = [
        m.register_forward_hook(lambda mod, a, o: shapes.append(a[0].shape)) for _, m in self_attention_sites(rig.unet)
    ]
    rig.call(x)
    for hook in hooks:
        hook.remove()
    return shapes


def _state(unet: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in unet.state_dict().items()}


def _assert_pristine(rig: Rig, state: dict[str, torch.Tensor], x: torch.Tensor, expected: torch.Tensor) -> None:
    after = rig.unet.state_dict()
    assert list(after) == list(state) and all(torch.equal(after[k], state[k]) for k in state)
    assert not is_patched(rig.unet)
    assert not any("forward" in vars(m) for _, m in self_attention_sites(rig.unet))
    assert torch.equal(rig.call(x), expected)


# --- sites -------------------------------------------------------------------------------------


def test_sites_are_the_attn1_of_every_transformer_block(rig):
    sites = self_attention_sites(rig.unet)
    blocks = [m for m in rig.unet.modules() if type(m).__name__ == "BasicTransformerBlock"]
    assert len(sites) == len(blocks) == 16
    assert {id(m) for _, m in sites} == {id(b.attn1) for b in blocks}
    assert all(name.endswith(".attn1") and rig.unet.get_submodule(name) is m for name, m in sites)
    parts = [name.split(".")[0] for name, _ in sites]  # in the order a forward pass runs them
    down, mid, up = crossframe._PARTS[rig.kind]
    assert parts == [down] * 6 + [mid] + [up] * 9


def test_other_models_refused():
    with pytest.raises(IncompatibleModelError, match="not a UNet"):
        self_attention_sites(torch.nn.Linear(2, 2))


# --- numerics ----------------------------------------------------------------------------------


def test_first_frame_is_bit_identical_to_the_plain_unet(rig):
    x = _latents(1)
    plain = rig.call(x)
    with CrossFrameAttention(rig.unet) as xfa:
        assert torch.equal(rig.call(x), plain)  # outside a frame
        (out,) = _render(xfa, rig, 0, x)
        assert xfa.stored_bytes() > 0 and xfa.reference_frames == {"first": 0, "previous": 0}
    assert torch.equal(out, plain)


def test_references_match_a_hand_computation(rig):
    """Frame 1 attends to [itself, frame 0] (frame 0 once: it is first and previous); frame 2 to
    [itself, frame 0, frame 1]. References are stored in float16, so the hand computation rounds them too."""
    module = self_attention_sites(rig.unet)[3][1]
    latents = [_latents(seed) for seed in (1, 2, 3)]
    calls: list[tuple[torch.Tensor, torch.Tensor]] = []
    hook = _capture(module, calls)
    with CrossFrameAttention(rig.unet, references=("first", "previous")) as xfa:
        outs = [_render(xfa, rig, i, x)[0] for i, x in enumerate(latents)]
    hook.remove()
    inputs = [x for x, _ in calls]
    stored = [x.half().float() for x in inputs]
    with torch.no_grad():
        torch.testing.assert_close(calls[1][1], _by_hand(module, inputs[1], [stored[0]]), **TOL)
        torch.testing.assert_close(calls[2][1], _by_hand(module, inputs[2], stored[:2]), **TOL)
    for x, out in zip(latents[1:], outs[1:], strict=True):
        assert (out - rig.call(x)).abs().max() > 1e-3


def test_identical_reference_leaves_attention_unchanged(rig, monkeypatch):
    """Softmax attention over [K, K, …], [V, V, …] equals attention over K, V: rendering the same input
    again with itself as reference gives the plain output, while the cross-frame path really runs."""
    attended = []
    attend = crossframe._attend
    monkeypatch.setattr(crossframe, "_attend", lambda *a: attended.append(1) or attend(*a))
    x = _latents(1)
    plain = rig.call(x)
    with CrossFrameAttention(rig.unet, storage_dtype=torch.float32) as xfa:
        for index in range(3):
            attended.clear()
            (out,) = _render(xfa, rig, index, x)
            assert len(attended) == (0 if index == 0 else 16)
            torch.testing.assert_close(out, plain, **TOL)


# --- undo --------------------------------------------------------------------------------------


def test_restore_is_bit_identical(rig):
    x = _latents(1)
    plain, state = rig.call(x), _state(rig.unet)
    xfa = CrossFrameAttention(rig.unet)
    assert is_patched(rig.unet) and all("forward" in vars(m) for _, m in xfa.sites)
    _render(xfa, rig, 0, _latents(2))
    (patched,) = _render(xfa, rig, 1, x)
    assert list(rig.unet.state_dict()) == list(state) and not torch.equal(patched, plain)
    xfa.restore()
    xfa.restore()  # idempotent
    assert not xfa.active and xfa.stored_bytes() == 0
    _assert_pristine(rig, state, x, plain)
    with pytest.raises(PatchError, match="already applied"):
        with CrossFrameAttention(rig.unet):
            CrossFrameAttention(rig.unet)
    assert not is_patched(rig.unet)


def test_restored_after_an_exception_inside_a_forward(rig):
    x = _latents(1)
    plain, state = rig.call(x), _state(rig.unet)
    module = self_attention_sites(rig.unet)[-1][1]

    def explode(mod, args, out):
        raise RuntimeError("interrupted mid-forward")

    with pytest.raises(RuntimeError, match="mid-forward"):
        with CrossFrameAttention(rig.unet) as xfa:
            _render(xfa, rig, 0, _latents(2))
            module.register_forward_hook(explode)
            _render(xfa, rig, 1, x)
    module._forward_hooks.clear()
    _assert_pristine(rig, state, x, plain)


def test_restore_all_cleans_a_leftover_patch(rig):
    x = _latents(1)
    plain, state = rig.call(x), _state(rig.unet)
    xfa = CrossFrameAttention(rig.unet)  # a crashed job never restored it
    _render(xfa, rig, 0, _latents(2))
    assert restore_all(rig.unet) == 1
    assert not xfa.active and xfa.stored_bytes() == 0
    _assert_pristine(rig, state, x, plain)


# --- robustness --------------------------------------------------------------------------------


def test_missing_reference_and_other_rows_run_plain(rig):
    """Frame 1 has a second step frame 0 lacked; frame 2 has three batch rows where the references have two:
    those calls run the modules' own forward, bit for bit."""
    x0, x1, step2 = _latents(1), _latents(2), _latents(3)
    single = _latents(4, batch=3)
    with CrossFrameAttention(rig.unet) as xfa:
        _render(xfa, rig, 0, x0)
        first, second = _render(xfa, rig, 1, x1, step2)
        (one_row,) = _render(xfa, rig, 2, single)
    assert not torch.equal(first, rig.call(x1))
    assert torch.equal(second, rig.call(step2))
    assert torch.equal(one_row, rig.call(single))


def test_disabled_runs_plain_and_keeps_recording(rig):
    x = _latents(2)
    plain = rig.call(x)
    with CrossFrameAttention(rig.unet) as xfa:
        xfa.enabled = False
        _render(xfa, rig, 0, _latents(1))
        assert xfa.reference_frames == {"first": 0, "previous": 0}
        (off,) = _render(xfa, rig, 1, x)
        xfa.enabled = True
        (on,) = _render(xfa, rig, 2, x)
    assert torch.equal(off, plain) and not torch.equal(on, plain)


def test_max_tokens_leaves_large_sites_alone(rig):
    x0, x1 = _latents(1), _latents(2)
    plain = rig.call(x1)
    shapes = _attn1_input_shapes(rig, x0)
    with CrossFrameAttention(rig.unet, max_tokens=0) as xfa:
        _render(xfa, rig, 0, x0)
        assert xfa.stored_bytes() == 0
        assert torch.equal(_render(xfa, rig, 1, x1)[0], plain)
    first_site = self_attention_sites(rig.unet)[0][1]  # 64 tokens, and nothing before it changes
    calls: list[tuple[torch.Tensor, torch.Tensor]] = []
    hook = _capture(first_site, calls)
    rig.call(x1)
    with CrossFrameAttention(rig.unet, max_tokens=16) as xfa:
        _render(xfa, rig, 0, x0)
        assert xfa.stored_bytes() == sum(s.numel() * 2 for s in shapes if s[1] <= 16)
        (out,) = _render(xfa, rig, 1, x1)
    hook.remove()
    assert torch.equal(calls[-1][1], calls[0][1]) and not torch.equal(out, plain)


def test_only_first_and_previous_are_kept(rig):
    """bytes per frame = Σ over calls of rows × tokens × channels × 2 (float16), as documented."""
    per_frame = sum(s.numel() * 2 for s in _attn1_input_shapes(rig, _latents(0)))
    with CrossFrameAttention(rig.unet) as xfa:
        for index in range(5):
            xfa.begin_frame(index)
            rig.call(_latents(index))
            assert xfa.frame_index == index
            assert xfa.stored_bytes() == per_frame * min(index + 1, 3)  # first, previous, this one
            xfa.end_frame()
            assert xfa.reference_frames == {"first": 0, "previous": index}
            assert xfa.stored_bytes() == per_frame * min(index + 1, 2)
    with CrossFrameAttention(rig.unet, references=("first",)) as xfa:
        for index in range(3):
            _render(xfa, rig, index, _latents(index))
            assert xfa.reference_frames == {"first": 0} and xfa.stored_bytes() == per_frame


def test_arguments_checked(ldm_unet):
    with pytest.raises(ConfigError, match="references"):
        CrossFrameAttention(ldm_unet, references=("first", "last"))
    with pytest.raises(ConfigError, match="max_tokens"):
        CrossFrameAttention(ldm_unet, max_tokens=-1)
    with pytest.raises(ConfigError, match="storage_dtype"):
        CrossFrameAttention(ldm_unet, storage_dtype=torch.int8)
    assert not is_patched(ldm_unet)
