"""The keyframe schedule engine against the public Deforum/Giffusion fixtures, plus our fixes.

Every case of the fixture files is run. Where we differ from the anchor on purpose, the case id is
listed in a ``DIFFERS_*`` table with the reason from ``fixtures/keyframes/README.md`` or the issue.
"""

from __future__ import annotations

import json
import math
import re

import pytest

from lib_vidsd.errors import ConfigError
from lib_vidsd.schedule.curves import parse_curve, sine_weights, weight_function
from lib_vidsd.schedule.keyframes import (
    parse_seed_schedule,
    parse_series,
    parse_string_schedule,
    split_items,
)
from lib_vidsd.schedule.prompt_keys import parse_prompt_keyframes
from tests.rig.fixtures import fixture_path

DIFFERS_SCHEDULES = {
    "missing_frame_zero": "issue: a missing frame-0 key holds the first key's value back (Deforum crashes)",
    "missing_frame_zero_two_keys": "issue: a missing frame-0 key holds the first key's value back",
    "single_string_missing_zero": "issue: a missing frame-0 key holds the first key's text back",
    "single_string_mixed_number_then_text": "README: a plain number at frame 0 crashes Deforum's lookup; we hold it",
    "floor_division": "README: numexpr 2.14 accepts //, only 2.9 rejects it",
}
DIFFERS_CURVES = {"fractional_key_misread_as_5": "README: '2.5' is misread as key 5; we refuse a fractional key"}
DIFFERS_GIFFUSION_PROMPTS = {"negative_number": "README: '-5:' is misread as key 5; we refuse the line"}
DIFFERS_INTERPOLATION = {"linear_out_of_order": "keys are sorted (as Deforum does); Giffusion's linspace fails"}
DIFFERS_DEFORUM_PROMPTS = {  # id: (we accept it, why)
    "not_json_colon_list__2d": (True, "issue: Giffusion's 'N: text' lines are accepted beside JSON"),
    "float_key__2d": (False, "a fractional key is refused (Deforum truncates it in 2D, crashes in Interpolation)"),
}


def _cases(name: str) -> list:
    """The cases of a public fixture file as pytest params (one skipped param when it is absent)."""
    path = fixture_path(f"keyframes/{name}_public.json")
    if path is None:
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"shared fixture {name} not found"))]
    return [pytest.param(case, id=case["id"]) for case in json.loads(path.read_text())["cases"]]


def _num(value) -> float:
    """A fixture number (NaN and infinities are written as strings)."""
    return float(value)


def _close(got: list[float], expected: list, tol: float) -> None:
    assert len(got) == len(expected)
    for frame, (g, e) in enumerate(zip(got, expected, strict=True)):
        e = _num(e)
        assert (math.isnan(g) and math.isnan(e)) or g == pytest.approx(e, abs=tol), f"frame {frame}"


# -- Deforum keyframe strings ------------------------------------------------------------------------


@pytest.mark.parametrize("case", _cases("deforum_schedules"))
def test_deforum_schedule_fixture(case):
    string, frames, seed = case["string"], case["max_frames"], case["seed"]
    if case["kind"] not in ("parse_inbetweens", "parse_inbetweens_single_string"):
        pytest.skip("Quadratic/Cubic interpolation is not reachable from Deforum's UI; not implemented")
    single = case["kind"] == "parse_inbetweens_single_string"
    parse = parse_string_schedule if single else parse_series
    if case["id"] in DIFFERS_SCHEDULES:
        parse(string, frames, seed=seed)  # accepted; the values are checked in the tests below
        return
    if case["result"]["status"] == "error":
        with pytest.raises(ConfigError):
            parse(string, frames, seed=seed)
        return
    got = parse(string, frames, seed=seed)
    if single:
        assert got == case["result"]["series"]
    else:
        _close(got, case["result"]["series"], 1e-9)


def test_missing_frame_zero_holds_first_value_back():
    assert parse_series("5: (1), 10: (2)", 12) == [1.0] * 6 + [1.2, 1.4, 1.6, 1.8, 2.0, 2.0]
    assert parse_series("3: (t*2)", 5) == [6.0, 6.0, 6.0, 6.0, 8.0]
    assert parse_string_schedule('5: ("Euler")', 7) == ["Euler"] * 7
    assert parse_string_schedule('0: (5), 3: ("DDIM")', 5) == ["5", "5", "5", "DDIM", "DDIM"]


