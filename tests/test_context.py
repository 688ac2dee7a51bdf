"""Context windows: the reference schedule (fixtures (c)), our two deliberate differences, errors,
and a seeded sweep of coverage over every mode, step, stride and overlap."""

from __future__ import annotations

import json
import random
from fractions import Fraction
from pathlib import Path

import pytest

from lib_vidsd.config import ClosedLoop
from lib_vidsd.errors import ConfigError
from lib_vidsd.schedule.context import CLOSED_LOOP, context_windows, level_count, step_offset

FIXTURE = Path(__file__).resolve().parents[1] / ".." / "shared" / "fixtures" / "animatediff" / "context_public.json"


@pytest.fixture(scope="module")
def cases():
    if not FIXTURE.is_file():
        pytest.skip(f"reference fixture not found: {FIXTURE}")
    return json.loads(FIXTURE.read_text())["cases"]


def _ours(case, step):
    return context_windows(
        step, case["video_length"], case["context_batch_size"], case["stride"], case["overlap"], case["closed_loop"]
    )


def _uncovered(windows, num_frames):
    return set(range(num_frames)) - {f for w in windows for f in w}


def test_reference_schedules_reproduced(cases):
    """Every case where the reference covers every frame of a clip of L >= B frames: identical."""
    checked, wrong = 0, []
    for case in cases:
        if case["video_length"] < case["context_batch_size"]:
            continue  # intended difference, see below
        for step, expected in case["windows_by_step"].items():
            if _uncovered(expected, case["video_length"]):
                continue  # intended difference, see below
            checked += 1
            if _ours(case, int(step)) != expected:
                wrong.append((case["id"], step))
    assert checked > 400
    assert wrong == []


def test_intended_difference_fewer_frames_than_context(cases):
    """Reference: one window 0..B-1 (it pads the latent batch to B). Ours: one window 0..L-1."""
    short = [c for c in cases if c["video_length"] < c["context_batch_size"]]
    assert short
    for case in short:
        length, size = case["video_length"], case["context_batch_size"]
        for step, expected in case["windows_by_step"].items():
            assert expected == [list(range(size))]
            assert _ours(case, int(step)) == [list(range(length))]


def test_intended_difference_uncovered_frames_get_appended_windows(cases):
    """Reference leaves frames unvisited at a step (mode N, large overlap): ours is the
    reference's windows unchanged, then contiguous B-frame windows that cover the rest."""
    seen = 0
    for case in cases:
        length, size = case["video_length"], case["context_batch_size"]
        for step, expected in case["windows_by_step"].items():
            missing = _uncovered(expected, length)
            if length < size or not missing:
                continue
            seen += 1
            ours = _ours(case, int(step))
            assert ours[: len(expected)] == expected
            added = ours[len(expected) :]
            assert added and not _uncovered(ours, length)
            for window in added:
                assert window == list(range(window[0], window[0] + size))
    assert seen >= 1  # ctx-1056 (L=24, B=12, stride 2, overlap 6, N, step 2) in the public part


def test_readme_example_mode_n_step_2_covers_frames_0_to_3():
    """README (c): L=16, B=8, O=4, mode N, step 2: the reference never visits frames 0-3."""
    windows = context_windows(2, 16, 8, overlap=4, closed_loop="N")
    assert windows[-1] == list(range(8))
    assert _uncovered(windows[:-1], 16) == {0, 1, 2, 3}


def test_step_offset_is_bit_reversed_fraction():
    expected = [Fraction(0), Fraction(1, 2), Fraction(1, 4), Fraction(3, 4), Fraction(1, 8), Fraction(5, 8)]
    assert [step_offset(s) for s in range(6)] == expected


def test_pad_rounds_half_to_even():
    assert context_windows(1, 17, 8, overlap=0)[0][0] == 8  # 17 * 1/2 = 8.5 -> 8, not 9


def test_level_count_capped():
    assert level_count(100, 8, 8) == 5  # ceil(log2(12.5)) + 1
    assert level_count(32, 8, 8) == 3  # ceil(log2(4)) + 1
    assert level_count(100, 8, 2) == 2


def test_enum_and_plain_names_agree():
    for mode in ClosedLoop:
        assert context_windows(3, 40, 8, 2, 2, mode) == context_windows(3, 40, 8, 2, 2, mode.value)
    assert set(CLOSED_LOOP) == set(ClosedLoop.values())


def test_r_minus_p_and_r_plus_p_schedule_alike():
    assert context_windows(5, 50, 12, 3, 4, "R-P") == context_windows(5, 50, 12, 3, 4, "R+P")


def test_single_window_when_clip_fits():
    assert context_windows(7, 16, 16) == [list(range(16))]
    assert context_windows(0, 1, 16) == [[0]]


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"num_frames": 0}, "num_frames"),
        ({"context_size": 0}, "context_size"),
        ({"stride": 0}, "stride"),
        ({"overlap": 16}, "overlap"),
        ({"overlap": -2}, "overlap"),
        ({"step": -1}, "step"),
        ({"closed_loop": "X"}, "closed_loop"),
    ],
)
def test_bad_parameters_name_the_field(kwargs, field):
    args = {"step": 0, "num_frames": 32, "context_size": 16, "stride": 1, "overlap": -1, "closed_loop": "R-P"}
    args.update(kwargs)
    with pytest.raises(ConfigError) as info:
        context_windows(**args)
    assert info.value.field == field


def test_unknown_mode_lists_the_known_ones():
    with pytest.raises(ConfigError) as info:
        context_windows(0, 32, 16, closed_loop="loop")
    assert "N, R-P, R+P, A" in str(info.value)


def test_sweep_every_frame_covered():
    """Seeded sweep (hypothesis is not installed): 400 parameter sets, several steps each."""
    rng = random.Random(1234)
    modes = ClosedLoop.values()
    for _ in range(400):
        length, size = rng.randint(1, 120), rng.randint(1, 32)
        stride, overlap = rng.randint(1, 5), rng.randint(-1, size - 1)
        mode = rng.choice(modes)
        for step in rng.sample(range(200), 3):
            windows = context_windows(step, length, size, stride, overlap, mode)
            where = (step, length, size, stride, overlap, mode)
            assert windows, where
            assert not _uncovered(windows, length), where
            for window in windows:
                assert len(window) == min(length, size), where
                assert len(set(window)) <= size, where
                assert all(0 <= f < length for f in window), where
            if length <= size:
                assert windows == [list(range(length))], where
