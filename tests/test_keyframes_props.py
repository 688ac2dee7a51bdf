"""Property tests for the keyframe parsers: valid strings parse, garbage raises ConfigError only."""

from __future__ import annotations

import math

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from lib_vidsd.errors import ConfigError  # noqa: E402
from lib_vidsd.schedule.curves import parse_curve  # noqa: E402
from lib_vidsd.schedule.keyframes import parse_series  # noqa: E402
from lib_vidsd.schedule.prompt_keys import parse_prompt_keyframes  # noqa: E402

FAST = settings(max_examples=150, deadline=None, database=None)  # no .hypothesis/ folder in the repo
numbers = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False).map(lambda v: f"{v:.4f}")
expressions = st.sampled_from(["t", "t*2", "sin(t/5)", "1 + 0.1*cos(t)", "where(t>3, 1, 0)", "max_f-t", "s", "t**2"])
frames = st.integers(min_value=1, max_value=40)
keys = st.dictionaries(st.integers(min_value=0, max_value=60), st.one_of(numbers, expressions), min_size=1, max_size=6)


def _render(items: dict[int, str]) -> str:
    return ", ".join(f"{frame}: ({value})" for frame, value in items.items())


@FAST
@given(keys, frames)
def test_valid_schedules_parse(items, num_frames):
    items = {0: "1.0", **items}
    series = parse_series(_render(items), num_frames, seed=3)
    assert len(series) == num_frames
    assert all(math.isfinite(v) for v in series)


@FAST
@given(st.dictionaries(st.integers(0, 60), numbers, min_size=1, max_size=6), frames)
def test_number_keys_round_trip(items, num_frames):
    items = {0: "1.0000", **items}
    series = parse_series(_render(items), num_frames)
    for frame, value in items.items():
        if frame < num_frames:
            assert series[frame] == pytest.approx(float(value))


garbage = st.one_of(
    st.text(max_size=60),
    st.text(alphabet="0123456789:(),. tsmax_f+-*/\"'%<>=\n", max_size=60),
)


@FAST
@given(garbage, frames)
def test_garbage_raises_config_error_only(text, num_frames):
    for parse in (lambda: parse_series(text, num_frames), lambda: parse_curve(text)):
        try:
            parse()
        except ConfigError:
            pass


@FAST
@given(st.dictionaries(st.integers(0, 50), st.text(alphabet="abc xyz,()", min_size=1, max_size=12), min_size=1))
def test_prompt_lines_round_trip(items):
    text = "\n".join(f"{frame}:{prompt}" for frame, prompt in items.items())
    schedule = parse_prompt_keyframes(text)
    assert dict(schedule.keyframes) == items
    assert schedule.num_frames == max(items) + 1


@FAST
@given(garbage)
def test_prompt_garbage_raises_config_error_only(text):
    try:
        parse_prompt_keyframes(text, 10)
    except ConfigError:
        pass
