"""The undo journal: hooks, instance forwards, attributes and buffers come back exactly."""

from __future__ import annotations

import pytest
import torch

from lib_vidsd.patching import MARKER, PatchError, find_layout, is_patched, open_patch, restore_all


class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.a = torch.nn.Linear(4, 4)
        self.norm = torch.nn.GroupNorm(2, 4)
        self.register_buffer("table", torch.arange(4.0))

    def forward(self, x):
        return self.norm(self.a(x).unsqueeze(-1)).squeeze(-1) + self.table


def _model():
    torch.manual_seed(0)
    return Tiny().eval()


def test_hooks_forward_attrs_and_buffers_restored():
    m = _model()
    x = torch.randn(3, 4)
    before = m(x)
    keys = list(m.state_dict())
    h = open_patch(m, "p")
    h.add_hook(m.a, lambda mod, args, out: out * 2)
    h.add_hook(m.a, lambda mod, args: (args[0] + 1,), pre=True)
    h.override_forward(m.norm, lambda self, x: x)
    h.set_attr(m, "table", torch.zeros(4))
    h.set_attr(m, "flag", 1)
    assert is_patched(m) and not torch.equal(m(x), before)
    assert list(m.state_dict()) == keys and torch.equal(m.state_dict()["table"], torch.zeros(4))
    h.restore()
    assert torch.equal(m(x), before)
    assert not is_patched(m) and MARKER not in vars(m) and "flag" not in vars(m) and "forward" not in vars(m.norm)
    assert torch.equal(m.table, torch.arange(4.0)) and list(m.state_dict()) == keys
    h.restore()  # idempotent


def test_class_never_touched():
    m, other = _model(), _model()
    forward = type(m.norm).forward
    with open_patch(m, "p") as h:
        h.override_forward(m.norm, lambda self, x: x * 0)
        assert type(m.norm).forward is forward
        x = torch.randn(2, 4, 1)
        assert torch.equal(other.norm(x), torch.nn.GroupNorm.forward(other.norm, x))


def test_same_patch_twice_is_an_error_and_used_after_restore_too():
    m = _model()
    h = open_patch(m, "motion")
    with pytest.raises(PatchError, match="already applied"):
        open_patch(m, "motion")
    h.restore()
    open_patch(m, "motion").restore()
    with pytest.raises(PatchError, match="already restored"):
        h.add_hook(m.a, lambda *a: None)


def test_restore_all_after_a_crash_mid_forward():
    m = _model()
    x = torch.randn(3, 4)
    before = m(x)

    def boom(mod, args, out):
        raise RuntimeError("mid-forward")

    h1 = open_patch(m, "one")
    h1.set_attr(m, "table", torch.ones(4))
    h2 = open_patch(m, "two")
    h2.add_hook(m.a, boom)
    with pytest.raises(RuntimeError):
        m(x)
    assert restore_all(m) == 2
    assert torch.equal(m(x), before) and not is_patched(m)
    assert restore_all(m) == 0


def test_undo_order_is_lifo():
    m = _model()
    seen = []
    h = open_patch(m, "p")
    for i in range(3):
        h.on_restore(lambda i=i: seen.append(i))
    h.restore()
    assert seen == [2, 1, 0]


def test_layout_of_both_unet_kinds_matches_the_fixture_placement(ldm_unet):
    """The placement table of fixtures/animatediff/README (e): ldm names, and diffusers' equivalents."""
    layout = find_layout(ldm_unet)
    assert [[s.name for s in lv] for lv in layout.down] == [
        ["input_blocks.1.1", "input_blocks.2.1"],
        ["input_blocks.4.1", "input_blocks.5.1"],
        ["input_blocks.7.1", "input_blocks.8.1"],
        ["input_blocks.10.0", "input_blocks.11.0"],
    ]
    assert layout.mid.name == "middle_block.1"
    assert [s.name for s in layout.up[0]] == ["output_blocks.0.0", "output_blocks.1.0", "output_blocks.2.0"]
    assert [s.name for s in layout.up[1]] == ["output_blocks.3.1", "output_blocks.4.1", "output_blocks.5.1"]
    assert len(layout.group_norms) == 2 * 22 + 1  # two per residual block, plus the output norm

    from tests.rig.hf import build_diffusers_unet

    layout = find_layout(build_diffusers_unet())
    assert [s.name for s in layout.down[0]] == ["down_blocks.0.attentions.0", "down_blocks.0.attentions.1"]
    assert [s.name for s in layout.down[3]] == ["down_blocks.3.resnets.0", "down_blocks.3.resnets.1"]
    assert layout.mid.name == "mid_block.attentions.0"
    assert [s.name for s in layout.up[0]] == ["up_blocks.0.resnets.0", "up_blocks.0.resnets.1", "up_blocks.0.resnets.2"]
    assert len(layout.group_norms) == 45


def test_unknown_model_is_refused():
    from lib_vidsd.errors import IncompatibleModelError

    with pytest.raises(IncompatibleModelError, match="not a UNet"):
        find_layout(torch.nn.Linear(2, 2))
