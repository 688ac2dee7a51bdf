"""Combine-pattern cross-frame attention: DiffSynth fixtures, an independent re-computation, chunks and the
per-step cache, CFG halves, undo on both UNet kinds."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch

from lib_vidsd.attention import CombineAttention, CrossFrameAttention, parse_combine_pattern, pattern_sources
from lib_vidsd.attention import self_attention_sites as sites_of
from lib_vidsd.errors import ConfigError
from lib_vidsd.patching import PatchError, is_patched, restore_all
from tests.rig.fixtures import require_fixture
from tests.rig.ldm import ldm_inputs

SIZE = 8  # latent side: attention at 64, 16 and 4 tokens, the middle block at 1
TOL = {"atol": 1e-5, "rtol": 1e-5}
R = "reference_0"


# --- rigs --------------------------------------------------------------------------------------


@dataclass
class Rig:
    """A tiny UNet of one kind; ``call(x, context)`` runs it at a fixed timestep: ``x (B, 4, 8, 8)``."""

    kind: str
    unet: torch.nn.Module
    call: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@pytest.fixture(scope="module")
def _pristine_diffusers_unet():
    from lib_vidsd.pipelines.tiny import build_diffusers_unet

    return build_diffusers_unet(seed=0)


@pytest.fixture(params=["ldm", "diffusers"])
def rig(request) -> Rig:
    if request.param == "ldm":
        unet = request.getfixturevalue("ldm_unet")

        def call(x, c, t=481.25):
            return unet(x, timesteps=torch.full((len(x),), t), context=c)
    else:
        unet = copy.deepcopy(request.getfixturevalue("_pristine_diffusers_unet"))

        def call(x, c, t=481.25):
            return unet(x, torch.tensor(t), encoder_hidden_states=c).sample

    return Rig(request.param, unet, torch.no_grad()(call))


def _clip(frames: int, seed: int = 1) -> torch.Tensor:
    return ldm_inputs(batch=frames, size=SIZE, seed=seed)[0]


def _prompts(rows: int) -> torch.Tensor:
    """``(cond, uncond)`` contexts ``(rows, 8, 32)`` each: one prompt for every row of a half."""
    cond, uncond = ldm_inputs(batch=2, size=SIZE, seed=7)[2].split(1)
    return cond.expand(rows, -1, -1), uncond.expand(rows, -1, -1)


def _cfg(rig: Rig, x: torch.Tensor, **kwargs) -> torch.Tensor:
    """One UNet call with both CFG halves batched as A1111 does (``[cond…, uncond…]``)."""
    cond, uncond = _prompts(len(x))
    return rig.call(torch.cat([x, x]), torch.cat([cond, uncond]), **kwargs)


class _Holder(torch.nn.Module):
    """The smallest tree ``self_attention_sites`` reads as a UNet of ``kind``, around ``block``."""

    def __init__(self, kind: str, block: torch.nn.Module):
        super().__init__()
        down, up = ("input_blocks", "output_blocks") if kind == "ldm" else ("down_blocks", "up_blocks")
        setattr(self, down, torch.nn.ModuleList([block]))
        setattr(self, up, torch.nn.ModuleList())


def _state(unet: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in unet.state_dict().items()}


def _assert_pristine(rig: Rig, state: dict[str, torch.Tensor], x: torch.Tensor, expected: torch.Tensor) -> None:
    after = rig.unet.state_dict()
    assert list(after) == list(state) and all(torch.equal(after[k], state[k]) for k in state)
    assert not is_patched(rig.unet)
    assert not any("forward" in vars(m) for m in rig.unet.modules())
    assert torch.equal(_cfg(rig, x), expected)


# --- patterns ----------------------------------------------------------------------------------


def test_patterns_parse_and_gather_with_diffsynths_edge_rules():
    assert parse_combine_pattern("[-10000, reference_0, -1, 0, 1]") == (-10000, R, -1, 0, 1)
    assert parse_combine_pattern(["2", 0, "reference_1"]) == (2, 0, "reference_1")
    assert [pattern_sources([-1, 0, 1], i, 5) for i in (0, 2, 4)] == [[0, 0, 1], [1, 2, 3], [3, 4, 4]]
    assert pattern_sources([2, 0, -2, "reference_1"], 3, 5) == [4, 3, 1, "reference_1"]
    assert pattern_sources([-10000, 0], 12000, 12001) == [0, 12000]  # the first frame on any clip length
    for bad in ([], [-1, 1], [0, "ref_0"], [0, True], [0, 1.5], "0, first", 7):
        with pytest.raises(ConfigError, match="combine_pattern"):
            parse_combine_pattern(bad)


def test_arguments_checked(ldm_unet):
    with pytest.raises(ConfigError, match="combine_pattern"):
        CombineAttention(ldm_unet, [0], num_frames=3, group_size=2)
    with pytest.raises(ConfigError, match="combine_pattern"):
        CombineAttention(ldm_unet, num_frames=3)
    with pytest.raises(ConfigError, match="num_frames"):
        CombineAttention(ldm_unet, [-1, 0])
    with pytest.raises(ConfigError, match="group_size"):
        CombineAttention(ldm_unet, group_size=0)
    with pytest.raises(ConfigError, match="group_text"):
        CombineAttention(ldm_unet, group_size=2, group_text="first")
    with pytest.raises(ConfigError, match="group_text"):
        CombineAttention(ldm_unet, [0], num_frames=2, group_text="mean")
    with pytest.raises(ConfigError, match="attention_chunk"):
        CombineAttention(ldm_unet, [0], num_frames=2, attention_chunk=0)
    assert not is_patched(ldm_unet)
    with CombineAttention(ldm_unet, [-1, 0], num_frames=4) as cfa:
        for frames in ([], [0, 4], [2, 1], [1, 1]):
            with pytest.raises(ConfigError, match="frames"):
                cfa.set_batch(frames)
    with CombineAttention(ldm_unet, group_size=2) as cfa:
        with pytest.raises(ConfigError, match="references"):
            cfa.set_batch([0, 1], references=[0])


# --- the DiffSynth fixtures --------------------------------------------------------------------


def _easynlp_attention(kind: str, weights: dict[str, torch.Tensor]) -> torch.nn.Module:
    """The fixture's self-attention (query dim 32, 2 heads of 16) as ldm ``CrossAttention`` or diffusers
    ``Attention``, holding the stored weights."""
    if kind == "ldm":
        from ldm.modules.attention import CrossAttention

        attn = CrossAttention(query_dim=32, heads=2, dim_head=16)
    else:
        from diffusers.models.attention_processor import Attention

        attn = Attention(query_dim=32, heads=2, dim_head=16)
    attn.load_state_dict({k.removeprefix("attn1."): v for k, v in weights.items() if k.startswith("attn1.")})
    return attn.eval()


@pytest.mark.parametrize("kind", ["ldm", "diffusers"])
def test_easynlp_combine_patterns(kind):
    """Per pattern: EasyNLP's gather table (``.sources``); the kept slot (``.output``) from the pattern mode,
    every frame in one call with the references; every slot (``.output_all_slots``) from EasyNLP's own slot
    batches rendered with groups of ``len(pattern)``."""
    from safetensors.torch import load_file

    data = load_file(str(require_fixture("stylize/cross_frame_easynlp.safetensors")))
    meta = json.loads(require_fixture("stylize/cross_frame_attention.json").read_text())["easynlp_combine_pattern"]
    tol = meta["suggested_tolerance"]
    attn, block = _easynlp_attention(kind, data), torch.nn.Module()
    block.attn1 = attn
    holder = _Holder(kind, block)
    frames, refs = data["frames"], data["references"]
    n = len(frames)
    for name, spec in meta["patterns"].items():
        pattern = spec["pattern"]
        gathered = [pattern_sources(pattern, i, n) for i in range(n)]
        as_ints = [[s if isinstance(s, int) else -1 - int(s.split("_")[1]) for s in row] for row in gathered]
        assert as_ints == data[f"{name}.sources"].tolist()
        with torch.no_grad(), CombineAttention(holder, pattern, num_frames=n) as cfa:
            with cfa.batch(range(n), references=range(len(refs))):
                kept = attn(torch.cat([refs, frames]))[len(refs) :]
        slots = torch.stack([frames[s] if isinstance(s, int) else refs[int(s[10:])] for r in gathered for s in r])
        with torch.no_grad(), CombineAttention(holder, group_size=len(pattern)) as cfa:
            with cfa.batch(range(len(slots))):
                every = attn(slots).unflatten(0, (n, len(pattern)))
        torch.testing.assert_close(kept, data[f"{name}.output"], **tol)
        torch.testing.assert_close(every, data[f"{name}.output_all_slots"], **tol)
    assert not is_patched(holder)


def _studio_block(kind: str, weights: dict[str, torch.Tensor]) -> torch.nn.Module:
    """The fixture's Studio ``AttentionBlock`` (GroupNorm of 8 groups, linear projections, one transformer
    block with GEGLU feed-forward) as a diffusers ``Transformer2DModel`` or an ldm ``SpatialTransformer``."""
    names = {"attn1.to_out.": "attn1.to_out.0.", "attn2.to_out.": "attn2.to_out.0.", "act_fn.proj.": "ff.net.0.proj."}
    names["ff."] = "ff.net.2."
    state = {}
    for key, value in weights.items():
        if not key.startswith("block."):
            continue
        key = key.removeprefix("block.")
        for old, new in names.items():
            if key.startswith(f"transformer_blocks.0.{old}"):
                key = key.replace(old, new, 1)
                break
        state[key] = value
    if kind == "diffusers":
        from diffusers import Transformer2DModel

        block = Transformer2DModel(
            num_attention_heads=2, attention_head_dim=16, in_channels=32, num_layers=1, cross_attention_dim=24,
            norm_num_groups=8, use_linear_projection=True,
        )  # fmt: skip
    else:
        from ldm.modules.attention import SpatialTransformer

        block = SpatialTransformer(32, 2, 16, context_dim=24, use_linear=True, use_checkpoint=False)
        block.norm = torch.nn.GroupNorm(8, 32, eps=1e-6)
    block.load_state_dict(state, strict=True)
    return block.eval()


@pytest.mark.parametrize("kind", ["ldm", "diffusers"])
def test_studio_group_sizes(kind):
    """Studio's group cross-frame attention (mean text in ``attn2``) for group sizes 2, 3 and 4, and the
    plain block outside a batch."""
    from safetensors.torch import load_file

    data = load_file(str(require_fixture("stylize/cross_frame_studio.safetensors")))
    meta = json.loads(require_fixture("stylize/cross_frame_attention.json").read_text())["studio_group_cross_frame"]
    tol = meta["suggested_tolerance"]
    block = _studio_block(kind, data)
    x, text = data["input"], data["text_emb"]

    def run():
        with torch.no_grad():
            return (
                block(x, context=text) if kind == "ldm" else block(x, encoder_hidden_states=text, return_dict=False)[0]
            )

    torch.testing.assert_close(run(), data["out.per_frame"], **tol)
    holder = _Holder(kind, block)
    for size in (2, 3, 4):
        expected = data[f"out.cross_frame.unet_batch_size_{size}"]
        with CombineAttention(holder, group_size=size, group_text="mean") as cfa, cfa.batch(range(4)):
            out = run()
        torch.testing.assert_close(out, expected, **tol)
        with CombineAttention(holder, group_size=size) as cfa, cfa.batch(range(4)):
            assert (run() - expected).abs().max() > 1e-3  # per-frame text is a different thing
    assert not is_patched(holder) and not any("forward" in vars(m) for m in block.modules())


# --- against an independent computation --------------------------------------------------------

#: (pattern, clip length, chunk, what each frame of the chunk attends to), tables written by hand:
#: clamping at the clip's start and end, the chunk's last frame standing in for later frames.
CASES = [
    ([-10000, R, -1, 0, 1], 5, [0, 1, 2, 3, 4], [[0, R, 0, 0, 1], [0, R, 0, 1, 2], [0, R, 1, 2, 3], [0, R, 2, 3, 4], [0, R, 3, 4, 4]]),
    ([2, 0, -2], 8, [0, 1, 2, 3], [[2, 0, 0], [3, 1, 0], [3, 2, 0], [3, 3, 1]]),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=["whole_clip", "chunk"])
def test_matches_the_modules_own_attention_over_concatenated_tokens(rig, case):
    """At a self-attention site, each frame's output equals the unpatched module run with its sources' input
    tokens (same CFG half, reference row included) as the context: diffusers' own processor, ldm's own
    einsum attention."""
    pattern, n, chunk, table = case
    refs = 1 if R in pattern else 0
    site = sites_of(rig.unet)[3][1]  # 16 tokens, after three cross-frame sites
    calls = []
    hook = site.register_forward_hook(lambda mod, args, out: calls.append((args[0].clone(), out.clone())))
    x = torch.cat([_clip(refs, seed=9), _clip(len(chunk))])
    with CombineAttention(rig.unet, pattern, num_frames=n) as cfa, cfa.batch(chunk, references=range(refs)):
        patched = _cfg(rig, x)
    hook.remove()
    ((inputs, outputs),) = calls
    per = refs + len(chunk)
    rows = {R: 0} | {frame: refs + i for i, frame in enumerate(chunk)}
    with torch.no_grad():
        for half in (0, 1):
            tokens = inputs[half * per : (half + 1) * per]
            for frame, sources in zip(chunk, table, strict=True):
                context = torch.cat([tokens[rows[s]] for s in sources])[None]
                kwargs = {"context": context} if rig.kind == "ldm" else {"encoder_hidden_states": context}
                expected = site(tokens[rows[frame]][None], **kwargs)
                torch.testing.assert_close(outputs[half * per + rows[frame]][None], expected, **TOL)
    assert (patched - _cfg(rig, x)).abs().max() > 1e-3


def test_halves_are_never_pooled(rig):
    """The pattern applies within each CFG half: both halves in one call give what each half gives alone."""
    x = _clip(4)
    cond, uncond = _prompts(4)
    with CombineAttention(rig.unet, [-10000, -1, 0, 1], num_frames=4) as cfa, cfa.batch(range(4)):
        both = _cfg(rig, x)
        alone = torch.cat([rig.call(x, cond), rig.call(x, uncond)])
    torch.testing.assert_close(both, alone, **TOL)


def test_pattern_zero_and_groups_of_one_are_bit_identical(rig):
    x = _clip(3)
    plain = _cfg(rig, x)
    with CombineAttention(rig.unet, [0], num_frames=3) as cfa, cfa.batch(range(3)):
        assert torch.equal(_cfg(rig, x), plain)
    with CombineAttention(rig.unet, group_size=1, group_text="mean") as cfa, cfa.batch(range(3)):
        assert torch.equal(_cfg(rig, x), plain)
    with CombineAttention(rig.unet, [-1, 0], num_frames=3) as cfa:
        assert torch.equal(_cfg(rig, x), plain)  # outside a batch
        cfa.set_batch(range(3))
        cfa.enabled = False
        assert torch.equal(_cfg(rig, x), plain)


# --- chunks and the per-step cache -------------------------------------------------------------


def _render(cfa: CombineAttention, rig: Rig, latents, ref, chunks, *, split_cfg=False, t=481.25) -> torch.Tensor:
    """One step over ``chunks`` (the first one carries the reference row): the frames' outputs of each half,
    ``(2, frames, 4, 8, 8)``."""
    outs = []
    for c, chunk in enumerate(chunks):
        refs = [0] if c == 0 and ref is not None else []
        x = torch.cat([ref, latents[chunk]]) if refs else latents[chunk]
        with cfa.batch(chunk, references=refs):
            if split_cfg:
                cond, uncond = _prompts(len(x))
                out = torch.stack([rig.call(x, cond, t=t), rig.call(x, uncond, t=t)])
            else:
                out = _cfg(rig, x, t=t).unflatten(0, (2, len(x)))
        outs.append(out[:, len(refs) :])
    return torch.cat(outs, dim=1)


@pytest.mark.parametrize("split_cfg", [False, True], ids=["cfg_batched", "cfg_split"])
def test_chunks_equal_the_whole_batch(rig, split_cfg):
    """Causal pattern with the first frame and a reference: chunks of 3, 2, 2 frames (in one or two calls
    per chunk) give the whole batch's outputs; so do groups cut at group boundaries; so does gathering one
    row at a time. The cache keeps only what later chunks reach."""
    latents, ref = _clip(7), _clip(1, seed=9)
    pattern = [-10000, R, -2, -1, 0]
    with CombineAttention(rig.unet, pattern, num_frames=7) as cfa:
        whole = _render(cfa, rig, latents, ref, [list(range(7))])
        cfa.begin_step()
        chunked = _render(cfa, rig, latents, ref, [[0, 1, 2], [3, 4], [5, 6]], split_cfg=split_cfg)
        assert cfa.cached_sources == {R}  # the last chunk leaves only the step's reference
        cfa.begin_step()
        _render(cfa, rig, latents, ref, [[0, 1, 2]])
        assert cfa.cached_sources == {0, 1, 2, R}
        _render(cfa, rig, latents, None, [[3, 4]])
        assert cfa.cached_sources == {0, 3, 4, R}
    with CombineAttention(rig.unet, pattern, num_frames=7, attention_chunk=1) as cfa:
        one_by_one = _render(cfa, rig, latents, ref, [list(range(7))])
    torch.testing.assert_close(chunked, whole, **TOL)
    torch.testing.assert_close(one_by_one, whole, **TOL)
    assert (whole - _cfg(rig, latents).unflatten(0, (2, 7))).abs().max() > 1e-3
    with CombineAttention(rig.unet, group_size=2, group_text="mean") as cfa:
        whole = _render(cfa, rig, latents, None, [list(range(7))])
        chunked = _render(cfa, rig, latents, None, [[0, 1, 2, 3], [4, 5, 6]], split_cfg=split_cfg)
    torch.testing.assert_close(chunked, whole, **TOL)


def test_reference_keys_computed_once_per_step(rig):
    """Two steps over three chunks: every site projects each frame's and the reference's keys once per step
    and half; later chunks use the cached reference; a new step needs the reference again."""
    latents, ref = _clip(5), _clip(1, seed=9)
    projected: dict[str, int] = {}
    hooks = [
        site.to_k.register_forward_hook(lambda m, a, o, name=name: projected.__setitem__(name, projected.get(name, 0) + len(a[0])))
        for name, site in sites_of(rig.unet)
    ]  # fmt: skip
    chunks = [[0, 1], [2, 3], [4]]
    with CombineAttention(rig.unet, [R, -1, 0, 1], num_frames=5) as cfa:
        steps = []
        for t in (481.25, 301.0):
            cfa.begin_step()
            steps.append(_render(cfa, rig, latents, ref, chunks, t=t))
        assert set(projected.values()) == {2 * 2 * (5 + 1)}  # 2 steps × 2 halves × (frames + reference)
        for hook in hooks:
            hook.remove()
        cfa.begin_step()
        with pytest.raises(ConfigError, match="reference_0"), cfa.batch([0, 1]):
            _cfg(rig, latents[:2])
        cfa.begin_step()
        _render(cfa, rig, latents, ref, [[0, 1]])
        with pytest.raises(ConfigError, match="increasing frame order"), cfa.batch([3, 4]):
            _cfg(rig, latents[3:])  # frame 2 was never rendered in this step
        for step, t in zip(steps, (481.25, 301.0), strict=True):
            cfa.begin_step()
            torch.testing.assert_close(step[:, :2], _render(cfa, rig, latents, ref, [[0, 1]], t=t), **TOL)


def test_chunk_major_rendering_matches_evaluations_by_order(rig):
    """A1111 samples a chunk to the end before the next: without begin_step the n-th UNet evaluation of a
    chunk uses the n-th evaluation's cache of the earlier chunk, here for two sampling steps."""
    latents, ref = _clip(5), _clip(1, seed=9)
    pattern = [-10000, R, -1, 0]
    timesteps = (481.25, 301.0)
    with CombineAttention(rig.unet, pattern, num_frames=5) as cfa:
        step_major = []
        for t in timesteps:
            cfa.begin_step()
            step_major.append(_render(cfa, rig, latents, ref, [[0, 1, 2], [3, 4]], t=t))
        cfa.begin_step()
        chunk_major: list[list[torch.Tensor]] = [[], []]
        for chunk, refs in (([0, 1, 2], [0]), ([3, 4], [])):
            x = torch.cat([ref, latents[chunk]]) if refs else latents[chunk]
            with cfa.batch(chunk, references=refs):
                for i, t in enumerate(timesteps):
                    chunk_major[i].append(_cfg(rig, x, t=t).unflatten(0, (2, len(x)))[:, len(refs) :])
    for expected, parts in zip(step_major, chunk_major, strict=True):
        torch.testing.assert_close(torch.cat(parts, dim=1), expected, **TOL)