def test_commas_inside_expressions_parse():
    assert parse_series("0: (where(t>2, 1, 0))", 5) == [0.0, 0.0, 0.0, 1.0, 1.0]
    assert parse_series("0: (arctan2(t, 1)), 3: (0)", 4)[1] == pytest.approx(math.atan2(1, 1))
    assert parse_series("0: (t//2)", 5) == [0.0, 0.0, 1.0, 1.0, 2.0]


def test_number_ramps_expression_holds():
    assert parse_series("0: (1.0), 4: (2.0)", 5) == [1.0, 1.25, 1.5, 1.75, 2.0]
    assert parse_series("0: ( 1.0 ), 4: (2.0)", 5) == [1.0, 1.0, 1.0, 1.0, 2.0]  # Deforum: an expression
    assert parse_series("0: (t), 3: (20)", 5) == [0.0, 1.0, 2.0, 20.0, 20.0]
    assert parse_series("0:1,4:2", 5) == [1.0, 1.25, 1.5, 1.75, 2.0]


def test_keys_out_of_range_are_ignored_and_trailing_comma_allowed():
    assert parse_series("0: (0), 100: (10)", 4) == [0.0] * 4
    assert parse_series("0: (1), -5: (3),", 3) == [1.0] * 3


def test_nan_expression_is_a_gap_filled_by_the_ramp():
    assert parse_series("0: (0), 1: (sqrt(-1)), 4: (4)", 5) == [0.0, 1.0, 2.0, 3.0, 4.0]


def test_seed_schedule_default():
    text = '0:(s), 1:(-1), "max_f-2":(-1), "max_f-1":(s)'
    assert parse_seed_schedule(text, 6, seed=7) == [7, -1, -1, -1, 7, 7]
    with pytest.raises(ConfigError):
        parse_seed_schedule("0: (0.5)", 3, seed=1)


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("0: (1), 10: (__import__('os'))", "character 8"),
        ("0: (1), 5: (a)", "unknown name 'a'"),
        ("0: (1), 1.5: (2)", "'1.5' at character 8"),
        ("0: (1/0)", "division by zero"),
        ("0: (1) 10: (2)", "key 0 at character 0"),
        ("0: (1), (2)", "character 8"),
        ("0: (9**9**9)", "exponent"),
        ("0: (sin(t).real)", "Attribute"),
    ],
)
def test_errors_name_field_key_and_character(text, where):
    with pytest.raises(ConfigError) as info:
        parse_series(text, 20, field="zoom")
    assert info.value.field == "zoom"
    assert where in str(info.value)


def test_split_items_positions():
    items = split_items('0: (1), "max_f": (where(t>1, 2, 3))')
    assert [(i.key, i.key_pos) for i in items] == [("0", 0), (' "max_f"', 8)]


# -- Giffusion curves and interpolation ---------------------------------------------------------------


@pytest.mark.parametrize("case", _cases("giffusion_curves"))
def test_giffusion_curve_fixture(case):
    if case["id"] in DIFFERS_CURVES or case["result"]["status"] == "error":
        with pytest.raises(ConfigError):
            parse_curve(case["string"])
        return
    _close(parse_curve(case["string"]).values(case["n_frames"]), case["result"]["values"], 1e-12)


def test_sine_fixes():
    assert weight_function("sine", "")(0, 10) == sine_weights(0, 10, (1.0,))
    for bad in ("0", "abc", "nan"):
        with pytest.raises(ConfigError):
            weight_function("sine", bad)
    with pytest.raises(ConfigError):
        weight_function("cubic")


def _fixed_prompt(text: str, key_frames: list, prompt: str | None) -> str | None:
    """A Giffusion prompt with its lost last character put back (when the text has no final newline)."""
    if prompt is None or text.endswith("\n") or not key_frames or prompt != key_frames[-1][1]:
        return prompt
    return prompt + text[-1]


