"""Prompt travel: parsing, per-frame prompts and blending against fixtures (d); our errors;
slerp; padding cond/uncond to one token length."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from lib_vidsd.errors import ConfigError
from lib_vidsd.schedule.prompts import (
    effective_frames,
    pad_to_same_length,
    parse_prompt_travel,
    slerp,
    travel_is_closed,
)

FIXTURE = (
    Path(__file__).resolve().parents[1] / ".." / "shared" / "fixtures" / "animatediff" / "prompt_travel_public.json"
)


@pytest.fixture(scope="module")
def fixture():
    if not FIXTURE.is_file():
        pytest.skip(f"reference fixture not found: {FIXTURE}")
    return json.loads(FIXTURE.read_text())


def _parse(case):
    frames = effective_frames(case["video_length"], case["context_batch_size"])
    assert frames == case["derived"]["video_length_effective"]
    # the reference pads clips shorter than the context; batch_frames reproduces its batch
    return parse_prompt_travel(case["prompt"], frames, batch_frames=case["derived"]["latent_batch_size"])


def test_fixture_cases(fixture):
    errors = oks = 0
    for case in fixture["cases"]:
        cid = case["id"]
        if case["status"] == "error":
            with pytest.raises(ConfigError) as info:
                _parse(case)
            assert info.value.field == "prompt" and "character" in str(info.value), cid
            errors += 1
            continue
        travel = _parse(case)
        if not case["travel_active"]:
            assert travel is None, cid  # the caller keeps the prompt as typed (prompt_after)
            assert case["prompt_after"] == case["prompt"], cid
            continue
        oks += 1
        assert [list(k) for k in travel.keyframes] == case["keyframes"], cid
        assert travel.batch_prompts(case["n_iter"]) == case["prompt_after"], cid
        assert travel.original_text == case["infotext_prompt"], cid
        assert [list(r) for r in travel.blend_rows(closed=False)] == case["interpolation_open"], cid
        assert [list(r) for r in travel.blend_rows(closed=True)] == case["interpolation_closed"], cid
    assert errors and oks


def test_fixture_error_kinds(fixture):
    """Out-of-range keys and keys out of order are told apart in the message."""
    for case in fixture["cases"]:
        if case["status"] != "error":
            continue
        with pytest.raises(ConfigError) as info:
            _parse(case)
        word = "past the clip" if case["error_kind"] == "frame_out_of_range" else "comes after"
        assert word in str(info.value), case["id"]


def test_fixture_numeric(fixture):
    for case in fixture["numeric"]:
        travel = parse_prompt_travel(case["prompt"], case["video_length"])
        cond = torch.tensor(case["cond"], dtype=torch.float32)
        out = travel.blend(cond, closed=case["closed_loop"])
        assert out.dtype == torch.float32 and out.shape == cond.shape
        torch.testing.assert_close(out, torch.tensor(case["expected"]), atol=1e-6, rtol=0, msg=case["name"])


def test_fixture_slerp(fixture):
    for case in fixture["slerp"]:
        out = slerp(torch.tensor(case["v0"]), torch.tensor(case["v1"]), case["t"])
        torch.testing.assert_close(out, torch.tensor(case["result"]), atol=1e-6, rtol=0)


def test_out_of_order_names_key_and_position():
    text = "scene\n0: a\n10: b\n4: c\nend"
    with pytest.raises(ConfigError) as info:
        parse_prompt_travel(text, 16)
    assert info.value.field == "prompt" and info.value.value == 4
    assert "key 4 at character 17" in str(info.value) and text[17:].startswith("4: c")


def test_out_of_range_position_counts_trimmed_whitespace():
    text = "\n\n  scene\n0: a\n99: b"
    with pytest.raises(ConfigError) as info:
        parse_prompt_travel(text, 10)
    assert "key 99 at character 15" in str(info.value) and text[15:].startswith("99: b")
    assert "0..9" in str(info.value)


def test_out_of_range_checked_before_order():
    with pytest.raises(ConfigError, match="past the clip"):
        parse_prompt_travel("8: a\n0: b\n20: c", 10)


def test_repeated_key_keeps_first_position_last_text():
    travel = parse_prompt_travel("s\n0: a\n8: b\n0: c", 16)
    assert travel.keyframes == [(0, "s, c, "), (8, "s, b, ")]


def test_no_key_line_is_none():
    assert parse_prompt_travel("a cat, 1:1 ratio", 16) is None
    assert parse_prompt_travel("", 16) is None


def test_default_batch_is_the_clip():
    travel = parse_prompt_travel("0: a\n3: b", 5)
    assert travel.per_frame_prompts() == [", a, "] * 3 + [", b, "] * 2
    assert travel.batch_prompts(2) == travel.per_frame_prompts() * 2
    assert len(travel.blend_rows(closed=True)) == 5
    assert travel.blend_rows(closed=True)[4] == (4, 3, 0, 0.5)


def test_frames_before_first_key_get_empty_prompt():
    travel = parse_prompt_travel("p\n2: a", 4)
    assert travel.per_frame_prompts() == ["", "", "p, a, ", "p, a, "]


def test_bad_sizes():
    with pytest.raises(ConfigError) as info:
        parse_prompt_travel("0: a", 0)
    assert info.value.field == "num_frames"
    with pytest.raises(ConfigError) as info:
        parse_prompt_travel("0: a", 8, batch_frames=4)
    assert info.value.field == "batch_frames"


def test_blend_checks_rows_and_takes_mappings():
    travel = parse_prompt_travel("0: a\n3: b", 4)
    with pytest.raises(ConfigError) as info:
        travel.blend(torch.zeros(5, 2, 3), closed=False)
    assert info.value.field == "cond"
    g = torch.Generator().manual_seed(0)
    cond = {"crossattn": torch.randn(4, 2, 3, generator=g), "vector": torch.randn(4, 6, generator=g)}
    out = travel.blend(cond, closed=False)
    for name, value in cond.items():
        torch.testing.assert_close(out[name], travel.blend(value, closed=False))
        torch.testing.assert_close(out[name][3], value[3])


def test_travel_is_closed_and_effective_frames():
    assert travel_is_closed(24, 16, "R+P") and travel_is_closed(24, 16, "A")
    assert not travel_is_closed(24, 16, "R-P") and not travel_is_closed(24, 16, "N")
    assert not travel_is_closed(16, 16, "A")
    assert effective_frames(0, 16) == 16 and effective_frames(9, 16) == 9


def test_slerp_endpoints_and_zero_vector():
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(2, 3, generator=g), torch.randn(2, 3, generator=g)
    torch.testing.assert_close(slerp(a, b, 0.0), a)
    torch.testing.assert_close(slerp(a, b, 1.0), b)
    zero = torch.zeros(2, 3)
    out = slerp(zero, b, 0.25)  # the reference returns NaN here
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, 0.25 * b)


def _cond(tokens, batch=2, channels=4, seed=0):
    return torch.randn(batch, tokens, channels, generator=torch.Generator().manual_seed(seed))


def test_pad_with_empty_prompt_like_a1111():
    cond, uncond, empty = _cond(154), _cond(77, seed=1), _cond(77, batch=1, seed=2)
    c, u = pad_to_same_length(cond, uncond, empty)
    assert c is cond and u.shape == (2, 154, 4)
    torch.testing.assert_close(u, torch.cat([uncond, empty.repeat(2, 1, 1)], dim=1))
    c, u = pad_to_same_length(_cond(77), _cond(231, seed=1), empty)
    assert c.shape == u.shape == (2, 231, 4)
    torch.testing.assert_close(c[:, 77:154], empty.expand(2, -1, -1))


def test_pad_without_empty_repeats_last_chunk():
    cond, uncond = _cond(77), _cond(231, seed=1)
    c, u = pad_to_same_length(cond, uncond)
    assert u is uncond
    torch.testing.assert_close(c, torch.cat([cond, cond, cond], dim=1))


def test_pad_same_length_unchanged_and_mapping():
    cond, uncond = _cond(77), _cond(77, seed=1)
    assert pad_to_same_length(cond, uncond) == (cond, uncond)
    sdxl = {"crossattn": _cond(77), "vector": torch.ones(2, 8)}
    c, u = pad_to_same_length(sdxl, {"crossattn": _cond(154, seed=1), "vector": torch.zeros(2, 8)})
    assert c["crossattn"].shape == (2, 154, 4) and c["vector"] is sdxl["vector"]


def test_pad_rejects_partial_chunks():
    with pytest.raises(ConfigError) as info:
        pad_to_same_length(_cond(77), _cond(100))
    assert info.value.field == "uncond"


def test_deforum_json_prompts_travel_through_the_keyframe_engine():
    travel = parse_prompt_travel('{"0": "a corgi", "max_f": "a lion", "40": "past the clip"}', 16)
    assert travel.keyframes == [(0, "a corgi"), (15, "a lion")]
    assert travel.per_frame_prompts()[14:] == ["a corgi", "a lion"]
    assert parse_prompt_travel("{red|blue} ball", 8) is None  # a wildcard prompt is not JSON
    with pytest.raises(ConfigError) as info:
        parse_prompt_travel('{"0": "a", "x+": "b"}', 8)
    assert info.value.field == "prompt"