# --- undo --------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["pattern", "groups"])
def test_restore_is_bit_identical(rig, mode):
    x = _clip(4)
    plain, state = _cfg(rig, x), _state(rig.unet)
    options = (
        {"pattern": [-10000, -1, 0, 1], "num_frames": 4}
        if mode == "pattern"
        else {"group_size": 2, "group_text": "mean"}
    )
    cfa = CombineAttention(rig.unet, **options)
    assert is_patched(rig.unet)
    with cfa.batch(range(4)):
        patched = _cfg(rig, x)
    assert list(rig.unet.state_dict()) == list(state) and not torch.equal(patched, plain)
    cfa.restore()
    cfa.restore()  # idempotent
    assert not cfa.active and cfa.cache_bytes() == 0
    _assert_pristine(rig, state, x, plain)


def test_restored_after_an_exception_inside_the_patched_block(rig):
    x, ref = _clip(3), _clip(1, seed=9)
    plain, state = _cfg(rig, x), _state(rig.unet)
    site = sites_of(rig.unet)[-1][1]

    def explode(mod, args, out):
        raise RuntimeError("interrupted mid-forward")

    hook = site.register_forward_hook(explode)
    with pytest.raises(RuntimeError, match="mid-forward"):
        with CombineAttention(rig.unet, [-10000, R, -1, 0], num_frames=3) as cfa:
            with cfa.batch(range(3), references=[0]):
                _cfg(rig, torch.cat([ref, x]))
    hook.remove()
    _assert_pristine(rig, state, x, plain)


def test_restore_all_and_no_stacking_with_cross_frame_attention(rig):
    x = _clip(3)
    plain, state = _cfg(rig, x), _state(rig.unet)
    cfa = CombineAttention(rig.unet, group_size=3, group_text="mean")  # a crashed job never restored it
    cfa.set_batch(range(3))
    assert restore_all(rig.unet) == 1 and not cfa.active
    _assert_pristine(rig, state, x, plain)
    with CrossFrameAttention(rig.unet):
        with pytest.raises(PatchError, match="cross_frame_attention"):
            CombineAttention(rig.unet, [0], num_frames=1)
    with CombineAttention(rig.unet, [0], num_frames=1):
        with pytest.raises(PatchError, match="already applied"):
            CombineAttention(rig.unet, [0], num_frames=1)
    _assert_pristine(rig, state, x, plain)


def test_batch_layout_must_fit_the_call(rig):
    with CombineAttention(rig.unet, [-1, 0], num_frames=4) as cfa, cfa.batch(range(3)):
        with pytest.raises(ConfigError, match="rows"):
            _cfg(rig, _clip(2))
    assert not is_patched(rig.unet)