@pytest.mark.parametrize("case", _cases("giffusion_interpolation"))
def test_giffusion_interpolation_fixture(case):
    text, kind, args = case["text"], case["interpolation_type"], case["interpolation_args"]
    ok = case["result"]["status"] == "ok" or case["id"] in DIFFERS_INTERPOLATION
    if not ok:
        with pytest.raises(ConfigError):
            parse_prompt_keyframes(text).rows(weight_function(kind, args))
        return
    rows = parse_prompt_keyframes(text).rows(weight_function(kind, args))
    if case["id"] in DIFFERS_INTERPOLATION:
        return
    for seg in case["segments"]:
        if seg["start_frame"] < seg["end_frame"]:
            _close(weight_function(kind, args)(seg["start_frame"], seg["end_frame"]), seg["schedule"], 1e-12)
    keys = case["key_frames"]
    for entry in case["frames"]:
        a, b, t = rows[entry["frame"]]
        assert t == pytest.approx(_num(entry["t"]), abs=1e-12)
        expected = (keys[entry["from_keyframe"]][1], keys[entry["to_keyframe"]][1])
        assert (a, b) == tuple(_fixed_prompt(text, keys, p) for p in expected)


# -- Prompt keyframes -----------------------------------------------------------------------------------


@pytest.mark.parametrize("case", _cases("giffusion_prompt_keyframes"))
def test_giffusion_prompt_keyframes_fixture(case):
    text = case["text"]
    if case["id"] in DIFFERS_GIFFUSION_PROMPTS or case["result"]["status"] == "error":
        with pytest.raises(ConfigError):
            parse_prompt_keyframes(text)
        return
    keys = case["key_frames"]
    schedule = parse_prompt_keyframes(text)
    assert schedule.num_frames == case["max_frames"]
    first = min(keys, key=lambda k: k[0])[1]
    expected = [_fixed_prompt(text, keys, p if p is not None else first) for p in case["prompts_per_frame"]]
    assert schedule.per_frame_prompts() == expected


def test_last_character_kept_and_lines_checked():
    schedule = parse_prompt_keyframes("0: a picture of a corgi\n60: a picture of a lion")
    assert schedule.keyframes == [(0, " a picture of a corgi"), (60, " a picture of a lion")]
    with pytest.raises(ConfigError, match="character 5"):
        parse_prompt_keyframes("0: a\nfoo: b\n")


def _wrap(prompt: str, positive: str, negative: str) -> str:
    """Deforum's process_args wrapping of one prompt (README, Prompts)."""
    marker = "" if "--neg" in prompt else "--neg"
    return f"{positive} {prompt} {marker} {negative.replace('--neg', '')}"


BLEND = re.compile(r"\):([0-9.e-]+) AND .*?\):([0-9.e-]+)")


@pytest.mark.parametrize("case", _cases("deforum_prompts"))
def test_deforum_prompts_fixture(case):
    text, frames = case["animation_prompts"], case["max_frames"]
    if "`" in text:
        pytest.skip("backtick expressions inside prompts are A1111 prompt text, not this engine")
    if DIFFERS_DEFORUM_PROMPTS.get(case["id"], (False,))[0]:
        parse_prompt_keyframes(text, frames)
        return
    if case["result"]["status"] == "error" or case["id"] in DIFFERS_DEFORUM_PROMPTS:
        with pytest.raises(ConfigError):
            parse_prompt_keyframes(text, frames)
        return
    schedule = parse_prompt_keyframes(text, frames)
    series = [value for label, value in case["prompt_series"] if 0 <= label < frames]
    pos, neg = case["animation_prompts_positive"], case["animation_prompts_negative"]
    if case["mode"] != "Interpolation":
        assert [_wrap(p, pos, neg) for p in schedule.per_frame_prompts()] == series
        return
    for (a, b, w), value in zip(schedule.rows(), series, strict=True):
        blend = BLEND.search(value)
        if blend is None:
            assert _wrap(b if w == 1.0 else a, pos, neg) == value
        else:
            assert w == pytest.approx(float(blend.group(2)), abs=1e-12)


def test_json_keys_are_expressions():
    schedule = parse_prompt_keyframes('{"0": "a", "max_f-2": "b"}', 6)
    assert schedule.per_frame_prompts() == ["a", "a", "a", "b", "b", "b"]
    assert schedule.rows()[1] == ("a", "b", 1 / 3)
